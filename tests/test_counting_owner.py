"""One counting owner: a run on the simulated bench counts every frame once, on the streaming
pipeline; the run records that count (counts.csv), its detections (spots.csv) and its
parameters (run.json); the GUI overlay shows that same count for the frame on screen; and
`chipctl count` on the saved OME-TIFF, with the parameters the run recorded, finds exactly it.
"""

from __future__ import annotations

import csv
import io
import json
import time
from contextlib import redirect_stdout
from pathlib import Path

import pytest
from simbench import sim_engine

from chipctl.cli.main import main
from chipctl.protocol import parse_protocol
from chipctl.run.counting import CountedFrame
from chipctl.run.events import RunEvents, RunState
from chipctl.vision.factory import params_from_record
from gui.frames import FramePreparer, FrameSlot

pytestmark = pytest.mark.timeout(90)

CAPTURE = """
name: capture and image
steps:
  - sample: {pump: sample_pump, rate: 20 uL/min, volume: 80 uL}
  - stain: {pump: stain_pump, rate: 10 uL/min, volume: 20 uL}
  - image: {zones: [CD63], fields: 2, field_spacing: 350 um,
            channels: [{channel: AF555, exposure: 50 ms, power: 80 %}]}
"""


def overlay_count(frame: CountedFrame) -> int:
    """What the live view's spot overlay shows for the frame (gui.frames, no Qt needed)."""
    slot = FrameSlot()
    preparer = FramePreparer(slot, counter=lambda image: pytest.fail("counted again"))
    preparer.count_spots.set()
    try:
        slot.put(frame)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            shown = preparer.result()
            if shown is not None and shown.spots is not None:
                return int(shown.spots.count)
            time.sleep(0.01)
        raise AssertionError("the overlay never showed the frame")
    finally:
        preparer.stop()


def count_saved(path: Path) -> int:
    out = io.StringIO()
    with redirect_stdout(out):
        assert main(["count", "--json", str(path)]) == 0
    return int(json.loads(out.getvalue())["count"])


def test_run_count_overlay_count_and_recount_of_the_saved_frame_agree(tmp_path: Path) -> None:
    with sim_engine(tmp_path, speed=200) as (engine, _bench):
        events = RunEvents()
        shown: list[CountedFrame] = []
        events.frame.connect(shown.append)
        runner = engine.start_run(parse_protocol(CAPTURE, "capture.yaml"), {}, events)
        assert runner.wait(60) == RunState.COMPLETED, runner.reason
        folder = engine.recorder.folder if engine.recorder else None
    assert folder is not None and len(shown) == 2
    info = json.loads((folder / "run.json").read_text())
    assert params_from_record(info["counting"]) == engine.count_params
    assert engine.count_params.calibration is not None  # the simulated camera's calibration
    with (folder / "counts.csv").open() as handle:
        recorded = [int(row["count"]) for row in csv.DictReader(handle)]
    with (folder / "spots.csv").open() as handle:
        spots = list(csv.DictReader(handle))
    frames = sorted((folder / "frames").glob("*.ome.tif"))
    assert len(frames) == 2 and min(recorded) > 10
    for seq, (frame, count, saved) in enumerate(zip(shown, recorded, frames, strict=True)):
        assert frame.result is not None and frame.result.count == count
        assert overlay_count(frame) == count
        assert count_saved(saved) == count
        assert sum(int(row["seq"]) == seq for row in spots) == count
        assert {row["file"] for row in spots if int(row["seq"]) == seq} == {
            f"frames/{saved.name}"}
