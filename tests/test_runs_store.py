"""The run folder: run.json, the event log, counts.csv and OME-TIFF frames, written as a run
happens and read back (also after a crash tore the last line)."""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import tifffile

from chipctl.devices.interfaces import Frame
from chipctl.run.events import RunEvents
from chipctl.runs import (
    KeepPolicy,
    RunFolder,
    RunIndex,
    RunRecorder,
    read_frame,
    write_json_atomic,
)
from chipctl.runs.folder import read_counts, read_events
from chipctl.runs.recovery import is_cut_off
from chipctl.vision.factory import params_record
from tests.runs_synth import FRAME_PX, PARAMS, SyntheticRun, write_inputs


class ReportingPump:
    """Just what device_versions reads of a pump."""

    firmware = "NE1000V3.928"
    model = "NE-1000"


def record_run(tmp_path: Path, keep: str = "all", seed: int = 1, concentration: float = 4e6,
               **params: str) -> tuple[RunRecorder, SyntheticRun]:
    """A synthetic panel run recorded as chipctl records one (counting parameters too)."""
    protocol, bench = write_inputs(tmp_path / "inputs")
    events = RunEvents()
    recorder = RunRecorder(tmp_path / "runs", protocol, bench,
                           {"operator": "ana", "sample": "MSC-EV 3", **params},
                           devices={"sample_pump": ReportingPump(), "camera": object()},
                           keep_frames=keep, counting=params_record(PARAMS))
    recorder.attach(events)
    run = SyntheticRun(events, bench, concentration_per_ml=concentration, seed=seed)
    run.run()
    recorder.finish("completed", "all steps done")
    return recorder, run


def record_bare(tmp_path: Path, **params: str) -> RunRecorder:
    """A run recorded from start to finish without a frame (what the index and the event
    log's own tests need of one: its folder, run.json and events.jsonl)."""
    protocol, bench = write_inputs(tmp_path / "inputs")
    recorder = RunRecorder(tmp_path / "runs", protocol, bench, {"operator": "ana", **params})
    recorder.finish("completed", "all steps done")
    return recorder


def recorded_as(template: Path, root: Path, **params: str) -> RunFolder:
    """A copy, under `root`, of the recorded run folder `template`, its run parameters entered
    as `params` instead (`record_run`'s defaults beneath them): run.json's operator, sample and
    parameters, all that RunRecorder writes of them."""
    folder = Path(shutil.copytree(template, root / template.name))
    entered = {"operator": "ana", "sample": "MSC-EV 3", **params}
    info = json.loads((folder / "run.json").read_text())
    info.update(operator=entered["operator"], sample=entered["sample"], parameters=entered)
    write_json_atomic(folder / "run.json", info)
    return RunFolder.open(folder)


@pytest.fixture
def recorded(recorded_panel: tuple[RunRecorder, SyntheticRun]
             ) -> tuple[RunRecorder, SyntheticRun]:
    """The session's synthetic panel run (48 frames, all kept), for tests that only read it."""
    return recorded_panel


def test_run_json_says_what_ran_on_what_and_how_it_ended(
        recorded: tuple[RunRecorder, SyntheticRun]) -> None:
    recorder, _ = recorded
    info = json.loads((recorder.folder / "run.json").read_text())
    assert info["status"] == "completed" and info["ended"] >= info["started"]
    assert info["protocol"] == "Synthetic tetraspanin panel"
    assert len(info["protocol_sha256"]) == 64
    assert info["operator"] == "ana" and info["sample"] == "MSC-EV 3"
    assert info["versions"]["software"]["chipctl"]
    assert info["versions"]["devices"]["sample_pump"]["firmware"] == "NE1000V3.928"
    assert "firmware" not in info["versions"]["devices"]["camera"]
    assert info["last_completed_step"] == {"index": 3, "label": "image"}
    assert (recorder.folder / "protocol.yaml").read_text().startswith("schema_version")
    assert "synthetic bench" in (recorder.folder / "bench.yaml").read_text()


def test_counts_and_events_are_complete(recorded: tuple[RunRecorder, SyntheticRun]) -> None:
    recorder, run = recorded
    rows = list(csv.DictReader((recorder.folder / "counts.csv").open()))
    assert len(rows) == len(run.rows) == 4 * 4 * 3
    assert [int(r["count"]) for r in rows] == [r["count"] for r in run.rows]
    assert all(r["true_count"] != "" for r in rows)
    events = read_events(recorder.folder / "events.jsonl")
    kinds = [e["event"] for e in events]
    assert kinds[0] == "run_started" and kinds[-1] == "run_ended"
    assert kinds.count("step_finished") == 4 and kinds.count("frame") == 48
    sample = [e for e in events if e["event"] == "syringe" and e["pump"] == "sample_pump"]
    assert sample[-1]["contents_ul"] == pytest.approx(800 - 40)
    info = json.loads((recorder.folder / "run.json").read_text())
    assert info["syringes"]["sample_pump"]["contents_ul"] == pytest.approx(760)


