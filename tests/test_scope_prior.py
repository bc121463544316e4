"""Prior ProScan III: exact bytes of the driver, and the driver against the emulator."""

from __future__ import annotations

import time

import pytest
from scope_support import ManualClock, served
from wire import expected_protocol, twice

from chipctl.config.devices import device_settings
from chipctl.devices.interfaces import Stage
from chipctl.devices.stage import make_prior
from chipctl.run.interlocks import reason_for
from drivers.errors import (
    CommandRejected,
    DeviceBusy,
    DeviceTimeout,
    GarbledReply,
    OutOfRange,
    StageFault,
    StageReset,
)
from drivers.prior import ProScan
from drivers.transport import SerialTransport
from hardware_sim.clock import VirtualClock
from hardware_sim.prior import PriorEmulator
from hardware_sim.world import World

CONNECT = [(b"COMP 0\r", b"0\r"), *[(b"RES,s\r", b"0.5\r")] * 2, *[(b"RES,z\r", b"0.1\r")] * 2]



def test_driver_bytes_for_every_command() -> None:
    with expected_protocol(
        [
            *CONNECT,
            (b"G,2000,-400\r", b"R\r"),  # 1000 um, -200 um at 0.5 um per unit
            (b"GR,20,0\r", b"R\r"),
            *twice(b"P\r", b"2020,-400,1234\r"),
            *twice(b"$\r", b"3\r"),
            *twice(b"$\r", b"0\r"),
            (b"V,1000\r", b"R\r"),
            (b"U,25\r", b"R\r"),
            (b"D,5\r", b"R\r"),
            *twice(b"PZ\r", b"1020\r"),
            (b"PS,0,0\r", b"0\r"),
            (b"P\r", b"0,0,1020\r"),  # read-back
            (b"PZ,0\r", b"0\r"),
            (b"PZ\r", b"0\r"),
            (b"I\r", b"R\r"),
            (b"K\r", b"R\r"),
            (b"7,1,4\r", b"R\r"),
            *twice(b"7,1,F\r", b"4\r"),
            *twice(b"FPW 2\r", b"0\r"),
            (b"8,1,0\r", b"R\r"),
            (b"8,1\r", b"0\r"),  # read-back
            *twice(b"8,1\r", b"0\r"),
            (b"8,2,1\r", b"R\r"),
            (b"8,2\r", b"1\r"),
            *twice(b"SMS\r", b"100\r"),
            (b"SMS,50\r", b"0\r"),
            (b"SMS\r", b"50\r"),
            (b"=\r", b"0\r"),  # cleared by reading: asked once
            *twice(b"VERSION\r", b"100\r"),
            (b"?\r", b"PROSCAN INFORMATION\rSTAGE = H117\rEND\r"),
        ], timeout=0.2) as transport:
        stage = ProScan(transport)
        stage.connect()
        assert (stage.res_xy, stage.res_z) == (0.5, 0.1)
        stage.move_to(1000, -200)
        stage.move_by(10, 0)
        assert stage.position() == pytest.approx((1010.0, -200.0, 123.4))
        assert stage.busy() == 3
        stage.wait_idle(1.0)
        stage.focus_to(100)
        stage.focus_by(2.5)
        stage.focus_by(-0.5)
        stage.focus_by(0.0)  # nothing to send
        assert stage.z() == pytest.approx(102.0)
        stage.set_position(0, 0)
        stage.set_z(0)
        stage.stop()
        stage.kill()
        stage.move_filter(1, 4)
        assert stage.filter_position(1) == 4
        assert stage.filter_count(2) == 0
        stage.set_shutter(1, True)
        assert stage.shutter_open(1)
        stage.set_shutter(2, False)
        assert stage.speed() == 100
        stage.set_speed(50)
        assert stage.limit_latch() == 0
        assert stage.version() == "100"
        assert stage.identify() == ["PROSCAN INFORMATION", "STAGE = H117"]


