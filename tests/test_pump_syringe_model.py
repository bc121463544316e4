"""The simulated syringe mechanics: volume = rate x time, target, end of travel, stall."""

from __future__ import annotations

import pytest

from hardware_sim.syringe import INFUSE, WITHDRAW, SyringePumpModel


class Clock:
    def __init__(self) -> None:
        self.t = 0.0

    def __call__(self) -> float:
        return self.t


def model(contents: float = 500.0, clock: Clock | None = None) -> SyringePumpModel:
    return SyringePumpModel("p", "sample", 4.699, 1000.0, contents, now=clock or Clock())


def test_volume_is_rate_times_time_and_stops_at_target() -> None:
    clock = Clock()
    pump = model(clock=clock)
    pump.rate_ul_min, pump.target_ul = 60.0, 30.0
    pump.start(fresh=True)
    clock.t = 10.0
    assert pump.flow_ul_per_min(10.0) == 60.0
    assert pump.infused_ul == pytest.approx(10.0)
    clock.t = 100.0
    assert pump.flow_ul_per_min(100.0) == 0.0
    assert (pump.infused_ul, pump.contents_ul, pump.ended) == (30.0, 470.0, "target")


def test_end_of_travel_both_ways() -> None:
    clock = Clock()
    pump = model(contents=5.0, clock=clock)
    pump.rate_ul_min = 60.0
    pump.start(fresh=True)
    clock.t = 60.0
    pump.update()
    assert (pump.contents_ul, pump.running, pump.ended) == (0.0, False, "end_of_travel")
    pump.direction = WITHDRAW
    pump.start(fresh=True)
    clock.t = 10_000.0
    pump.update()
    assert (pump.contents_ul, pump.ended) == (1000.0, "end_of_travel")
    assert pump.withdrawn_ul == pytest.approx(1000.0)
    pump.start(fresh=True)  # already full: stops at once
    assert not pump.running


def test_stall_and_stop_keep_the_pusher_where_it_is() -> None:
    clock = Clock()
    pump = model(clock=clock)
    pump.rate_ul_min, pump.direction = 30.0, INFUSE
    pump.start(fresh=True)
    clock.t = 2.0
    pump.stall()
    clock.t = 50.0
    assert pump.flow_ul_per_min(50.0) == 0.0
    assert (pump.infused_ul, pump.ended) == (pytest.approx(1.0), "stall")
    pump.start(fresh=False)
    clock.t = 52.0
    pump.stop()
    assert pump.infused_ul == pytest.approx(2.0)
    pump.clear_counters()
    assert (pump.infused_ul, pump.withdrawn_ul) == (0.0, 0.0)
