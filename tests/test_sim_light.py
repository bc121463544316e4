"""Light on the virtual clock over the wire: the camera-triggered LED doses the exposures only,
so bleaching does not depend on the speed factor, the link's latency or the machine's load."""

from __future__ import annotations

import time

import pytest
from scope_support import served

from chipctl.config.devices import device_settings
from chipctl.devices.cameras import make_sim_camera
from chipctl.devices.illuminator import light_exposures, make_coolled
from drivers.transport import SerialTransport
from hardware_sim.camera import SimCameraEmulator
from hardware_sim.chip import default_chip
from hardware_sim.clock import VirtualClock
from hardware_sim.coolled import CoolLedEmulator
from hardware_sim.world import World


class Stage:
    def xyz_um(self) -> tuple[float, float, float]:
        return (0.0, 0.0, 0.0)


def af647_left(speed: float, triggered: bool, frames: int = 6) -> float:
    """Fraction of AF647 dyes left in the field after `frames` 100 ms exposures at 100 %,
    with the light armed for the trigger or switched on around each exposure."""
    world = World(VirtualClock(speed), seed=3)
    world.chip = default_chip(seed=3, debris_per_mm2=0)
    world.chip.deposit("CD9", 4000, labels=("AF647",))
    world.devices["stage"] = Stage()
    led_model = CoolLedEmulator(world, "led")
    camera_model = SimCameraEmulator(world, "camera", stage="stage", illuminator="led")
    field = world.chip.in_box(-166, -166, 166, 166)
    before = world.chip.vesicles.dyes[field, 2].sum()
    with served(led_model, world.lock) as led_url, served(camera_model, world.lock) as cam_url:
        led = make_coolled("led", device_settings(
            "coolled", channels={"AF647": "C"}, triggered_by="camera" if triggered else None),
            SerialTransport(led_url))
        camera = make_sim_camera("camera", device_settings(
            "sim-camera", exposure="100 ms", roi=[768, 768, 512, 512]), SerialTransport(cam_url))
        led.connect()
        camera.connect()
        try:
            for _ in range(frames):
                with light_exposures(led, "AF647", 100):
                    camera.snap(5.0)
                    time.sleep(0.05)  # the host is busy: wall time the light may be on
        finally:
            led.close()
            camera.close()
    return float(world.chip.vesicles.dyes[field, 2].sum() / before)


def test_bleaching_by_triggered_light_is_the_same_at_any_speed() -> None:
    slow = af647_left(20.0, triggered=True)
    fast = af647_left(400.0, triggered=True)
    # six 0.1 s exposures at full power: k = 0.065 x 4.46 /s -> 10-16 % bleached (vignetting)
    assert 0.8 < slow < 0.92
    assert fast == pytest.approx(slow, abs=0.01)


def test_light_left_on_between_exposures_bleaches_with_wall_time_x_speed() -> None:
    """Without the trigger wiring the LED is on from the command to the next: honest physics,
    so the same protocol bleaches more at a higher speed factor (why the wiring matters)."""
    triggered = af647_left(400.0, triggered=True)
    switched = af647_left(400.0, triggered=False)
    assert switched < triggered - 0.1
