"""Faults on the emulated NE-1000 chain end in a typed exception or an asserted recovery."""

from __future__ import annotations

import logging
import time
from pathlib import Path

import pytest
from pumpsim import (
    LowestRng,
    chain_rig,
    ne_spec,
    newera_bench,
    running_pumps,
    settings,
    wait_stopped,
)

from chipctl.devices.pumps import make_newera
from drivers import errors
from drivers.exchange import READINGS


@pytest.mark.parametrize("wire", ["tcp", "pty"])
def test_two_pumps_on_one_port(wire: str) -> None:
    specs = [ne_spec("sample", 0), ne_spec("buffer", 12)]
    with newera_bench(*specs, wire=wire) as (world, _chain, transport):
        rig = chain_rig(transport, sample=0, buffer=12)
        a, b = rig.pumps["sample"], rig.pumps["buffer"]
        rig.connect()
        a.infuse(300.0, 30.0)
        b.withdraw(150.0, 10.0)
        flows = {n: p.flow_ul_per_min(world.now()) for n, p in world.pumps.items()}
        assert flows == {"sample": 300.0, "buffer": -150.0}
        wait_stopped(a)
        wait_stopped(b)
        assert a.displaced_ul() == pytest.approx(30.0, abs=0.01)
        assert b.displaced_ul() == pytest.approx(-10.0, abs=0.01)
        assert (a.syringe.contents_ul, b.syringe.contents_ul) == pytest.approx((470.0, 510.0))
        assert len(rig.transports) == 1  # one port, one transport, one lock
        a.close()
        assert transport.is_open  # a device never closes the port ...
        rig.close()
        assert not transport.is_open  # ... the rig does


def test_stop_mid_infusion_settles_the_account() -> None:
    with newera_bench() as (world, _chain, transport):
        pump = make_newera("sample", settings(), transport)
        pump.connect()
        pump.infuse(60.0)  # until stopped
        time.sleep(0.2)
        pump.stop()
        assert not pump.is_running()
        moved = world.pumps["sample"].infused_ul
        assert moved > 5
        assert pump.displaced_ul() == pytest.approx(moved, abs=0.01)
        assert pump.syringe.contents_ul == pytest.approx(500.0 - moved, abs=0.01)
        pump.close()


def test_stall_raises_and_pump_can_be_rearmed() -> None:
    with newera_bench() as (world, chain, transport):
        pump = make_newera("sample", settings(), transport)
        pump.connect()
        pump.infuse(60.0, 100.0)
        time.sleep(0.1)
        chain.inject("stall", pump="sample")
        with pytest.raises(errors.PumpStalled):
            pump.is_running()
        moved = world.pumps["sample"].infused_ul
        assert 0 < moved < 100
        assert pump.syringe.contents_ul == pytest.approx(500.0 - moved, abs=0.01)
        assert running_pumps(world) == []
        pump.infuse(600.0, 10.0)  # acknowledged: the pump runs again
        wait_stopped(pump)
        assert pump.displaced_ul() == pytest.approx(10.0, abs=0.01)
        pump.close()


def test_empty_syringe_ends_in_a_stall() -> None:
    spec = ne_spec("sample", contents_ul=20.0)  # the account says 500 uL; the syringe has 20
    with newera_bench(spec) as (world, _chain, transport):
        pump = make_newera("sample", settings(), transport)
        pump.connect()
        pump.infuse(600.0, 100.0)
        with pytest.raises(errors.PumpStalled):
            wait_stopped(pump)
        assert world.pumps["sample"].contents_ul == 0.0
        assert pump.displaced_ul() == pytest.approx(20.0, abs=0.01)
        pump.close()


def test_withdraw_until_full_ends_in_a_stall() -> None:
    with newera_bench(ne_spec("sample", contents_ul=990.0)) as (_world, _chain, transport):
        pump = make_newera("sample", settings(contents="990 uL"), transport)
        pump.connect()
        pump.withdraw(600.0)
        with pytest.raises(errors.PumpStalled):
            wait_stopped(pump)
        assert pump.syringe.contents_ul == pytest.approx(1000.0, abs=0.01)
        pump.close()


def test_power_cycle_mid_run_raises_reset_then_settings_are_reapplied(caplog) -> None:
    with newera_bench() as (world, chain, transport):
        pump = make_newera("sample", settings(safe_mode=0), transport)  # Basic mode
        pump.connect()
        pump.infuse(60.0, 200.0)
        time.sleep(0.1)
        assert pump.displaced_ul() > 0
        chain.inject("power_cycle")
        with pytest.raises(errors.PumpReset):  # after the ignored first command
            pump.is_running()
        assert running_pumps(world) == []
        caplog.set_level(logging.DEBUG, logger="drivers.wire")
        pump.infuse(600.0, 10.0)
        assert any("-> b'0DIA4.699\\r'" in line for line in caplog.messages)
        wait_stopped(pump)
        assert pump.displaced_ul() == pytest.approx(10.0, abs=0.01)
        pump.close()


def test_power_cycle_while_idle_is_absorbed_by_infuse() -> None:
    with newera_bench() as (_world, chain, transport):
        pump = make_newera("sample", settings(), transport)
        pump.connect()
        chain.inject("power_cycle")
        pump.infuse(600.0, 10.0)
        wait_stopped(pump)
        assert pump.displaced_ul() == pytest.approx(10.0, abs=0.01)
        pump.close()


def test_dropped_reply_is_retried_then_times_out() -> None:
    with newera_bench() as (_world, chain, transport):
        pump = make_newera("sample", settings(), transport)
        pump.connect()
        chain.inject("drop_reply", 1)
        assert pump.driver.diameter() == 4.699  # one lost reply: retried
        chain.inject("drop_reply", pump.driver.retries + 1)  # every try of one request
        with pytest.raises(errors.DeviceTimeout):
            pump.driver.diameter()
        assert pump.driver.diameter() == 4.699
        pump.close()


