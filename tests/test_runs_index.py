"""The run index: filters, and rebuilt from the folders (the folders are the truth)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from chipctl.runs import RunFilter, RunIndex, write_json_atomic
from tests.test_runs_store import record_bare


def test_index_filters_and_rebuilds_from_folders(tmp_path: Path) -> None:
    first = record_bare(tmp_path, sample="plasma A")  # the index reads run.json, not frames
    second = record_bare(tmp_path, sample="urine B")
    info = json.loads((second.folder / "run.json").read_text())
    info.update(status="aborted", started="2026-01-02T10:00:00+00:00")
    write_json_atomic(second.folder / "run.json", info)

    index = RunIndex(tmp_path / "runs")
    index.refresh()
    assert [r["run_id"] for r in index.list()] == [second.run_id, first.run_id]
    assert [r["run_id"] for r in index.list(RunFilter(sample="plasma"))] == [first.run_id]
    assert [r["run_id"] for r in index.list(RunFilter(status="aborted"))] == [second.run_id]
    assert [r["run_id"] for r in index.list(RunFilter(until="2026-01-02"))] == [second.run_id]
    assert [r["run_id"] for r in index.list(RunFilter(since="2026-01-03"))] == [first.run_id]

    before = index.list()
    index.path.unlink()
    index.refresh()
    assert index.list() == before
    shutil.rmtree(second.folder)
    index.refresh()
    assert [r["run_id"] for r in index.list()] == [first.run_id]


def test_a_surrogate_or_escape_codes_in_a_name_never_break_the_index(tmp_path: Path) -> None:
    """Issue 17: a protocol named "\\ud800" ran, and every later `runs list` failed with a
    UnicodeEncodeError in SQLite; a name could also put terminal escape codes in the listing."""
    run = record_bare(tmp_path, sample="plasma\x1b[2J")
    info = json.loads((run.folder / "run.json").read_text())
    info["protocol"] = "\ud800 evil\x1b]0;title\x07\nsecond line"
    write_json_atomic(run.folder / "run.json", info)
    index = RunIndex(tmp_path / "runs")
    index.refresh()
    (row,) = index.list()
    assert row["protocol"] == "\ufffd evil]0;title second line"
    assert row["sample"] == "plasma[2J"
    assert all("\x1b" not in str(v) for v in row.values())
