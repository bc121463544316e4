"""Pause, resume, abort, emergency stop and interlocks on the simulated bench over real sockets,
asserted on the simulator's own state (its control channel) and on the run record."""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path

import pytest
from simbench import fault, lights_on, pumps_running, sim_engine, status

from chipctl.protocol import parse_protocol
from chipctl.run.events import RunEvents, RunState

pytestmark = pytest.mark.timeout(60)

# 50 uL at 5 uL/min: 600 s of protocol time, 1.2 s of wall time at speed 500.
SAMPLE_FLOW = """
name: pause test
steps:
  - sample: {pump: sample_pump, rate: 5 uL/min, volume: 50 uL}
"""

# Long enough (40 min of protocol time, ~5 s at speed 500) that a fault lands mid-flow even on a
# loaded machine.
LONG_FLOW = SAMPLE_FLOW.replace("50 uL}", "200 uL}")


def start(engine, text: str) -> tuple:
    events = RunEvents()
    records: list[dict] = []
    events.record.connect(records.append)
    runner = engine.start_run(parse_protocol(text, "test.yaml"), {}, events)
    return runner, records


def wait_for(predicate, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition not reached in time"
        time.sleep(0.01)


def flowing(records: list[dict], pump: str) -> bool:
    return any(r["event"] == "pump_start" and r["pump"] == pump for r in records)


def run_record(engine) -> tuple[dict, list[dict]]:
    folder = engine.recorder.folder
    info = json.loads((folder / "run.json").read_text())
    events = [json.loads(line) for line in (folder / "events.jsonl").read_text().splitlines()]
    return info, events


@pytest.mark.parametrize("pump", ["sample_pump", "stain_pump"])  # New Era, Harvard
def test_pause_resume_mid_flow_delivers_the_full_volume(tmp_path: Path, pump: str) -> None:
    text = SAMPLE_FLOW.replace("sample_pump", pump)
    with sim_engine(tmp_path, speed=500) as (engine, bench):
        before = status(bench)[pump]["contents_ul"]
        runner, records = start(engine, text)
        wait_for(lambda: flowing(records, pump))
        time.sleep(0.3)
        runner.pause()
        wait_for(lambda: runner.state == RunState.PAUSED)
        held = status(bench)
        assert pumps_running(held) == [] and lights_on(held) == []
        moved = before - held[pump]["contents_ul"]
        assert 1 < moved < 49, "the pause should land mid-flow"
        time.sleep(0.2)
        assert status(bench)[pump]["contents_ul"] == pytest.approx(before - moved)
        runner.resume()
        assert runner.wait(30) == RunState.COMPLETED, runner.reason
        after = status(bench)[pump]["contents_ul"]
    assert before - after == pytest.approx(50.0, abs=0.05)
    done = next(r for r in records if r["event"] == "pump_done")
    assert len(done["segments"]) == 2 and done["delivered_ul"] == pytest.approx(50.0, abs=0.05)


@pytest.mark.parametrize("how", ["abort", "emergency_stop"])
def test_abort_and_emergency_stop_leave_the_bench_safe_and_say_why(
        tmp_path: Path, how: str, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="drivers.wire")
    text = """
name: stop test
steps:
  - sample: {pump: sample_pump, rate: 5 uL/min, volume: 50 uL}
"""
    with sim_engine(tmp_path, speed=200) as (engine, bench):
        runner, records = start(engine, text)
        wait_for(lambda: flowing(records, "sample_pump"))
        wait_for(lambda: pumps_running(status(bench)) == ["sample_pump"])
        if how == "abort":
            runner.abort("operator pressed abort")
        else:
            engine.emergency_stop()
            assert pumps_running(status(bench)) == []  # already, before the run thread moves
            assert "-> b'*STP\\r'" in caplog.text  # the New Era broadcast: all pumps at once
        assert runner.wait(30) == RunState.ABORTED
        devices = status(bench)
        assert pumps_running(devices) == [] and lights_on(devices) == []
        info, events = run_record(engine)
    reason = "operator pressed abort" if how == "abort" else "emergency stop"
    assert (info["status"], info["reason"]) == ("aborted", reason)
    final = [e for e in events if e["event"] in ("state", "run_ended")][-2:]
    assert final[0] == {**final[0], "event": "state", "state": "aborted", "reason": reason}
    assert final[1] == {**final[1], "event": "run_ended", "status": "aborted", "reason": reason}
    ended = next(e for e in events if e["event"] == "safe_state")
    assert ended["step"] == "1. sample"
    assert any(e["event"] == "emergency_stop" for e in events) == (how == "emergency_stop")


def test_emergency_stop_during_imaging_turns_the_light_off(tmp_path: Path) -> None:
    with sim_engine(tmp_path, speed=200) as (engine, bench):
        engine.illuminators()["led"].light("AF647", 50)
        assert lights_on(status(bench)) != []
        engine.emergency_stop()  # no run: the engine still halts everything
        assert lights_on(status(bench)) == []


def test_a_syringe_emptier_than_the_bench_file_says_stops_at_its_end_of_travel(
        tmp_path: Path) -> None:
    """The bench file says 1 mL, the syringe really holds 4 uL: the pump's alarm stops the run
    (a New Era pump reports an end of travel as a stall: the reason says both)."""
    text = SAMPLE_FLOW.replace("50 uL}", "10 uL}")
    with sim_engine(tmp_path, speed=500) as (engine, bench):
        with bench.world.lock:
            bench.world.devices["sample_pump"].contents_ul = 4.0
        runner, _ = start(engine, text)
        assert runner.wait(30) == RunState.FAILED
        assert runner.reason.startswith(
            "interlock: pump stall alarm, an occlusion or the syringe's end"), runner.reason
        devices = status(bench)
        assert pumps_running(devices) == [] and devices["sample_pump"]["contents_ul"] == 0


def test_a_camera_that_stops_delivering_fails_the_run_with_the_light_off(tmp_path: Path) -> None:
    text = """
name: camera timeout
steps:
  - image: {zones: [CD9, CD63], channels: [AF488, AF555]}
"""
    with sim_engine(tmp_path, speed=500) as (engine, bench):
        fault(bench, "camera", "stall")
        runner, _ = start(engine, text)
        assert runner.wait(40) == RunState.FAILED
        assert runner.reason.startswith("interlock: camera timeout"), runner.reason
        assert lights_on(status(bench)) == []


@pytest.mark.parametrize(("injected", "reason"), [
    ("stall", "interlock: pump stall"),
    ("unplug", "interlock: device lost"),
    ("power_cycle", "interlock: pump reset alarm"),
])
def test_a_pump_fault_mid_flow_fails_the_run_with_its_interlock(
        tmp_path: Path, injected: str, reason: str) -> None:
    """A stall, an unplugged pump and a power cycle mid-flow: the run fails with the
    interlock's reason, recorded; every pump that can still be reached is stopped."""
    with sim_engine(tmp_path, speed=500) as (engine, bench):
        runner, _ = start(engine, LONG_FLOW)
        wait_for(lambda: "sample_pump" in pumps_running(status(bench)))
        fault(bench, "sample_pump", injected)
        assert runner.wait(40) == RunState.FAILED
        assert runner.reason.startswith(reason), runner.reason
        if injected != "unplug":
            assert pumps_running(status(bench)) == []
        info, events = run_record(engine)
    assert info["status"] == "failed" and info["reason"] == runner.reason
    if injected == "unplug":
        safe = next(e for e in events if e["event"] == "safe_state")
        assert any("sample_pump" in failure for failure in safe["failures"])  # could not stop it