def test_error_replies_are_typed() -> None:
    with expected_protocol(
        [
            (b"PS,0,0\r", b"E,2\r"),
            (b"G,1,1\r", b"E,18\r"),
            (b"WHAT\r", b"E,5\r"),
            (b"G,9999999,0\r", b"E,8\r"),
            (b"PZ\r", b"E,4\r"),
            *[(b"P\r", b"12,x,3\r")] * 4,
            *[(b"P\r", b"1,2\r")] * 4,
            (b"$\r", b""),
        ], timeout=0.2) as transport:
        stage = ProScan(transport, timeout=0.2, retries=0)
        with pytest.raises(DeviceBusy, match="not idle"):
            stage.set_position(0, 0)
        with pytest.raises(DeviceBusy, match="queue full"):
            stage.move_to(1, 1)
        with pytest.raises(CommandRejected, match="unknown"):
            stage._query("WHAT")
        with pytest.raises(OutOfRange):
            stage.move_to(9999999, 0)
        with pytest.raises(CommandRejected, match="parse"):
            stage.z()
        with pytest.raises(GarbledReply):
            stage.position()
        with pytest.raises(GarbledReply):
            stage.position()
        with pytest.raises(DeviceTimeout):
            stage.busy()
        with pytest.raises(OutOfRange):
            stage.set_speed(0)
        for bad in (float("nan"), float("inf"), 1e300):
            with pytest.raises(OutOfRange):
                stage.move_to(bad, 0)


@pytest.mark.parametrize("reply", [b"1.5,2,3\r", b"1,,3\r", b"12345678901,0,0\r",
                                   b"1,2,3,4\r", b"+1,2,3\r", b"1,2,\x833\r"])
def test_malformed_positions_are_garbled(reply: bytes) -> None:
    script = [(b"P\r", reply)] * 4
    with expected_protocol(script, timeout=0.2, exhaustive=False) as transport, \
            pytest.raises(GarbledReply):
        ProScan(transport, retries=0).position()


def test_flipped_digit_in_a_position_is_outvoted() -> None:
    # '1' (0x31) with bit 0 flipped is '0' (0x30): 2020 read as 2000
    script = [(b"P\r", b"2000,-400,0\r"), *twice(b"P\r", b"2020,-400,0\r")]
    with expected_protocol(script, timeout=0.2) as transport:
        assert ProScan(transport).position() == (2020.0, -400.0, 0.0)


def test_garbled_ack_of_an_absolute_move_sends_it_again() -> None:
    script = [(b"G,10,0\r", b"S\r"), (b"G,10,0\r", b"R\r")]
    with expected_protocol(script, timeout=0.2) as transport:
        ProScan(transport).move_to(10, 0)


def test_garbled_ack_of_a_relative_move_is_not_repeated() -> None:
    script = [(b"GR,10,0\r", b"S\r")]
    with expected_protocol(script, timeout=0.2) as transport, \
            pytest.raises(GarbledReply):
        ProScan(transport).move_by(10, 0)


def test_r_at_end_of_move_is_tolerated() -> None:
    # No R within the ack timeout: the move is accepted; the late R is skipped by the next query.
    with expected_protocol(
        [
            (b"G,100,0\r", b""),
            (b"$\r", b"R\r1\r"),
            (b"$\r", b"1\r"),
            *twice(b"$\r", b"R\r0\r"),
            *twice(b"P\r", b"100,0,0\r"),
        ], timeout=0.2) as transport:
        stage = ProScan(transport, ack_timeout=0.05)
        stage.move_to(100, 0)
        stage.wait_idle(1.0)
        assert stage.position() == (100.0, 0.0, 0.0)


def test_wait_idle_times_out_as_stage_fault() -> None:
    script = [(b"$\r", b"4\r")] * 20
    with expected_protocol(script, timeout=0.2, exhaustive=False) as transport, \
            pytest.raises(StageFault, match="still moving"):
        ProScan(transport).wait_idle(0.05, interval=0.01)


# -- against the emulator ------------------------------------------------------------------------
@pytest.fixture(params=[("tcp", True), ("tcp", False), ("pty", True), ("pty", False)])
def bench(request):
    kind, r_at_end = request.param
    world = World(VirtualClock(speed=5.0))
    emulator = PriorEmulator(world, "stage", r_at_end=r_at_end)
    with served(emulator, world.lock, kind) as url:
        settings = device_settings("prior", ack_timeout="0.1 s")
        stage = make_prior("stage", settings, SerialTransport(url))
        assert isinstance(stage, Stage)
        stage.connect()
        yield world, emulator, stage
        stage.close()


