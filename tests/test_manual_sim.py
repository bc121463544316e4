"""Manual work on the simulated bench over real sockets: what the session records agrees with
what the simulator's own state says happened (its control channel), and the interlocks stop
what they should (an emergency stop, the stage's limit switch, the soft travel limits)."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml
from simbench import fault, lights_on, pumps_running, sim_engine, simulated_bench, status

from chipctl.config.bench import load_bench
from chipctl.engine import Engine
from chipctl.manual import ManualRefused
from chipctl.runs import RunFolder
from drivers.errors import StageFault

pytestmark = pytest.mark.timeout(120)


def wait_for(condition: Callable[[], object], timeout_s: float = 60.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, "condition not reached in time"
        time.sleep(0.02)


def recorded(engine: Engine, kind: str) -> list[dict[str, Any]]:
    assert engine.manual.folder is not None
    return [e for e in RunFolder.open(engine.manual.folder).events if e["event"] == kind]


def test_a_manual_infuse_delivers_what_the_session_records(tmp_path: Path) -> None:
    with sim_engine(tmp_path, speed=100) as (engine, bench):
        before = status(bench)["sample_pump"]["contents_ul"]
        engine.manual.infuse("sample_pump", 30.0, 6.0)
        wait_for(lambda: not engine.manual.flowing())
        after = status(bench)["sample_pump"]["contents_ul"]
        done = recorded(engine, "pump_done")
        syringe = recorded(engine, "syringe")[-1]
        assert recorded(engine, "interlock") == []
    assert before - after == pytest.approx(6.0, abs=0.05)
    assert len(done) == 1 and done[0]["delivered_ul"] == pytest.approx(6.0, abs=0.05)
    assert syringe["contents_ul"] == pytest.approx(after, abs=0.05)


def test_an_emergency_stop_during_a_manual_flow_stops_the_bench_and_is_recorded(
        tmp_path: Path) -> None:
    with sim_engine(tmp_path, speed=50) as (engine, bench):
        before = status(bench)["buffer_pump"]["contents_ul"]
        engine.manual.infuse("buffer_pump", 10.0, 200.0)  # 20 min of protocol time
        engine.manual.light("led", "AF555", 40.0)
        wait_for(lambda: pumps_running(status(bench)) == ["buffer_pump"])
        assert lights_on(status(bench)) != []
        assert engine.emergency_stop() == []
        devices = status(bench)
        assert pumps_running(devices) == [] and lights_on(devices) == []
        moved = before - devices["buffer_pump"]["contents_ul"]
        done = recorded(engine, "pump_done")
        stops = recorded(engine, "emergency_stop")
    assert len(stops) == 1 and stops[0]["failures"] == []
    assert 0 < moved < 200
    assert len(done) == 1 and done[0]["delivered_ul"] == pytest.approx(moved, abs=0.05)


def test_a_move_past_the_stage_travel_is_stopped_by_the_limit_switch_and_recorded(
        tmp_path: Path) -> None:
    with sim_engine(tmp_path, speed=100) as (engine, _bench):
        with pytest.raises(StageFault, match="limit latch"):
            engine.manual.move_to("stage", 80_000.0, 0.0)  # the simulated stage ends at 60 mm
        (interlock,) = recorded(engine, "interlock")
    assert interlock["device"] == "stage"
    assert interlock["reason"].startswith("interlock: stage fault (stage: XY stopped at")


def test_soft_travel_limits_refuse_a_manual_move_and_a_runs_move_before_anything_is_sent(
        tmp_path: Path) -> None:
    with simulated_bench(tmp_path, speed=100) as (_bench, path):
        document = yaml.safe_load(path.read_text())
        document["devices"]["stage"]["travel"] = {"x": ["-20 mm", "20 mm"], "z": ["-1 mm", "1 mm"]}
        path.write_text(yaml.safe_dump(document, sort_keys=False))
        engine = Engine(load_bench(path), runs_dir=tmp_path / "runs")
        engine.connect()
        try:
            stage = engine.stages()["stage"]
            start = stage.position()
            with pytest.raises(ManualRefused, match="x 25000 um is outside the stage's travel"):
                engine.manual.move_to("stage", 25_000.0, 0.0)
            with pytest.raises(StageFault, match="z 2000 um is outside the stage's travel"):
                stage.focus_to(2000.0)  # what a run's move meets: the adapter refuses it too
            assert stage.position() == start
            assert engine.manual.move_to("stage", 15_000.0, 100.0) == pytest.approx(
                (15_000.0, 100.0), abs=2.0)
        finally:
            engine.close()


def test_a_pump_lost_mid_flow_is_stopped_blindly_and_the_interlock_says_so(
        tmp_path: Path) -> None:
    with simulated_bench(tmp_path, 50) as (bench, path):
        document = yaml.safe_load(path.read_text())
        for spec in document["devices"].values():
            if spec["driver"] == "newera":
                spec["timeout_s"] = 0.2  # a silent pump costs 0.2 s per read, not 1 s
        path.write_text(yaml.safe_dump(document))
        engine = Engine(load_bench(path), runs_dir=tmp_path / "runs")
        engine.connect()
        try:
            engine.manual.infuse("buffer_pump", 10.0, 200.0)  # 20 min of protocol time
            wait_for(lambda: pumps_running(status(bench)) == ["buffer_pump"])
            fault(bench, "buffer_pump", "lockup")  # the pump hears, but no reply comes back
            wait_for(lambda: recorded(engine, "interlock"))
            devices = status(bench)
            (interlock,) = recorded(engine, "interlock")
            fault(bench, "buffer_pump", "lockup", 0)
        finally:
            engine.close()
    # the blind stop reached the pump although no reply could be read (a bit-flipped reply can
    # still decode, so a garbled link is no fixed answer for the confirmation: a silent one is)
    assert pumps_running(devices) == [] and devices["buffer_pump"]["ended"] == "stopped"
    assert interlock["device"] == "buffer_pump" and interlock["stop_confirmed"] is False
