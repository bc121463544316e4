"""Capture and labelling while the fluid stands still (hardware_sim.stagnant): the zones keep
capturing the standing fluid by diffusion, up to the column's content, and a stain left in the
channel keeps labelling."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scope_support import ManualClock, pumped_world

from hardware_sim.chip import diffusivity_um2_s
from hardware_sim.stagnant import StandingFluid, slowest_rate_per_s
from hardware_sim.syringe import SyringePumpModel
from hardware_sim.world import Reagent, World

STOP_S = 16.0  # the fill (5 uL at 50 uL/min from t = 10 s) ends here


def world_with_pumps(seed: int = 2) -> World:
    world: World = pumped_world(seed)
    world.advance()
    return world


def flow(world: World, pump_name: str, at_s: float, rate: float, volume: float) -> None:
    clock: ManualClock = world.clock  # type: ignore[assignment]
    clock.t = at_s
    pump = world.pumps[pump_name]
    assert isinstance(pump, SyringePumpModel)
    pump.rate_ul_min, pump.target_ul = rate, volume
    pump.start(fresh=True)


def until(world: World, t: float) -> None:
    clock: ManualClock = world.clock  # type: ignore[assignment]
    clock.t = t
    for pump in world.pumps.values():
        assert isinstance(pump, SyringePumpModel)
        pump.update()
    world.advance()


def cd63_positive_after(world: World, t_s: float) -> int:
    """CD63+ vesicles on the CD63 zone that arrived after `t_s`."""
    v = world.chip.vesicles
    return int(np.sum((v.view("zone") == 1) & v.view("positive")[:, 1] & (v.view("t") >= t_s)))


def perfect_sink_share(k_per_s: float, t_s: float) -> float:
    """The share of a standing column's content a perfectly absorbing floor has taken after
    `t_s`: 1 - sum 8 / (m^2 pi^2) exp(-m^2 k t), m odd (k the slowest mode's rate)."""
    m = np.arange(1, 400, 2)
    return float(1 - np.sum(8 / (m**2 * math.pi**2) * np.exp(-(m**2) * k_per_s * t_s)))


def test_standing_sample_is_captured_up_to_the_columns_content() -> None:
    world = world_with_pumps()
    flow(world, "sample_pump", 10.0, 50.0, 5.0)
    chip = world.chip
    zone = chip.zones[1]
    content = 1e8 * 1e-12 * 0.8 * chip.channel_height_um * zone.area_um2  # CD63+ above it
    k = slowest_rate_per_s(float(diffusivity_um2_s(100.0)), chip.channel_height_um)
    assert 1 / k / 60 == pytest.approx(3.4, abs=0.1)  # minutes: 100 nm under a 50 um ceiling
    for minutes in (1, 3, 6, 20):
        until(world, STOP_S + 60 * minutes)
        got = cd63_positive_after(world, STOP_S)
        expected = content * perfect_sink_share(k, 60 * minutes)
        assert abs(got - expected) < 4 * math.sqrt(expected) + 0.03 * expected, minutes
    assert got == pytest.approx(content, rel=0.05)  # the column is used up: it stops there


def test_a_flush_takes_the_standing_sample_away() -> None:
    world = world_with_pumps()
    flow(world, "sample_pump", 10.0, 50.0, 5.0)
    flow(world, "buffer_pump", STOP_S + 2.0, 50.0, 5.0)  # 6 s of buffer: 5 uL, many volumes
    until(world, STOP_S + 600.0)
    assert cd63_positive_after(world, STOP_S + 10.0) == 0


def test_stain_left_standing_keeps_labelling() -> None:
    world = world_with_pumps()
    flow(world, "sample_pump", 10.0, 50.0, 5.0)
    flow(world, "buffer_pump", 20.0, 50.0, 5.0)
    flow(world, "stain_pump", 30.0, 50.0, 5.0)  # stops at 36 s: 6 s of stain flowed
    until(world, 38.0)
    chip = world.chip
    captured = chip.counts()["CD63"]
    early = chip.labelled_counts()["CD63"]["AF555"]
    until(world, 36.0 + 300.0)  # five label time constants standing
    late = chip.labelled_counts()["CD63"]["AF555"]
    assert early < 0.2 * captured
    assert late > 0.9 * 0.8 * captured  # CD63+ share of the captured, all but labelled
    flow(world, "buffer_pump", 400.0, 50.0, 5.0)  # washed: unlabelled ones stay so
    until(world, 410.0)
    before = chip.labelled_counts()["CD63"]["AF555"]
    until(world, 1000.0)
    assert chip.labelled_counts()["CD63"]["AF555"] == before


def test_the_standing_fluid_is_the_last_channel_volume_that_entered() -> None:
    sample, stain = Reagent("sample", vesicles_per_ml=1e8), Reagent("stain", labels=("AF555",))
    filled = StandingFluid.after(None, [(sample, 50.0), (stain, 5.0)], 5.5, 0.3)
    assert dict((r.name, s) for r, s in filled.contents) == pytest.approx(
        {"sample": 50 / 55, "stain": 5 / 55})
    tail = StandingFluid.after(filled, [(stain, 5.0)], 0.03, 0.3)  # a tenth of the channel
    assert dict((r.name, s) for r, s in tail.contents) == pytest.approx(
        {"sample": 0.9 * 50 / 55, "stain": 0.1 + 0.9 * 5 / 55})
    # in steps or at once: the same fill; a channel not yet filled holds the rest empty
    steps = None
    for _ in range(10):
        steps = StandingFluid.after(steps, [(sample, 2.0)], 0.02, 0.3)
    assert dict((r.name, s) for r, s in steps.contents) == pytest.approx({"sample": 0.2 / 0.3})
