"""The simulated chip and syringes are made within their maker's tolerance: the truth a run is
judged against is the part as built, while the bench file gives the drawing and the tolerance."""

from __future__ import annotations

import numpy as np
import pytest
import yaml

from hardware_sim.bench import SimBench
from hardware_sim.chip import default_chip
from hardware_sim.manufacturing import NOMINAL, Tolerance, as_built_chip, syringes_as_built
from hardware_sim.syringe import SyringePumpModel


def test_chips_as_built_spread_around_their_drawing_by_the_tolerance() -> None:
    drawing = default_chip()
    chips = [as_built_chip(drawing, seed) for seed in range(300)]
    heights = np.array([c.channel_height_um for c in chips])
    widths = np.array([c.channel_width_um for c in chips])
    edges = np.array([[z.width_um for z in c.zones] for c in chips]).ravel()
    tol = Tolerance()
    # sd within ~4 standard errors of the tolerance (300 draws: se ~ 4 %)
    assert heights.mean() == pytest.approx(50.0, abs=0.5)
    assert heights.std() == pytest.approx(tol.channel_height_um, rel=0.17)
    assert widths.std() == pytest.approx(tol.channel_width_um, rel=0.17)
    assert edges.std() == pytest.approx(tol.zone_edge_um, rel=0.1)
    same = as_built_chip(drawing, 7), as_built_chip(drawing, 7)
    assert same[0].channel_height_um == same[1].channel_height_um  # one draw per seed
    exact = as_built_chip(drawing, 7, NOMINAL)
    assert exact.channel_height_um == 50.0 and exact.zones == drawing.zones


def test_a_chip_as_built_keeps_everything_but_its_geometry_as_drawn() -> None:
    drawing = default_chip(seed=4, site_density_per_um2=0.25, debris_per_mm2=0.0,
                           surface_z_um=3.0, label_map={"AF488": "CD63"})
    made = as_built_chip(drawing, 11)
    assert made.options == drawing.options
    assert (made.site_density_per_um2, made.surface_z_um, made.debris.x.size) == (0.25, 3.0, 0)
    assert made.channel_height_um != drawing.channel_height_um


def test_the_bench_file_gives_the_drawing_and_the_tolerance_not_the_part() -> None:
    bench = SimBench(seed=3)
    chip = bench.bench_document()["chip"]
    assert chip["channel"]["height"] == "50 um" and chip["channel"]["width"] == "1000 um"
    assert chip["tolerance"] == {"channel_height": "2 um", "channel_width": "10 um",
                                 "zone_size": "10 um"}
    assert bench.world.chip.channel_height_um != 50.0  # the one on the stage is not the drawing
    assert yaml.safe_load(yaml.safe_dump(chip)) == chip


def test_a_syringe_delivers_by_its_actual_bore_not_by_the_diameter_it_was_told() -> None:
    clock = {"t": 0.0}
    pump = SyringePumpModel("p", "sample", 4.699, 1000.0, 1000.0, lambda: clock["t"],
                            bore_mm=4.699 * 1.01)
    pump.rate_ul_min = 10.0
    pump.running = True
    pump.rate_ul_min = 10.0  # the record follows the setting once running
    clock["t"] = 60.0
    assert pump.flow_ul_per_min(30.0) == pytest.approx(10.0 * 1.01**2)
    pump.update()
    assert pump.infused_ul == pytest.approx(10.0)  # the pump's own count: by its setting
    specs = syringes_as_built([{"name": "a", "diameter_mm": 4.699}], seed=1, port=0)
    assert specs[0]["bore_mm"] != 4.699
    bores = [syringes_as_built([{"name": "a", "diameter_mm": 10.0}], seed=s, port=0)[0]["bore_mm"]
             for s in range(300)]
    assert np.std(bores) / 10.0 == pytest.approx(Tolerance().syringe_bore, rel=0.17)
