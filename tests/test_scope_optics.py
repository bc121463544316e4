"""The rendered frame's physics: camera noise, PSF and defocus, vignetting, bleaching, debris."""

from __future__ import annotations

import numpy as np
import pytest
from scope_support import ManualClock

from hardware_sim.camera import SimCameraEmulator
from hardware_sim.chip import default_chip
from hardware_sim.optics import Optics, Renderer, View, dye_for_wavelength, erf
from hardware_sim.world import World

CENTRE = (896, 896, 256, 256)


def render(chip, **view):
    options = {"x_um": 0.0, "y_um": 0.0, "z_um": 0.0, "excitation": [("AF488", 1.0)]}
    options["exposure_s"] = 0.05
    options.update(view)
    return Renderer(seed=1).render(chip, View(**options))


def test_erf_approximation() -> None:
    import math

    xs = np.linspace(-4, 4, 81)
    assert np.max(np.abs(erf(xs) - np.array([math.erf(x) for x in xs]))) < 2e-7


def test_wavelength_picks_dye() -> None:
    assert dye_for_wavelength(470) == "AF488"
    assert dye_for_wavelength(550) == "AF555"
    assert dye_for_wavelength(635) == "AF647"
    assert dye_for_wavelength(400) is None


def test_dark_frame_is_offset_plus_read_noise() -> None:
    chip = default_chip(debris_per_mm2=0)
    image, truth = render(chip, excitation=[], exposure_s=0.01)
    core = image.astype(float)
    assert np.median(core) == pytest.approx(100, abs=1)
    typical = core[np.abs(core - 100) < 15]
    sigma = typical.std()
    assert sigma == pytest.approx(np.hypot(1.6 / 0.46, 1.0), rel=0.1)
    outliers = np.mean(np.abs(core - 100) > 6 * sigma)
    assert 1e-4 < outliers < 3e-3  # hot pixels: about 0.1 %
    assert truth["count"] == 0


def test_background_noise_is_shot_noise() -> None:
    chip = default_chip(debris_per_mm2=0)
    renderer = Renderer(seed=4)
    view = View(0.0, 0.0, 0.0, [("AF488", 1.0)], 0.1, roi=CENTRE)
    a, _ = renderer.render(chip, view)
    b, _ = renderer.render(chip, view)
    electrons = (np.median(a) - 100) * 0.46
    assert electrons == pytest.approx(150, rel=0.05)  # 1500 e-/px/s x 0.1 s at the centre
    diff = (a.astype(float) - b.astype(float)).ravel()
    diff = diff[np.abs(diff) < 10 * diff.std()]
    var_e = diff.var() / 2 * 0.46**2
    assert var_e == pytest.approx(electrons + 1.6**2, rel=0.1)


def test_vignetting_dims_the_corners() -> None:
    chip = default_chip(debris_per_mm2=0)
    image, _ = render(chip, exposure_s=0.2)
    centre = np.median(image[1000:1048, 1000:1048]) - 100
    corner = np.median(image[:48, :48]) - 100
    assert corner / centre == pytest.approx(0.55, abs=0.05)


def test_spots_are_diffraction_limited_and_defocus_widens_them() -> None:
    chip = default_chip(debris_per_mm2=0)
    chip.deposit("CD9", 40, labels=("AF488",))
    sharp, truth = render(chip, roi=CENTRE)
    blurred, _ = render(chip, roi=CENTRE, z_um=10.0)
    assert truth["count"] > 0
    x, y = np.rint(np.array(truth["xy"])).astype(int).T
    assert np.mean(sharp[y, x]) > np.mean(blurred[y, x]) + 20
    assert abs(float(sharp.sum()) - float(blurred.sum())) / sharp.sum() < 0.01  # photons kept


def test_debris_is_bright_but_not_in_the_truth() -> None:
    chip = default_chip(debris_per_mm2=200)
    image, truth = render(chip)
    assert truth["count"] == 0 and len(truth["debris_xy"]) > 50
    x, y = np.rint(np.array(truth["debris_xy"])).astype(int).T
    assert np.median(image[y, x]) > np.median(image) + 100


def test_led_dose_bleaches_the_field_only() -> None:
    world = World(clock=ManualClock())  # type: ignore[arg-type]
    world.chip = default_chip(debris_per_mm2=0)
    world.chip.deposit("CD9", 500, labels=("AF488",))
    world.chip.deposit("CD63", 500, labels=("AF488",))

    class Led:
        def emission(self):
            return [("A", 470.0, 100.0)]

    class Stage:
        def xyz_um(self):
            return (0.0, 0.0, 0.0)

    world.devices.update(led=Led(), stage=Stage())
    camera = SimCameraEmulator(world, "camera")
    dyes = world.chip.vesicles.view("dyes")[:, 0]
    before_cd9, before_cd63 = dyes[:500].sum(), dyes[500:].sum()
    world.clock.t = 25.0  # type: ignore[attr-defined]
    camera.poll()
    dyes = world.chip.vesicles.view("dyes")[:, 0]
    # 25 s at 0.04 /s (x vignetting 0.78..1): a third to a half of the dyes survive
    assert 0.3 < dyes[:500].sum() / before_cd9 < 0.5
    assert dyes[500:].sum() == before_cd63  # the CD63 zone is outside the field


def test_full_frame_with_2000_vesicles_renders_them() -> None:
    """Every vesicle in view is rendered (ms per frame: benchmarks/bench_render.py)."""
    chip = default_chip()
    chip.deposit("CD9", 2000, labels=("AF488",))
    renderer = Renderer(Optics(), seed=2)
    view = View(0.0, 0.0, 0.0, [("AF488", 0.5)], 0.05)
    image, truth = renderer.render(chip, view)
    assert image.shape == (2048, 2048) and truth["count"] > 1900