def test_frames_are_ome_tiff_with_their_metadata(
        recorded: tuple[RunRecorder, SyntheticRun]) -> None:
    recorder, run = recorded
    files = sorted((recorder.folder / "frames").glob("*.ome.tif"))
    assert len(files) == 48
    with tifffile.TiffFile(files[4]) as tif:
        assert tif.is_ome
        assert tif.asarray().shape == (FRAME_PX, FRAME_PX)
        assert "PositionX" in (tif.ome_metadata or "")
    image, meta = read_frame(files[4])
    row = run.rows[4]
    assert image.dtype == np.uint16
    assert meta["zone"] == row["zone"] and meta["field"] == row["field"]
    assert meta["channel"] == row["channel"]
    assert meta["x_um"] == pytest.approx(row["x_um"]) and meta["y_um"] == pytest.approx(row["y_um"])
    assert meta["z_um"] == pytest.approx(12.5)
    assert meta["exposure_ms"] == pytest.approx(row["exposure_ms"])
    assert meta["power_pct"] == pytest.approx(row["power_pct"])
    assert meta["time_s"] == pytest.approx(row["t_s"])
    assert meta["true_count"] == row["true_count"]


@pytest.mark.parametrize(("keep", "kept"), [("none", 0), ("5", 10), ("all", 48)])
def test_which_frames_are_kept_is_a_run_option(
        tmp_path: Path, keep: str, kept: int,
        recorded: tuple[RunRecorder, SyntheticRun]) -> None:
    recorder = recorded[0] if keep == "all" else record_run(tmp_path, keep=keep)[0]
    files = list((recorder.folder / "frames").glob("*.ome.tif"))
    assert len(files) == kept
    logged = [e for e in RunFolder.open(recorder.folder).events if e["event"] == "frame"]
    assert len(logged) == 48, "every frame is logged, kept or not"
    assert len(RunFolder.open(recorder.folder).frames()) == kept


def test_keep_policy_rejects_nonsense() -> None:
    assert KeepPolicy.parse("3").keeps(3) and not KeepPolicy.parse("3").keeps(4)
    for bad in ("some", "0", "-2"):
        with pytest.raises(ValueError, match="all, none"):
            KeepPolicy.parse(bad)


def test_torn_last_lines_are_skipped_not_fatal(
        tmp_path: Path, recorded: tuple[RunRecorder, SyntheticRun]) -> None:
    folder = Path(shutil.copytree(recorded[0].folder, tmp_path / "run"))  # torn below
    run = recorded[1]
    events_file = folder / "events.jsonl"
    whole = read_events(events_file)
    with events_file.open("a") as handle:
        handle.write('{"event": "count", "zone": "CD')
    assert read_events(events_file) == whole
    counts_file = folder / "counts.csv"
    with counts_file.open("a") as handle:
        handle.write("12.0,3,CD9,0,AF4")
    assert len(read_counts(counts_file)) == len(run.rows)


def test_late_events_after_finish_are_still_logged(tmp_path: Path) -> None:
    recorder = record_bare(tmp_path)
    recorder.append({"event": "state", "state": "completed"})
    assert read_events(recorder.folder / "events.jsonl")[-1]["event"] == "state"


def test_count_rows_get_position_and_truth_from_their_frame(tmp_path: Path) -> None:
    protocol, bench = write_inputs(tmp_path / "inputs")
    events = RunEvents()
    recorder = RunRecorder(tmp_path / "runs", protocol, bench)
    recorder.attach(events)
    meta = {"stage": {"x": 1400.0, "y": -90.0, "z": 3.0}, "truth": {"count": 17},
            "zone": "CD63", "field": 1, "channel": "AF555"}
    events.frame.emit(Frame(np.zeros((8, 8), np.uint16), meta))
    events.counted.emit({"t_s": 1.0, "step": 3, "zone": "CD63", "field": 1, "channel": "AF555",
                         "count": 15, "x_um": None, "y_um": None, "true_count": None})
    recorder.finish("completed", "done")
    row = RunFolder.open(recorder.folder).counts[0]
    assert (row["x_um"], row["y_um"], row["true_count"]) == (1400.0, -90.0, 17)


def test_a_run_that_ends_while_the_index_looks_at_it_is_not_cut_off(tmp_path: Path) -> None:
    protocol, bench = write_inputs(tmp_path / "inputs")
    recorder = RunRecorder(tmp_path / "runs", protocol, bench)
    seen = RunFolder.open(recorder.folder)  # read while the run goes: "running"
    assert seen.info["status"] == "running" and not is_cut_off(seen)
    recorder.finish("completed", "all steps done")  # ends before the lock is looked at
    assert not is_cut_off(seen)
    assert RunIndex(tmp_path / "runs").refresh() == []
    assert RunFolder.open(recorder.folder).info["status"] == "completed"
