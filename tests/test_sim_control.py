"""The simulator's control channel answers over its socket with the simulator's own state."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from hardware_sim.bench import SimBench
from hardware_sim.control import request


@pytest.fixture
def sim() -> Iterator[SimBench]:
    bench = SimBench(speed=10.0, seed=1).start()
    try:
        yield bench
    finally:
        bench.stop()


def test_chip_reports_captured_vesicles_per_zone(sim: SimBench) -> None:
    with sim.world.lock:
        sim.world.chip.deposit("CD81", 250)
    reply = request(sim.control.address, {"cmd": "chip"})
    assert reply["ok"] is True
    assert reply["chip"]["CD81"] == 250
    assert set(reply["chip"]) == {"CD9", "CD63", "CD81", "isotype"}


def test_unknown_command_and_unknown_device_are_refused(sim: SimBench) -> None:
    assert request(sim.control.address, {"cmd": "dance"}) == {
        "ok": False, "error": "unknown cmd 'dance'"}
    reply = request(sim.control.address,
                    {"cmd": "fault", "device": "nope", "fault": "drop_reply"})
    assert reply["ok"] is False and "nope" in reply["error"]
