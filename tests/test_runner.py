"""The runner's state machine and the executor's pause, abort, emergency stop and interlocks,
on an in-memory rig (fast; the simulator versions are in test_run_control_sim.py)."""

from __future__ import annotations

import threading
import time

import pytest
from fakes import make_runner

from chipctl.run.events import RunState

pytestmark = pytest.mark.timeout(30)

SLOW_SAMPLE = """
steps:
  - prime: {pump: buffer_pump, volume: 10 uL, rate: 100 uL/min}
  - sample: {pump: sample_pump, volume: 50 uL, rate: 5 uL/min}
  - image: {zones: [CD63], channels: [AF647]}
"""


def wait_for(predicate, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition not reached in time"
        time.sleep(0.005)


def pump_started(records: list[dict], pump: str) -> bool:
    return any(r["event"] == "pump_start" and r["pump"] == pump for r in records)


def test_a_run_completes_and_ends_safe() -> None:
    runner, rig, records = make_runner(SLOW_SAMPLE)
    states: list[str] = []
    runner.events.state_changed.connect(lambda state, reason: states.append(state))
    runner.start()
    assert runner.wait(20) == RunState.COMPLETED
    assert states == ["running", "completed"]
    assert rig.pumps["sample_pump"].total_infused == pytest.approx(50.0, abs=0.01)
    assert rig.camera.lit_snaps == ["AF647"]  # lit while snapping ...
    assert rig.light.on == {}  # ... dark afterwards
    assert rig.stage.visits == [(1500.0, 0.0)]
    assert records[-2]["event"] == "safe_state" and records[-2]["state"] == "completed"


def test_pause_holds_the_fluidics_and_resume_delivers_the_full_volume() -> None:
    runner, rig, records = make_runner(SLOW_SAMPLE, time_scale=500)  # the flow: 1.2 s of wall
    pump = rig.pumps["sample_pump"]
    runner.start()
    wait_for(lambda: pump_started(records, "sample_pump"))
    time.sleep(0.1)  # ~50 s of protocol time into a 600 s flow
    runner.pause()
    wait_for(lambda: runner.state == RunState.PAUSED)
    held = pump.total_infused
    assert not pump.running and rig.light.on == {}
    assert 0 < held < 50
    time.sleep(0.1)
    assert pump.total_infused == held  # nothing moves while paused
    runner.resume()
    assert runner.wait(20) == RunState.COMPLETED
    assert pump.total_infused == pytest.approx(50.0, abs=0.01)
    starts = [c for c in pump.commands if c.startswith("infuse")]
    assert starts[0] == "infuse 5 50.0"
    assert len(starts) == 2 and float(starts[1].split()[2]) == pytest.approx(50 - held, abs=0.01)
    done = next(r for r in records if r["event"] == "pump_done" and r["pump"] == "sample_pump")
    assert len(done["segments"]) == 2 and sum(done["segments"]) == pytest.approx(50, abs=0.01)


def test_abort_brings_the_bench_to_a_safe_state() -> None:
    runner, rig, records = make_runner(SLOW_SAMPLE)
    runner.start()
    wait_for(lambda: pump_started(records, "sample_pump"))
    runner.abort()
    assert runner.wait(10) == RunState.ABORTED
    assert runner.reason == "aborted by operator"
    assert not any(p.running for p in rig.pumps.values()) and rig.light.on == {}
    ended = next(r for r in records if r["event"] == "safe_state")
    assert ended["state"] == "aborted" and ended["step"] == "2. sample"


def test_emergency_stop_halts_everything_from_the_calling_thread() -> None:
    runner, rig, records = make_runner(SLOW_SAMPLE)
    runner.start()
    wait_for(lambda: pump_started(records, "sample_pump"))
    rig.light.light("AF488", 50)  # as if something had the light on
    failures = runner.emergency_stop()
    # Already stopped when emergency_stop returns, before the run thread notices:
    assert failures == [] and not rig.pumps["sample_pump"].running and rig.light.on == {}
    assert runner.wait(10) == RunState.ABORTED and runner.reason == "emergency stop"
    assert any(r["event"] == "emergency_stop" for r in records)


def test_emergency_stop_between_poll_and_check_is_an_abort_not_a_shortfall() -> None:
    """The stop lands after the run's last checkpoint and before it polls the pump: the pump is
    found stopped short, and the run must still end as the emergency stop the operator pressed."""
    runner, rig, records = make_runner(SLOW_SAMPLE)
    pump = rig.pumps["sample_pump"]
    polled = pump.is_running
    stopped: list[list[str]] = []

    def poll_after_a_stop() -> bool:
        if not stopped and pump_started(records, "sample_pump"):
            stopped.append(runner.emergency_stop())  # what F12 does from another thread
        return polled()

    pump.is_running = poll_after_a_stop  # type: ignore[method-assign]
    runner.start()
    assert runner.wait(10) == RunState.ABORTED, runner.reason
    assert runner.reason == "emergency stop" and stopped == [[]]
    ended = next(r for r in records if r["event"] == "safe_state")
    assert ended["state"] == "aborted"


@pytest.mark.parametrize(("setup", "text", "reason"), [
    (lambda rig: setattr(rig.pumps["sample_pump"], "stall_after_ul", 5.0), SLOW_SAMPLE,
     "interlock: pump stall alarm, an occlusion or the syringe's end (sample_pump: motor"),
    (lambda rig: setattr(rig.pumps["stain_pump"].syringe, "contents_ul", 5.0),
     "steps: [{stain: {pump: stain_pump, volume: 20 uL, rate: 50 uL/min}}]",
     "interlock: end of travel: the syringe on stain_pump is empty after 5.0 of 20 uL"),
    (lambda rig: (setattr(rig.pumps["stain_pump"].syringe, "contents_ul", 5.0),
                  setattr(rig.pumps["stain_pump"], "stall_after_ul", 5.0)),
     "steps: [{stain: {pump: stain_pump, volume: 20 uL, rate: 50 uL/min}}]",
     "interlock: end of travel: the syringe on stain_pump is empty after 5.0 of 20 uL"),
    (lambda rig: None, "steps: [{wash: {pump: buffer_pump, volume: 500 uL, rate: 5 mL/min}}]",
     "interlock: over-pressure: buffer_pump at 5000 uL/min would drive an estimated 165 kPa"),
    (lambda rig: setattr(rig.camera, "timeout", True),
     "steps: [{image: {zones: [CD9], channels: [AF488]}}]",
     "interlock: camera timeout, no frame arrived (camera: no frame within"),
])
def test_interlocks_fail_the_run_safely_with_the_reason(setup, text: str, reason: str) -> None:
    runner, rig, records = make_runner(text)
    setup(rig)
    runner.start()
    assert runner.wait(20) == RunState.FAILED
    assert runner.reason.startswith(reason), runner.reason
    assert not any(p.running for p in rig.pumps.values()) and rig.light.on == {}
    assert next(r for r in records if r["event"] == "safe_state")["reason"] == runner.reason


MONITOR = """
steps:
  - monitor:
      zone: CD63
      channel: AF647
      flow: {pump: sample_pump, rate: 10 uL/min, volume: 100 uL}
      interval: 30 s
      until_plateau: {points: 3, tolerance: 5 %, min_count: 20}
"""


def test_monitor_stops_at_a_plateau_before_the_budget() -> None:
    runner, rig, records = make_runner(MONITOR)
    rig.camera.saturation = 200  # the zone saturates at 200 vesicles (20 uL of sample)
    counts: list[int] = []
    runner.events.counted.connect(lambda row: counts.append(row["count"]))
    runner.start()
    assert runner.wait(20) == RunState.COMPLETED
    delivered = rig.pumps["sample_pump"].total_infused
    assert 20 <= delivered < 60  # stopped soon after saturating, far below the 100 uL budget
    assert counts[-4:-1] == [200, 200, 200]
    assert any(r["event"] == "plateau" for r in records)


def test_monitor_without_plateau_spends_the_budget_and_survives_a_pause() -> None:
    runner, rig, records = make_runner(MONITOR.replace("until_plateau", "#"), time_scale=500)
    pump = rig.pumps["sample_pump"]
    counts: list[int] = []
    runner.events.counted.connect(lambda row: counts.append(row["count"]))
    runner.start()
    wait_for(lambda: pump_started(records, "sample_pump"))
    time.sleep(0.05)
    runner.pause()
    wait_for(lambda: runner.state == RunState.PAUSED)
    assert not pump.running and 0 < pump.total_infused < 100
    runner.resume()
    assert runner.wait(20) == RunState.COMPLETED
    assert pump.total_infused == pytest.approx(100.0, abs=0.01)
    assert len([c for c in pump.commands if c.startswith("infuse")]) == 2
    assert counts == sorted(counts) and len(counts) >= 5 and counts[-1] == 1000


def test_prompt_waits_for_the_operator_and_fills_in_parameters() -> None:
    text = """
parameters: {sample: {}}
steps:
  - prompt: "Load {sample}"
  - wait: 1 s
"""
    runner, _, records = make_runner(text, parameters={"sample": "donor 3"})
    prompts: list[str] = []
    runner.events.prompt.connect(prompts.append)
    runner.start()
    wait_for(lambda: prompts == ["Load donor 3"])
    time.sleep(0.05)
    assert runner.state == RunState.RUNNING and runner.current_step == 0
    threading.Timer(0.01, runner.confirm).start()
    assert runner.wait(10) == RunState.COMPLETED


def test_pause_before_start_then_abort_while_paused() -> None:
    runner, rig, _ = make_runner(SLOW_SAMPLE)
    runner.pause()
    runner.start()
    wait_for(lambda: runner.state == RunState.PAUSED)
    assert all(not p.commands for p in rig.pumps.values())  # nothing moved
    runner.abort("changed my mind")
    assert runner.wait(10) == RunState.ABORTED and runner.reason == "changed my mind"


def test_monitor_runs_flows_alongside_and_pauses_them_together() -> None:
    text = MONITOR.replace("until_plateau", "with: [{pump: stain_pump, rate: 2.5 uL/min}]\n#")
    runner, rig, records = make_runner(text, time_scale=500)
    sample, stain = rig.pumps["sample_pump"], rig.pumps["stain_pump"]
    runner.start()
    wait_for(lambda: pump_started(records, "stain_pump"))
    time.sleep(0.05)
    runner.pause()
    wait_for(lambda: runner.state == RunState.PAUSED)
    assert not sample.running and not stain.running
    held = (sample.total_infused, stain.total_infused)
    assert held[1] == pytest.approx(held[0] / 4, rel=0.05)  # they ran together
    runner.resume()
    assert runner.wait(20) == RunState.COMPLETED
    assert sample.total_infused == pytest.approx(100.0, abs=0.01)
    assert stain.total_infused == pytest.approx(25.0, abs=0.05)


def test_flows_alongside_count_towards_the_pressure_interlock() -> None:
    text = MONITOR.replace("rate: 10 uL/min", "rate: 2000 uL/min").replace(
        "until_plateau", "with: [{pump: stain_pump, rate: 1500 uL/min}]\n#")
    runner, rig, _ = make_runner(text)
    runner.start()
    assert runner.wait(20) == RunState.FAILED
    assert runner.reason.startswith(
        "interlock: over-pressure: sample_pump + stain_pump at 3500 uL/min")
    assert rig.pumps["sample_pump"].commands == ["stop"]  # never started; stopped at the end


def test_withdrawn_volume_is_recorded_as_negative() -> None:
    text = "steps: [{flow: {pump: buffer_pump, direction: withdraw, volume: 5 uL, rate: 5 uL/s}}]"
    runner, rig, records = make_runner(text)
    rig.pumps["buffer_pump"].syringe.contents_ul = 4000.0
    runner.start()
    assert runner.wait(10) == RunState.COMPLETED
    assert rig.pumps["buffer_pump"].syringe.contents_ul == pytest.approx(4005.0)
    done = next(r for r in records if r["event"] == "pump_done")
    assert (done["direction"], done["delivered_ul"]) == ("withdraw", pytest.approx(-5.0))
