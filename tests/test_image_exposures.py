"""`image` with `frames: K`: several exposures of each field, in protocol files and scripts,
booked by the dry run (images, time, light dose), acquired by the executor and counted once
on the simulated bench, every exposure recorded."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
from simbench import sim_engine

from chipctl.config.bench import load_bench
from chipctl.config.sourcefile import SourceError
from chipctl.protocol import parse_protocol
from chipctl.protocol.script import load_script
from chipctl.protocol.validate import check_protocol
from chipctl.run.counting import CountedFrame
from chipctl.run.events import RunEvents, RunState

OFFLINE_BENCH = Path(__file__).parent / "data" / "bench_offline.yaml"
IMAGE = """
name: exposures
steps:
  - image: {{zones: [CD63], fields: 2, field_spacing: 350 um, {frames}
            channels: [{{channel: AF555, exposure: 200 ms, power: 80 %}},
                       {{channel: AF647, exposure: 100 ms, power: 50 %}}]}}
"""


def _image(frames: str) -> str:
    return IMAGE.format(frames=frames)


def test_frames_in_a_file_and_in_a_script(tmp_path: Path) -> None:
    step = parse_protocol(_image("frames: 4,"), "p.yaml").steps[0]
    assert step.exposures == 4 and step.frames == 2 * 2 * 4
    assert parse_protocol(_image(""), "p.yaml").steps[0].exposures == 1
    script = tmp_path / "s.py"
    script.write_text(
        "from chipctl.protocol.script import ProtocolBuilder\n"
        "p = ProtocolBuilder('exposures')\n"
        "p.image(['CD63'], fields=2, field_spacing='350 um', frames=4, channels=[\n"
        "    p.channel('AF555', exposure='200 ms', power='80 %'),\n"
        "    p.channel('AF647', exposure='100 ms', power='50 %')])\n"
        "protocol = p.build()\n")
    assert load_script(script).steps == parse_protocol(_image("frames: 4,"), "p.yaml").steps


@pytest.mark.parametrize("value", ["0", "101", "2.5", "four"])
def test_bad_frames_are_refused_naming_the_line(value: str) -> None:
    with pytest.raises(SourceError, match=r"p\.yaml:4: .*image\.frames"):
        parse_protocol(_image(f"frames: {value},"), "p.yaml")


def test_dry_run_books_every_exposure_its_time_and_its_light() -> None:
    bench = load_bench(OFFLINE_BENCH)
    one = check_protocol(parse_protocol(_image(""), "p.yaml"), bench)
    four = check_protocol(parse_protocol(_image("frames: 4,"), "p.yaml"), bench)
    assert one[0] == [] and four[0] == []
    assert (one[1].images, four[1].images) == (4, 16)
    assert four[1].duration_s - one[1].duration_s == pytest.approx(2 * 3 * (0.2 + 0.1))
    assert four[1].light_s_by_channel == pytest.approx({"AF555": 1.6, "AF647": 0.8})
    assert four[1].light_dose_by_channel == pytest.approx({"AF555": 128.0, "AF647": 40.0})
    summary = four[1].as_dict()
    assert summary["light_dose_pct_s_by_channel"] == {"AF555": 128.0, "AF647": 40.0}


CAPTURE = """
name: one exposure then three of the same fields
steps:
  - sample: {pump: sample_pump, rate: 20 uL/min, volume: 80 uL}
  - stain: {pump: stain_pump, rate: 10 uL/min, volume: 20 uL}
  - image: {zones: [CD63], fields: 2, field_spacing: 350 um,
            channels: [{channel: AF555, exposure: 10 ms, power: 10 %}]}
  - image: {zones: [CD63], fields: 2, field_spacing: 350 um, frames: 3,
            channels: [{channel: AF555, exposure: 10 ms, power: 10 %}]}
"""
# (10 ms at 10 %: photon-starved at 40x / 0.95, so that one exposure misses the dim vesicles)


@pytest.mark.timeout(120)
def test_frames_k_end_to_end_on_the_simulated_bench(tmp_path: Path) -> None:
    with sim_engine(tmp_path, speed=200) as (engine, _bench):
        events = RunEvents()
        shown: list[CountedFrame] = []
        events.frame.connect(shown.append)
        runner = engine.start_run(parse_protocol(CAPTURE, "k.yaml"), {}, events)
        assert runner.wait(90) == RunState.COMPLETED, runner.reason
        folder = engine.recorder.folder if engine.recorder else None
    assert folder is not None
    assert len(shown) == 2 + 6  # one exposure of 2 fields, then 3 of each, all published
    three = shown[2:]
    assert [f.metadata["exposure_index"] for f in three] == [0, 1, 2, 0, 1, 2]
    assert [f.metadata["field"] for f in three] == [1, 1, 1, 2, 2, 2]  # fields count from 1
    counted = [f for f in three if f.result is not None]
    assert len(counted) == 2 and all(f.result.exposures == 3 for f in counted)
    with (folder / "counts.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    assert [int(r["count"]) for r in rows[2:]] == [f.result.count for f in counted]
    assert len(sorted((folder / "frames").glob("*.ome.tif"))) == 8
    with (folder / "spots.csv").open() as handle:
        spots = list(csv.DictReader(handle))
    assert {r["seq"] for r in spots} == {"0", "1", "2", "5"}  # the fields' first exposures
    logged = [json.loads(line) for line in (folder / "events.jsonl").read_text().splitlines()]
    assert [e["exposures"] for e in logged if e.get("event") == "count"] == [1, 1, 3, 3]
    assert [e["exposure_index"] for e in logged if e.get("event") == "frame"] == [
        0, 0, 0, 1, 2, 0, 1, 2]
    # the same vesicles (the simulator's truth), counted from one exposure and then from
    # three (after the first step's bleaching): the dim ones one exposure misses are found
    one = sum(int(r["count"]) for r in rows[:2])
    three_count = sum(int(r["count"]) for r in rows[2:])
    truth = sum(int(r["true_count"]) for r in rows[2:])
    assert three_count > 1.2 * one  # 1.33-2.3x over five runs
    assert three_count > 0.45 * truth  # 0.56-0.68 of the vesicles in view over five runs
