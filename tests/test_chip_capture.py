"""The simulated chip: capture under flow, specificity, labelling, bleaching."""

from __future__ import annotations

import numpy as np
import pytest
from scope_support import ConstantFlow, ManualClock

from hardware_sim.chip import Zone, chip_from_spec, default_chip, diffusivity_um2_s
from hardware_sim.world import Reagent, World

SAMPLE = Reagent("sample", 1e8, {"CD9": 0.7, "CD63": 0.5, "CD81": 0.0}, ("AF488", "AF555"))


def flowing_world(conc: float = 1e8, rate: float = 2.0, seed: int = 3) -> World:
    world = World(clock=ManualClock(), seed=seed)  # type: ignore[arg-type]
    world.chip = default_chip(seed=seed)
    world.reagents["sample"] = Reagent("sample", conc, dict(SAMPLE.markers), SAMPLE.labels)
    world.pumps["p1"] = ConstantFlow("sample", rate)
    return world


def run(world: World, seconds: float, step: float = 5.0) -> list[dict[str, int]]:
    history = []
    world.advance()  # the chip integrates from its first advance
    for _ in range(int(seconds / step)):
        world.clock.t += step  # type: ignore[attr-defined]
        world.advance()
        history.append(world.chip.counts())
    return history


def test_stokes_einstein_matches_reference_table() -> None:
    assert diffusivity_um2_s(100) == pytest.approx(4.9, rel=0.03)
    assert diffusivity_um2_s(30) == pytest.approx(16.4, rel=0.03)


def test_levêque_flux_matches_worked_example() -> None:
    chip = default_chip(efficiency=1.0, channel_height_um=50, channel_width_um=1000)
    zone = Zone("long", "CD9", 0, 0, width_um=10000, height_um=1000)
    # spot_counting.md §4.5: 1 uL/min, 1e9/mL, L = 10 mm -> 3.7e-4 per um^2 per s
    assert chip.transport_flux(1e9, 1.0, zone) == pytest.approx(3.7e-4, rel=0.1)
    # full collection caps the flux at low flow: J <= c0 Q
    cap = 1e9 * 1e-12 * (0.01 * 1e9 / 60) / (1000 * 10000)
    assert chip.transport_flux(1e9, 0.01, zone) <= cap * 1.0001


def test_count_grows_over_time_on_matching_zones() -> None:
    world = flowing_world()
    history = run(world, 60)
    cd9 = [h["CD9"] for h in history]
    assert cd9[-1] > cd9[len(cd9) // 2] > cd9[0] > 0
    assert all(b >= a for a, b in zip(cd9, cd9[1:], strict=False))
    final = history[-1]
    assert final["CD63"] > 0.3 * final["CD9"]
    # CD81-negative sample: the CD81 zone and the isotype zone get only nonspecific capture
    assert final["CD81"] < 0.1 * final["CD9"]
    assert final["isotype"] < 0.1 * final["CD9"]


def test_capture_faster_at_higher_concentration_and_linear() -> None:
    low = run(flowing_world(conc=5e7), 60)[-1]["CD9"]
    high = run(flowing_world(conc=5e8), 60)[-1]["CD9"]
    assert high == pytest.approx(10 * low, rel=0.25)


def test_no_flow_no_capture_and_stopped_pump_stops_capture() -> None:
    world = flowing_world()
    world.pumps["p1"] = ConstantFlow("sample", 2.0, start=0.0, stop=20.0)
    history = run(world, 60)
    assert history[3]["CD9"] > 0
    assert history[-1] == history[4]  # nothing after the pump stopped at 20 s


def test_prelabelled_sample_labels_only_marker_positive_vesicles() -> None:
    world = flowing_world()
    run(world, 30)
    v = world.chip.vesicles
    zone = v.view("zone")
    dyes = v.view("dyes")
    positive = v.view("positive")
    assert (dyes[:, 0] > 0).sum() > 0
    assert np.all(dyes[positive[:, 0] == 0, 0] == 0)  # AF488 only on CD9-positive
    assert np.all(dyes[:, 2] == 0)  # AF647 was never flowed
    assert positive[zone == 0, 0].mean() > 0.95  # the CD9 zone holds CD9-positive vesicles


def test_detection_antibody_flowed_later_labels_captured_vesicles() -> None:
    world = flowing_world()
    world.reagents["sample"] = Reagent("sample", 1e8, {"CD9": 0.8, "CD81": 0.6})
    world.reagents["detect"] = Reagent("detect", labels=("AF647",))
    world.pumps["p1"] = ConstantFlow("sample", 2.0, stop=30.0)
    world.pumps["p2"] = ConstantFlow("detect", 2.0, start=30.0)
    run(world, 30)
    assert world.chip.vesicles.view("dyes").sum() == 0
    run(world, 600, step=10)
    v = world.chip.vesicles
    cd81_positive = v.view("positive")[:, 2]
    labelled = v.view("dyes")[:, 2] > 0
    assert labelled[cd81_positive].mean() > 0.9
    assert not labelled[~cd81_positive].any()


def test_bleaching_removes_dyes() -> None:
    world = flowing_world()
    run(world, 20)
    chip = world.chip
    rows = np.arange(chip.vesicles.n)
    before = chip.vesicles.view("dyes")[:, 0].sum()
    chip.bleach(rows, "AF488", 0.5)
    after = chip.vesicles.view("dyes")[:, 0].sum()
    assert after == pytest.approx(before / 2, rel=0.1)


def test_chip_from_spec() -> None:
    chip = chip_from_spec(
        {
            "zones": [
                {"name": "CD63", "x_um": 0, "y_um": 0},
                {"name": "ctrl", "antibody": "isotype", "x_um": 2000, "y_um": 0, "width_um": 500},
            ],
            "efficiency": 0.5,
            "tilt": [0.001, 0.0],
        }
    )
    assert [z.antibody for z in chip.zones] == ["CD63", None]
    assert chip.zone_at(2200, 0).name == "ctrl" and chip.zone_at(2300, 0) is None
    assert chip.surface_z(1000, 0) == pytest.approx(1.0)
    assert len(chip_from_spec({}).zones) == 4
