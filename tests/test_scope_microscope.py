"""The whole simulated microscope through the engine's adapters: LED, stage, camera, autofocus."""

from __future__ import annotations

import numpy as np
import pytest
from scope_support import served

from chipctl.config.devices import device_settings
from chipctl.devices.autofocus import autofocus, parabola_peak
from chipctl.devices.cameras import make_sim_camera
from chipctl.devices.illuminator import make_coolled
from chipctl.devices.interfaces import Camera, Illuminator, Stage
from chipctl.devices.stage import make_prior
from chipctl.vision.focus import focus_metric
from drivers.transport import SerialTransport
from hardware_sim.camera import SimCameraEmulator
from hardware_sim.chip import default_chip
from hardware_sim.clock import VirtualClock
from hardware_sim.coolled import CoolLedEmulator
from hardware_sim.prior import PriorEmulator
from hardware_sim.world import World

SURFACE_Z = 1000.0


@pytest.fixture(scope="module")
def scope():
    world = World(VirtualClock(speed=20.0), seed=11)
    world.chip = default_chip(seed=11, surface_z_um=SURFACE_Z)
    world.chip.deposit("CD63", 3000)
    emulators = [
        CoolLedEmulator(world, "led", model="pE-300"),
        PriorEmulator(world, "stage", r_at_end=True),
        SimCameraEmulator(world, "camera"),
    ]
    with (
        served(emulators[0], world.lock) as led_url,
        served(emulators[1], world.lock) as stage_url,
        served(emulators[2], world.lock) as camera_url,
    ):
        led = make_coolled(
            "led",
            device_settings("coolled", channels={"AF488": "A", "AF555": "B", "AF647": "C"}),
            SerialTransport(led_url),
        )
        stage = make_prior("stage", device_settings("prior", ack_timeout="0.05 s"),
                           SerialTransport(stage_url))
        camera = make_sim_camera(
            "camera", device_settings("sim-camera", pixel_size_um=0.65, exposure="50 ms"),
            SerialTransport(camera_url))
        for device in (led, stage, camera):
            device.connect()
        yield world, led, stage, camera
        for device in (led, stage, camera):
            device.close()


def test_adapters_satisfy_engine_protocols(scope) -> None:
    _, led, stage, camera = scope
    assert isinstance(led, Illuminator)
    assert isinstance(stage, Stage)
    assert isinstance(camera, Camera)
    assert camera.pixel_size_um == 0.65 and camera.exposure_ms == 50.0


def test_frame_metadata_follows_stage_and_led(scope) -> None:
    world, led, stage, camera = scope
    stage.move_to(1500.0, 0.0)
    stage.focus_to(SURFACE_Z)
    stage.wait_idle(10)
    led.light("AF555", 80)
    frame = camera.snap(5.0)
    meta = frame.metadata
    assert meta["stage"] == pytest.approx({"x": 1500.0, "y": 0.0, "z": SURFACE_Z})
    assert meta["channel"] == "B" and meta["power_pct"] == 80.0
    assert meta["led"][0]["dye"] == "AF555"
    truth = meta["truth"]
    assert truth["zone"] == "CD63" and truth["dyes"] == ["AF555"]
    x0, y0, x1, y1 = 1500 - 166.4, -166.4, 1500 + 166.4, 166.4  # the 333 um field
    in_view = len(world.chip.in_box(x0, y0, x1, y1))
    assert 0.95 * in_view < truth["count"] <= in_view and in_view > 400
    led.dark()
    dark = camera.snap(5.0)
    assert dark.metadata["truth"]["count"] == 0 and dark.metadata["channel"] is None
    assert np.median(dark.image) < np.median(frame.image)


def test_focus_metric_peaks_in_focus(scope) -> None:
    world, led, stage, camera = scope
    stage.move_to(1500.0, 0.0)
    led.light("AF555", 100)
    metrics = {}
    for dz in (-20.0, -5.0, 0.0, 5.0, 20.0):
        stage.focus_to(SURFACE_Z + dz)
        stage.wait_idle(10)
        metrics[dz] = focus_metric(camera.snap(5.0).image)
    assert metrics[0.0] > metrics[5.0] > metrics[20.0]
    assert metrics[0.0] > metrics[-5.0] > metrics[-20.0]


@pytest.mark.parametrize("start_offset", [20.0, -20.0])
def test_autofocus_finds_the_focal_plane_from_20_um_away(scope, start_offset: float) -> None:
    world, led, stage, camera = scope
    # a part of the zone no earlier test lit: their continuous light bleached the centre by an
    # amount that follows wall time, and a bleached field's focus curve is flat
    stage.move_to(1500.0 + 12.5 * start_offset, 250.0)
    stage.focus_to(SURFACE_Z + start_offset)
    stage.wait_idle(10)
    led.arm("AF555", 100)  # lit by the camera's trigger: each frame of the sweep equally bright
    result = autofocus(camera, stage, roi=(768, 768, 512, 512))
    assert result.z_um == pytest.approx(SURFACE_Z, abs=0.75)
    assert stage.focus() == pytest.approx(result.z_um, abs=0.2)
    assert camera.roi == (0, 0, 2048, 2048)  # restored
    assert abs(camera.snap(5.0).metadata["truth"]["focus_offset_um"]) < 0.75


def test_parabola_peak_interpolates_between_samples() -> None:
    samples = [(z, -((z - 0.3) ** 2)) for z in (-2.0, -1.0, 0.0, 1.0, 2.0, 6.0)]
    assert parabola_peak(samples, 2.0) == pytest.approx(0.3)
    assert parabola_peak([(0.0, 1.0), (1.0, 2.0), (2.0, 3.0)], 2.0) == 2.0  # no peak: best
