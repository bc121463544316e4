"""`chipctl runs recount`: the saved frames of recorded runs counted again, serially, on the local
process pool and on a Dask cluster (a small LocalCluster), written beside the records and never
over them."""

from __future__ import annotations

import csv
import hashlib
import importlib
import json
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from _vision_helpers import synth  # noqa: F401 - puts the repository root on sys.path

from chipctl.analysis.recount import recount
from chipctl.analysis.recount_plan import (
    RecountOptions,
    counter_version,
    frame_tasks,
    parse_overrides,
)
from chipctl.analysis.schedulers import PoolScheduler, SerialScheduler
from chipctl.cli.main import main
from chipctl.runs.folder import RunFolder
from chipctl.runs.lock import RecordingLock

make_runs = importlib.import_module("benchmarks.recount").make_runs
pytestmark = pytest.mark.timeout(120)
FRAMES = 4


@pytest.fixture(scope="module")
def recorded(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Three recorded runs of four 128 x 128 frames (made once; tests copy them)."""
    root = tmp_path_factory.mktemp("recorded") / "runs"
    make_runs(root, runs=3, frames=FRAMES, size=128, seed=5)
    return root


@pytest.fixture
def runs_dir(recorded: Path, tmp_path: Path) -> Path:
    import shutil

    return Path(shutil.copytree(recorded, tmp_path / "runs"))


@pytest.fixture(scope="module")
def dask_address() -> Iterator[str]:
    """An in-process cluster (one worker, two threads). Its tasks count with one OpenCV thread,
    which is process-wide here: the test process gets its own setting back afterwards."""
    import cv2

    distributed = pytest.importorskip("distributed")
    threads = cv2.getNumThreads()
    cluster = distributed.LocalCluster(n_workers=1, threads_per_worker=2, processes=False,
                                       dashboard_address=None)
    yield cluster.scheduler_address
    logging.getLogger("distributed").setLevel(logging.CRITICAL)  # its shutdown chatter
    cluster.close()
    cv2.setNumThreads(threads)


def run_folders(root: Path) -> list[Path]:
    return sorted(p.parent for p in root.glob("*/run.json"))


def record_hashes(root: Path) -> dict[str, str]:
    """Every file the runs recorded (everything but re-counts), by content hash."""
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*"))
            if p.is_file() and "recount" not in p.relative_to(root).parts}


def recount_tables(root: Path, out_dir: Path) -> dict[str, list[dict[str, str]]]:
    """run id -> the rows of its (single) re-count's counts.csv under `out_dir`."""
    out = {}
    for folder in run_folders(root):
        found = sorted((out_dir / folder.name / "recount").glob("*/counts.csv"))
        assert len(found) == 1, found
        out[folder.name] = list(csv.DictReader(found[0].open()))
    return out


def damage_one_frame(root: Path) -> Path:
    """Truncate the second run's second frame to a few bytes (a torn copy)."""
    frame = sorted((run_folders(root)[1] / "frames").glob("*.ome.tif"))[1]
    frame.write_bytes(frame.read_bytes()[:100])
    return frame


def cli(root: Path, *args: str) -> int:
    return main(["runs", "--runs-dir", str(root), "recount", *args])


def test_dask_and_serial_give_the_same_counts_and_leave_the_records_alone(
        runs_dir: Path, tmp_path: Path, dask_address: str,
        capsys: pytest.CaptureFixture[str]) -> None:
    bad = damage_one_frame(runs_dir)
    before = record_hashes(runs_dir)
    serial_out, dask_out = tmp_path / "serial", tmp_path / "dask"
    assert cli(runs_dir, "--all", "--workers", "1", "--out", str(serial_out)) == 1
    text = capsys.readouterr().out
    assert f"unreadable frame skipped: {bad}: cannot read" in text
    assert cli(runs_dir, "--all", "--scheduler", dask_address, "--out", str(dask_out)) == 1
    text = capsys.readouterr().out
    assert f"on Dask scheduler {dask_address}" in text
    assert f"unreadable frame skipped: {bad}" in text
    assert "3 runs re-counted, 0 not; 12 frames, 1 unreadable" in text
    assert record_hashes(runs_dir) == before, "the records are unchanged"
    serial, dask = recount_tables(runs_dir, serial_out), recount_tables(runs_dir, dask_out)
    assert serial == dask
    assert sorted(len(rows) for rows in serial.values()) == [FRAMES - 1, FRAMES, FRAMES]
    for rows in serial.values():
        # same counter, same parameters as when the run was recorded: the same counts
        assert all(r["count"] == r["previous_count"] for r in rows), rows
        assert {r["zone"] for r in rows} == {"CD63", "isotype"}


def test_the_local_pool_gives_the_serial_counts(runs_dir: Path) -> None:
    runs = [RunFolder.open(p) for p in run_folders(runs_dir)]
    serial = recount(runs, SerialScheduler(), RecountOptions(out_dir=runs_dir.parent / "a"))
    pool = PoolScheduler(2)
    try:
        pooled = recount(runs, pool, RecountOptions(out_dir=runs_dir.parent / "b"))
    finally:
        pool.close()
    key = {r.run_id: (r.recounted, r.new_total) for r in serial}
    assert key == {r.run_id: (r.recounted, r.new_total) for r in pooled}
    assert all(r.recounted == FRAMES and r.new_total > 0 for r in serial)


def test_recounts_go_beside_the_records_versioned_with_a_report(
        runs_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    folder = run_folders(runs_dir)[0]
    before = record_hashes(runs_dir)
    assert cli(runs_dir, folder.name, "--workers", "1") == 0
    out = capsys.readouterr().out
    assert record_hashes(runs_dir) == before
    (made,) = (folder / "recount").iterdir()
    version = counter_version()
    assert made.name.startswith(f"{version}-") and str(made) in out
    info = json.loads((made / "recount.json").read_text())
    assert info["counter_version"] == version and info["recounted"] == FRAMES
    assert info["parameters"]["calibration"]["e_per_adu"] == 0.46  # the run's own bench
    assert info["original_counts_sha256"] == hashlib.sha256(
        (folder / "counts.csv").read_bytes()).hexdigest()
    report = (made / "report.html").read_text()
    assert f"Re-counted {info['ended']} with counter {version}" in report
    assert json.loads((made / "report.json").read_text())["counts_rows"] == FRAMES
    assert "recount: 4/4 frames (100 %)" in out, "plain progress lines off a terminal"
    # the same again is skipped; --again makes a second, separate re-count
    assert cli(runs_dir, folder.name, "--workers", "1") == 0
    assert "skipped, already re-counted with counter" in capsys.readouterr().out
    assert cli(runs_dir, folder.name, "--workers", "1", "--again") == 0
    assert len(list((folder / "recount").iterdir())) == 2


def test_given_parameters_change_the_counts_and_are_recorded(
        runs_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    folder = run_folders(runs_dir)[0]
    assert cli(runs_dir, folder.name, "--workers", "1", "--set", "fixed_threshold=1000") == 0
    (made,) = (folder / "recount").iterdir()
    rows = list(csv.DictReader((made / "counts.csv").open()))
    assert all(r["count"] == "0" for r in rows) and any(int(r["previous_count"]) for r in rows)
    assert json.loads((made / "recount.json").read_text())["parameters"][
        "fixed_threshold"] == 1000.0


@pytest.mark.parametrize(("args", "message"), [
    ([], "say which runs: RUN... or --all"),
    (["--all", "--since", "last week"], "--since 'last week': write a date as YYYY-MM-DD"),
    (["--all", "--set", "psf=2"], "--set psf: not a counting parameter"),
    (["--all", "--counter-version", "0.0.1"], "the installed counter is version"),
    (["no-such-run"], "no run 'no-such-run'"),
    (["--all", "--scheduler", "tcp://127.0.0.1:9", "--connect-timeout", "0.5"],
     "cannot reach the Dask scheduler at tcp://127.0.0.1:9"),
])
def test_invalid_requests_exit_2_with_a_message(
        runs_dir: Path, capsys: pytest.CaptureFixture[str], args: list[str],
        message: str) -> None:
    assert cli(runs_dir, *args) == 2
    assert message in capsys.readouterr().err


def test_since_and_runs_being_recorded(runs_dir: Path) -> None:
    runs = [RunFolder.open(p) for p in run_folders(runs_dir)]
    assert cli(runs_dir, "--all", "--since", "2999-01-01") == 0
    assert not list(runs_dir.glob("*/recount")), "nothing started since 2999"
    live = runs[0]
    info = {**live.info, "status": "running"}
    (live.path / "run.json").write_text(json.dumps(info))
    lock = RecordingLock(live.path)
    lock.acquire()
    try:
        results = recount([RunFolder.open(live.path)], SerialScheduler())
    finally:
        lock.release()
    assert results[0].skipped == "still being recorded" and results[0].folder is None


def test_frames_are_paired_with_the_counts_rows_they_made(runs_dir: Path) -> None:
    run = RunFolder.open(run_folders(runs_dir)[0])
    tasks = frame_tasks(run)
    assert [t.row["count"] for t in tasks] == [row["count"] for row in run.counts]
    assert [t.row["t_s"] for t in tasks] == [row["t_s"] for row in run.counts]
    assert all((run.path / t.file).is_file() for t in tasks)


def test_parameter_overrides_are_typed() -> None:
    parsed: dict[str, Any] = parse_overrides(["psf_sigma_px=1.5", "reject_hot_pixels=no",
                                              "fixed_threshold=none", "e_per_adu=0.5"])
    assert parsed == {"psf_sigma_px": 1.5, "reject_hot_pixels": False,
                      "fixed_threshold": None, "e_per_adu": 0.5}
    with pytest.raises(ValueError, match="not a number"):
        parse_overrides(["psf_sigma_px=wide"])


def test_the_progress_bar_redraws_in_place_on_a_terminal() -> None:
    import io

    from chipctl.analysis.recount_plan import FrameOutcome
    from chipctl.cli.recount import RecountProgress

    out = io.StringIO()
    progress = RecountProgress(out, tty=True)
    progress.begin(2)
    progress.frame(FrameOutcome("a.ome.tif"))
    progress.frame(FrameOutcome("b.ome.tif", error="cannot read: torn"))
    text = out.getvalue()
    assert "\r\x1b[Kunreadable frame skipped: b.ome.tif: cannot read: torn\n" in text
    assert "\r[" + "#" * 30 + "] 2/2 frames (100 %)" in text and "1 unreadable" in text
