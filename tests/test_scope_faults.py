"""Microscope drivers under link faults: split, dropped and garbled replies, unplug."""

from __future__ import annotations

import pytest
from scope_support import ManualClock, serving

from chipctl.config.devices import device_settings
from chipctl.devices.illuminator import make_coolled
from chipctl.devices.stage import make_prior
from drivers.coolled import format_css
from drivers.errors import DeviceDisconnected, DeviceTimeout
from drivers.transport import SerialTransport
from hardware_sim.clock import VirtualClock
from hardware_sim.coolled import CoolLedEmulator
from hardware_sim.prior import PriorEmulator
from hardware_sim.world import World


@pytest.fixture
def led():
    world = World(clock=ManualClock())  # type: ignore[arg-type]
    emulator = CoolLedEmulator(world, "led")
    with serving(emulator, world.lock) as endpoint:
        settings = device_settings("coolled", timeout="0.3 s")
        adapter = make_coolled("led", settings, SerialTransport(endpoint.url))
        adapter.connect()
        yield endpoint, emulator, adapter
        adapter.close()


@pytest.fixture
def stage():
    world = World(VirtualClock(speed=10.0))
    emulator = PriorEmulator(world, "stage", r_at_end=False)
    with serving(emulator, world.lock) as endpoint:
        settings = device_settings("prior", timeout="0.3 s")
        adapter = make_prior("stage", settings, SerialTransport(endpoint.url))
        adapter.connect()
        yield endpoint, emulator, adapter
        adapter.close()


def test_split_replies_are_reassembled(led, stage) -> None:
    for endpoint, _, _ in (led, stage):
        endpoint.faults.arm("split")
    led[2].light("AF488", 30)
    assert led[2].state()["AF488"] == (True, 30.0)
    stage[2].move_to(100.0, 200.0)
    stage[2].wait_idle(2.0)
    assert stage[2].position() == (100.0, 200.0)


def test_dropped_reply_is_retried_and_only_a_dead_link_times_out(led, stage) -> None:
    led[0].faults.arm("drop_reply")
    assert led[2].state()["AF488"] == (False, 0.0)  # one lost reply: sent again
    led[0].faults.arm("drop_reply", led[2].driver.retries + 1)
    with pytest.raises(DeviceTimeout, match="^led: "):
        led[2].state()
    assert led[2].state()["AF488"] == (False, 0.0)
    stage[0].faults.arm("drop_reply")
    assert stage[2].position() == (0.0, 0.0)
    stage[0].faults.arm("drop_reply", stage[2].driver.retries + 1)
    with pytest.raises(DeviceTimeout, match="^stage: "):
        stage[2].position()
    assert stage[2].position() == (0.0, 0.0)


def test_garbled_replies_are_never_accepted_as_values(led, stage) -> None:
    """Issue 17: a flipped bit can still parse (no checksum on these links); such a reply must
    be outvoted, never taken."""
    led[2].light("AF555", 55)
    truth = led[1].css()
    for seed in range(40):
        led[0].faults.rng.seed(seed)
        led[0].faults.arm("garble")
        assert format_css(led[2].driver.state()) == truth
    stage[2].move_to(120.0, -40.0)
    stage[2].wait_idle(2.0)
    for seed in range(40):
        stage[0].faults.rng.seed(seed)
        stage[0].faults.arm("garble")
        assert stage[2].position() == (120.0, -40.0)


def test_unplugged_device_is_disconnected(led) -> None:
    endpoint, _, adapter = led
    endpoint.faults.arm("unplug")
    with pytest.raises((DeviceDisconnected, DeviceTimeout)):
        for _ in range(5):
            adapter.state()
