"""The rendered frame's physics: camera noise, PSF and defocus, vignetting, bleaching, debris."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scope_support import ManualClock

from hardware_sim.camera import SimCameraEmulator
from hardware_sim.chip import default_chip
from hardware_sim.coolled import CoolLedEmulator
from hardware_sim.optics import DYE_TABLE, Optics, Renderer, View, dye_for_wavelength, erf
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
    # 1500 e-/px/s at NA 0.45 on 0.65 um pixels, scaled to the 40x / 0.95, x 0.1 s
    assert electrons == pytest.approx(150 * Optics().background_scale(), rel=0.05)
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
    chip.deposit("CD9", 2000, labels=("AF488",))
    sharp, truth = render(chip, roi=CENTRE)
    blurred, _ = render(chip, roi=CENTRE, z_um=10.0)
    assert truth["count"] > 0
    x, y = np.rint(np.array(truth["xy"])).astype(int).T
    assert np.mean(sharp[y, x]) > np.mean(blurred[y, x]) + 20
    assert abs(float(sharp.sum()) - float(blurred.sum())) / sharp.sum() < 0.01  # photons kept


def test_debris_is_bright_but_not_in_the_truth() -> None:
    chip = default_chip(debris_per_mm2=1000)
    image, truth = render(chip)
    assert truth["count"] == 0 and len(truth["debris_xy"]) > 50
    x, y = np.rint(np.array(truth["debris_xy"])).astype(int).T
    assert np.median(image[y, x]) > np.median(image) + 100


def _lit_bench(speed_wall: bool = False):
    world = World(clock=ManualClock())  # type: ignore[arg-type]
    world.chip = default_chip(debris_per_mm2=0)
    world.chip.deposit("CD9", 500, labels=("AF488",))
    world.chip.deposit("CD63", 500, labels=("AF488",))

    class Stage:
        def xyz_um(self):
            return (0.0, 0.0, 0.0)

    led = CoolLedEmulator(world, "led")
    world.devices["stage"] = Stage()
    camera = SimCameraEmulator(world, "camera", stage="stage", illuminator="led")
    return world, led, camera


def _af488(world) -> tuple[int, int]:
    """AF488 dyes left in the camera's field (on CD9) and on the CD63 zone."""
    dyes = world.chip.vesicles.view("dyes")[:, 0]
    half = Optics().pixel_size_um * 1024
    field = world.chip.in_box(-half, -half, half, half)
    return int(dyes[field].sum()), int(dyes[500:].sum())


def test_led_dose_bleaches_the_field_only() -> None:
    world, led, camera = _lit_bench()
    before_cd9, before_cd63 = _af488(world)
    led.receive(b"CSSASN050\n")  # channel A on at 50 %
    world.clock.t = 25.0  # type: ignore[attr-defined]
    led.poll()
    world.clock.t = 50.0  # type: ignore[attr-defined]
    led.receive(b"CSSAXF050\n")  # off: 50 s lit at 50 %
    world.clock.t = 500.0  # type: ignore[attr-defined]
    led.poll()  # dark: no more dose
    cd9, cd63 = _af488(world)
    dose = 0.5 * 50.0  # full-power seconds
    k = DYE_TABLE["AF488"].bleach_per_s * Optics().bleach_scale()
    # vignetting 0.55..1 across the field: survival between exp(-k dose) and exp(-0.55 k dose)
    assert math.exp(-k * dose) < cd9 / before_cd9 < math.exp(-0.55 * k * dose)
    assert cd63 == before_cd63  # the CD63 zone is outside the field


def test_bleaching_follows_the_dose_however_it_is_delivered() -> None:
    """Bleaching is a function of the light dose (power x simulated seconds) only: one 20 s
    period at 50 % or forty 1 s periods at 25 %, polled at any rate, bleach alike."""
    def bleached(periods: int, power: int, seconds: float, polls: int) -> float:
        world, led, camera = _lit_bench()
        before, _ = _af488(world)
        t = 0.0
        for _ in range(periods):
            led.receive(f"CSSASN{power:03d}\n".encode())
            for _ in range(polls):
                t += seconds / polls
                world.clock.t = t  # type: ignore[attr-defined]
                led.poll()
            led.receive(b"CSSAXF000\n")
            t += 100.0  # dark time in between: no dose
            world.clock.t = t  # type: ignore[attr-defined]
            led.poll()
        return _af488(world)[0] / before

    one = bleached(1, 50, 20.0, 1)
    assert 0.1 < 1 - one < 0.9
    assert bleached(40, 25, 1.0, 3) == pytest.approx(one, abs=0.02)
    assert bleached(1, 50, 20.0, 17) == pytest.approx(one, abs=0.02)


def test_triggered_light_doses_the_exposure_only() -> None:
    """A channel armed for the camera's trigger (selected, off) lights the sample while the
    camera exposes, however long the host leaves it armed."""
    world, led, camera = _lit_bench()
    before, _ = _af488(world)
    led.receive(b"CSSASF100\n")  # armed at 100 %, waiting for the trigger
    camera.receive(b"EXP 200\n")
    for _ in range(5):
        camera.receive(b"SNAP\n")
        world.clock.t += 0.2  # type: ignore[attr-defined]
        assert camera.poll() == b""  # the exposure taken under the bench lock,
        assert camera.finish().startswith(b"FRAME")  # painted and sent without it
        world.clock.t += 300.0  # type: ignore[attr-defined]  # the host is slow to go on
        led.poll()
        camera.poll()
    assert led.css() == "CSSASF100BXF000CXF000"  # the wire state is what was set
    k = DYE_TABLE["AF488"].bleach_per_s * Optics().bleach_scale()
    survived = _af488(world)[0] / before
    assert math.exp(-k * 1.0) <= survived < math.exp(-0.55 * k * 1.0) + 0.002  # 5 x 0.2 s


def test_full_frame_with_2000_vesicles_renders_them() -> None:
    """Every vesicle in view is rendered (ms per frame: benchmarks/bench_render.py)."""
    chip = default_chip()
    chip.deposit("CD9", 2000, labels=("AF488",))
    renderer = Renderer(Optics(), seed=2)
    view = View(0.0, 0.0, 0.0, [("AF488", 0.5)], 0.05)
    image, truth = renderer.render(chip, view)
    in_view = len(chip.in_box(*renderer.field_um(view)))
    assert in_view > 250  # a 333 um field of the 800 um zone
    assert image.shape == (2048, 2048) and truth["count"] > 0.97 * in_view