def test_garbled_reply_is_refused_and_retried() -> None:
    with newera_bench() as (_world, chain, transport):
        pump = make_newera("sample", settings(safe_mode=0), transport)  # Basic mode
        pump.connect()
        chain.faults.rng = LowestRng()  # flip bit 0 of the first address digit: "00" -> "10"
        chain.inject("garble", 1)
        assert pump.driver.version() == "NE1000V3.928"
        # every try of every reading: no two replies in a row can agree
        chain.inject("garble", (pump.driver.retries + 1) * READINGS)
        with pytest.raises(errors.GarbledReply):
            pump.driver.version()
        assert pump.driver.version() == "NE1000V3.928"
        pump.close()


def test_split_and_slow_replies() -> None:
    with newera_bench() as (_world, chain, transport):
        pump = make_newera("sample", settings(), transport)
        pump.connect()
        chain.inject("split", 1)
        chain.inject("slow", 0.1)  # within the 0.3 s timeout
        assert pump.driver.rate() == (0.0, "UM")
        chain.inject("slow", 1.0)
        with pytest.raises(errors.DeviceTimeout):
            pump.driver.version()
        chain.faults.clear()
        time.sleep(1.0)  # the late replies arrive; the next request flushes them
        assert pump.driver.version() == "NE1000V3.928"
        pump.close()


def test_lockup_times_out() -> None:
    with newera_bench() as (_world, chain, transport):
        pump = make_newera("sample", settings(), transport)
        pump.connect()
        chain.inject("lockup")
        with pytest.raises(errors.DeviceTimeout):
            pump.is_running()
        chain.faults.clear()
        assert not pump.is_running()
        pump.close()


@pytest.mark.parametrize("wire", ["tcp", "pty"])
def test_unplug_raises_disconnected_and_replug_reconnects(wire: str, tmp_path: Path) -> None:
    link = str(tmp_path / "ne1000") if wire == "pty" else None
    with newera_bench(wire=wire, link=link) as (world, chain, transport):
        rig = chain_rig(transport, sample=0)
        pump = rig.pumps["sample"]
        rig.connect()
        pump.infuse(60.0, 100.0)
        chain.inject("unplug")
        time.sleep(0.1)
        with pytest.raises(errors.DeviceDisconnected):
            pump.is_running()
        assert not transport.is_open
        chain.faults.clear()
        time.sleep(0.1)
        rig.reconnect("sample")  # reopens the port by its name
        pump.stop()
        assert running_pumps(world) == []
        rig.close()


def test_emergency_stop_all_halts_every_pump() -> None:
    specs = [ne_spec("a", 0, fresh=False), ne_spec("b", 1, fresh=False)]
    with newera_bench(*specs) as (world, _chain, transport):
        rig = chain_rig(transport, a=0, b=1)
        a, b = rig.pumps["a"], rig.pumps["b"]
        rig.connect()
        a.infuse(60.0)
        b.infuse(60.0)
        assert len(running_pumps(world)) == 2
        assert rig.halt_all() == []  # *STP on the port, then each pump stopped
        assert running_pumps(world) == []
        for pump, model in ((a, world.pumps["a"]), (b, world.pumps["b"])):
            assert not pump.is_running()  # the runs ended by the broadcast: no alarm
            assert pump.displaced_ul() == pytest.approx(model.infused_ul, abs=0.01)
        rig.close()


def test_safe_mode_heartbeat_and_comm_timeout() -> None:
    with newera_bench(ne_spec(fresh=False)) as (world, _chain, transport):
        pump = make_newera("sample", settings(safe_mode="1 s"), transport)
        pump.connect()
        pump.infuse(30.0)
        time.sleep(1.6)  # longer than the pump's 1 s timeout: only the heartbeat talks
        assert running_pumps(world) == ["sample"]
        pump.driver.close()  # the controller "dies": no more packets
        time.sleep(1.6)
        assert running_pumps(world) == []  # the pump stopped itself
        with pytest.raises(errors.CommunicationTimeoutAlarm):
            pump.is_running()
        assert not pump.is_running()
        pump.driver.set_safe_mode(0)
        pump.close()


def test_new_controller_after_a_crash_in_safe_mode(caplog: pytest.LogCaptureFixture) -> None:
    with newera_bench(ne_spec(fresh=False)) as (world, _chain, transport):
        pump = make_newera("sample", settings(safe_mode=1), transport)
        pump.connect()
        pump.infuse(30.0)
        pump.close()  # the controller dies: no heartbeat, port closed
        time.sleep(1.6)
        assert running_pumps(world) == []
        again = make_newera("sample", settings(safe_mode=0), transport)  # Basic mode
        caplog.set_level(logging.INFO, logger="drivers.newera")
        again.connect()  # SAF0 meets the pending A?T (Safe-framed): acknowledged, repeated
        assert "safe-mode communications timeout" in caplog.text
        assert again.driver.safe_timeout_s == 0
        assert not again.is_running()
        again.close()


def test_front_panel_pause_interrupts_the_run() -> None:
    with newera_bench(ne_spec(fresh=False)) as (_world, _chain, transport):
        pump = make_newera("sample", settings(), transport)
        pump.connect()
        pump.infuse(60.0, 100.0)
        pump.driver.command("STP")  # as if the operator pressed STOP once: paused
        with pytest.raises(errors.PumpInterrupted):
            pump.is_running()
        assert 0 <= pump.displaced_ul() < 100.0
        pump.stop()
        pump.close()