def test_move_wait_read_position(bench) -> None:
    world, emulator, stage = bench
    assert emulator.state.comp == 0
    t0 = world.now()
    stage.move_to(10000.0, -1200.0)
    assert stage.driver.busy() & 3  # 10 mm at 5 mm/s: busy for 2 simulated s
    stage.wait_idle(5.0)
    assert world.now() - t0 >= 2.0
    assert stage.position() == (10000.0, -1200.0)
    stage.focus_to(42.5)
    stage.wait_idle(5.0)
    assert stage.focus() == pytest.approx(42.5)
    assert emulator.xyz_um() == pytest.approx((10000.0, -1200.0, 42.5))
    stage.driver.move_by(-500.0, 200.0)
    stage.driver.wait_idle(5.0)
    assert stage.position() == (9500.0, -1000.0)
    stage.set_filter(3)
    assert stage.driver.filter_position(1) == 3
    stage.set_shutter(True)
    assert stage.driver.shutter_open(1)


def test_halt_stops_short_and_driver_recovers(bench) -> None:
    world, emulator, stage = bench
    stage.move_to(40000.0, 0.0)  # 8 simulated s
    time.sleep(0.1)
    stage.halt()
    stage.wait_idle(2.0)
    x, _ = stage.position()
    assert 0 < x < 40000
    stage.move_to(0.0, 0.0)
    stage.wait_idle(5.0)
    assert stage.position() == (0.0, 0.0)


def test_stalled_axis_is_a_stage_fault(bench) -> None:
    world, emulator, stage = bench
    emulator.inject("stall")
    stage.move_to(1000.0, 1000.0)
    with pytest.raises(StageFault, match="stopped at"):
        stage.wait_idle(5.0)


def test_a_power_cycle_between_moves_is_a_stage_reset(bench) -> None:
    """Issue 17: a stage power cycle during imaging went unnoticed and the frames after it used
    a lost origin. The next wait_idle sees the controller back in compatibility mode."""
    world, emulator, stage = bench
    stage.move_to(1000.0, 1000.0)
    stage.wait_idle(5.0)
    emulator.inject("power_cycle")  # origin now where the stage stands
    stage.move_to(2000.0, 2000.0)
    with pytest.raises(StageReset, match="origin is lost"):
        stage.wait_idle(5.0)
    assert reason_for(StageReset("stage", "x")).startswith("interlock: stage reset")


def test_locked_up_controller_times_out(bench) -> None:
    world, emulator, stage = bench
    emulator.inject("lockup")
    with pytest.raises(DeviceTimeout):
        stage.position()
    emulator.inject("power_cycle")
    stage.connect()  # standard mode again after the power cycle
    assert emulator.state.comp == 0
    assert stage.position() == (0.0, 0.0)


def test_emulator_grammar() -> None:
    world = World(clock=ManualClock())  # type: ignore[arg-type]
    prior = PriorEmulator(world, "stage", r_at_end=False)
    assert prior.receive(b"G,,10,20\r") == b"R\r"
    assert prior.receive(b"G 30;40\r") == b"R\r"  # queued behind the first move
    assert prior.receive(b"$\r") == b"3\r"
    world.clock.t = 1.0  # type: ignore[attr-defined]
    assert prior.receive(b"P\r") == b"30,40,0\r"
    assert prior.receive(b"G,1\r") == b"E,4\r"
    assert prior.receive(b"NOPE\r") == b"E,5\r"
    assert prior.receive(b"SMS,0\r") == b"E,8\r"
    assert prior.receive(b"G,999999,0\r") == b"R\r"
    world.clock.t = 100.0  # type: ignore[attr-defined]
    assert prior.receive(b"=\r") == b"1\r" and prior.receive(b"=\r") == b"0\r"
    assert prior.receive(b"LMT\r") == b"01\r"
    assert prior.receive(b"FILTER 2\r") == b"FILTER_2 = NONE\rEND\r"
    prior.receive(b"G,0,0\r")
    for _ in range(99):
        prior.receive(b"GR,100,0\r")
    assert prior.receive(b"GR,100,0\r") == b"E,18\r"
