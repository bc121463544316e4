"""The `valve` step on the simulated bench: the bench file names the VICI selector valve, the
registry builds its driver, and the run turns the emulated valve (asserted on the simulator's
control channel, not on the driver's own account)."""

from __future__ import annotations

from pathlib import Path

import pytest
from simbench import sim_engine, status

from chipctl.cli.main import main
from chipctl.protocol import parse_protocol
from chipctl.run.events import RunEvents, RunState

pytestmark = pytest.mark.timeout(60)

SELECT = """
name: select ports
steps:
  - valve: {valve: valve, port: 7}
  - valve: {valve: valve, port: 3}
"""


def test_the_valve_step_turns_the_simulated_valve(tmp_path: Path) -> None:
    with sim_engine(tmp_path, speed=50) as (engine, bench):
        assert set(engine.valves()) == {"valve"}
        records: list[dict] = []
        events = RunEvents()
        events.record.connect(records.append)
        runner = engine.start_run(parse_protocol(SELECT, "select.yaml"), {}, events)
        assert runner.wait(30) == RunState.COMPLETED, runner.reason
        valve = status(bench)["valve"]
    assert (valve["position"], valve["moving"]) == (3, False)
    assert [r["label"] for r in records if r["event"] == "step_finished"] == [
        "1. valve", "2. valve"]


def test_a_valve_protocol_validates_on_the_simulated_bench(tmp_path: Path) -> None:
    path = tmp_path / "select.yaml"
    path.write_text(SELECT, encoding="utf-8")
    assert main(["validate", str(path), "--sim"]) == 0
    path.write_text(SELECT.replace("valve: valve,", "valve: rotary,", 1), encoding="utf-8")
    assert main(["validate", str(path), "--sim"]) == 2
