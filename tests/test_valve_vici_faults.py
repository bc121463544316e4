"""The VICI driver against the emulated actuator under faults, over a real socket: garbled,
dropped and slow replies, a stalled rotor, a locked-up actuator, an unplugged cable."""

from __future__ import annotations

import random
from collections.abc import Iterator

import pytest
from scope_support import serving

from drivers import errors
from drivers.transport import SerialTransport
from drivers.vici import ViciValve
from hardware_sim.clock import VirtualClock
from hardware_sim.vici import ViciValveEmulator
from hardware_sim.world import World

Rig = tuple[ViciValveEmulator, object, ViciValve]


@pytest.fixture
def rig() -> Iterator[Rig]:
    """A ten-position valve served on TCP as the simulated bench serves it, and its driver."""
    world = World(VirtualClock(speed=20.0))
    emulator = ViciValveEmulator(world, "valve", positions=10)
    emulator.faults.rng = random.Random(3)
    with serving(emulator, world.lock) as endpoint:
        endpoint.faults = emulator.faults
        driver = ViciValve(SerialTransport(endpoint.url, timeout=1.0), "valve", timeout=0.3,
                           move_timeout=2.0)
        driver.connect()
        yield emulator, endpoint, driver
        driver.transport.close()


def test_single_garbled_replies_never_give_a_wrong_position(rig: Rig) -> None:
    emulator, _, driver = rig
    driver.select(7)
    for seed in range(10):
        emulator.faults.rng = random.Random(seed)
        emulator.faults.arm("garble", 1)  # a flipped bit may leave a valid port number
        assert driver.position() == 7
        assert emulator.faults.garble_next == 0


def test_a_garbled_reply_during_a_move_does_not_end_it_early(rig: Rig) -> None:
    emulator, _, driver = rig
    for seed, port in enumerate((5, 2, 9, 4)):
        emulator.faults.rng = random.Random(seed)
        emulator.faults.arm("garble", 1)
        driver.select(port)
        assert emulator.selected_port() == port


def test_a_dropped_reply_is_asked_again(rig: Rig) -> None:
    emulator, _, driver = rig
    emulator.faults.arm("drop_reply", 1)
    assert driver.mode() == 3
    assert emulator.faults.drop_next == 0


def test_without_retries_a_dropped_reply_times_out_and_the_link_recovers(rig: Rig) -> None:
    emulator, _, driver = rig
    driver.retries = 0
    emulator.faults.arm("drop_reply", 1)
    with pytest.raises(errors.DeviceTimeout):
        driver.position()
    assert driver.position() == 1


def test_slow_replies_within_the_timeout_are_waited_for(rig: Rig) -> None:
    emulator, _, driver = rig
    emulator.faults.arm("slow", 0.1)
    driver.select(3)
    assert driver.position() == 3 == emulator.selected_port()


def test_replies_slower_than_the_timeout_raise_and_late_ones_are_never_taken(rig: Rig) -> None:
    emulator, _, driver = rig
    driver.retries = 0
    emulator.faults.arm("slow", 0.6)
    with pytest.raises(errors.DeviceTimeout):
        driver.direction()
    emulator.faults.arm("slow", 0)
    driver.retries = 2
    # The late SMA arrives while AM is asked: flushed, or refused as no AM reply, never taken.
    assert driver.mode() == 3
    assert driver.direction() == "A"


def test_a_stalled_rotor_raises_valve_fault_and_the_next_move_succeeds(rig: Rig) -> None:
    emulator, _, driver = rig
    emulator.inject("stall")
    with pytest.raises(errors.ValveFault, match="did not reach port 6 .* reports port 3"):
        driver.select(6)  # 1 -> 6: five forward, stalls after two
    assert emulator.selected_port() == 3
    driver.select(6)
    assert emulator.selected_port() == 6


def test_a_locked_up_actuator_times_out_until_power_cycled(rig: Rig) -> None:
    emulator, _, driver = rig
    driver.move_timeout = 0.5
    emulator.inject("lockup")
    with pytest.raises(errors.DeviceTimeout):
        driver.select(4)
    emulator.inject("power_cycle")
    driver.connect()
    assert driver.position() == 1  # GO4 was sent into the void: the valve never moved


def test_an_unplugged_actuator_is_disconnected(rig: Rig) -> None:
    _, endpoint, driver = rig
    endpoint.faults.arm("unplug")  # type: ignore[attr-defined]
    with pytest.raises((errors.DeviceDisconnected, errors.DeviceTimeout)):
        for _ in range(5):
            driver.position()
