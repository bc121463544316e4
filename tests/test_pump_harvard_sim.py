"""The Harvard driver and adapter against the emulated Pump 11 Elite chain; a raw conversation
typed from the manual; and faults ending in typed exceptions or asserted recoveries."""

from __future__ import annotations

import re
import time
from pathlib import Path

import pytest
import serial
from pumpsim import (
    LowestRng,
    chain_rig,
    ha_settings,
    harvard_bench,
    ne_spec,
    running_pumps,
    wait_stopped,
)

from chipctl.devices.interfaces import SyringePump
from chipctl.devices.pumps import make_harvard
from drivers import errors


@pytest.mark.parametrize("wire", ["tcp", "pty"])
def test_infuse_withdraw_and_daisy_chain(wire: str) -> None:
    specs = [ne_spec("sample", 0), ne_spec("buffer", 3)]
    with harvard_bench(*specs, wire=wire) as (world, _chain, transport):
        a = make_harvard("sample", ha_settings(0), transport)
        b = make_harvard("buffer", ha_settings(3), transport)
        assert isinstance(a, SyringePump)
        a.connect()
        b.connect()
        a.infuse(300.0, 30.0)
        b.withdraw(150.0, 10.0)
        flows = {n: p.flow_ul_per_min(world.now()) for n, p in world.pumps.items()}
        assert flows == {"sample": 300.0, "buffer": -150.0}
        wait_stopped(a)
        wait_stopped(b)
        assert a.displaced_ul() == pytest.approx(30.0, abs=0.001)
        assert b.displaced_ul() == pytest.approx(-10.0, abs=0.001)
        assert (a.syringe.contents_ul, b.syringe.contents_ul) == pytest.approx((470.0, 510.0))
        a.infuse(60.0)  # until stopped
        time.sleep(0.1)
        a.stop()
        moved = world.pumps["sample"].infused_ul
        assert a.displaced_ul() == pytest.approx(moved, abs=0.001)
        a.close()
        b.close()


class Terminal:
    """Types lines at the pump; reads until the expected reply's length or a deadline."""

    def __init__(self, port: serial.SerialBase) -> None:
        self.port = port

    def say(self, line: bytes, ends: bytes = b"", wait: float = 1.0) -> bytes:
        self.port.reset_input_buffer()
        self.port.write(line)
        return self.read(ends, wait)

    def read(self, ends: bytes, wait: float = 1.0) -> bytes:
        reply = b""
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            reply += self.port.read(64)
            if re.search(rb"\n(\d\d)?(T\*|[:<>*])\x11?$", reply) and reply.endswith(ends):
                break
        return reply


def test_manual_conversation() -> None:
    specs = [ne_spec("pump", 0, syringe_ul=10000.0, contents_ul=5000.0), ne_spec("two", 2)]
    with harvard_bench(*specs) as (_world, _chain, transport):
        port = serial.serial_for_url(transport.url, baudrate=115200, timeout=0.05)
        term = Terminal(port)
        try:
            assert term.say(b"\r") == b"\n:"
            assert term.say(b"ver\r") == b"\n11 ELITE I/W Single 3.0.4\r\n:"
            assert term.say(b"diameter 14.5\r") == b"\n:"
            assert term.say(b"diameter\r") == b"\n14.5000 mm\r\n:"
            assert term.say(b"irate 10 u/m\r") == b"\n:"
            assert term.say(b"irate\r") == b"\n10.000 ul/min\r\n:"
            assert term.say(b"irate 10 ul/min\r") == b"\n:"  # the long form clients send
            assert term.say(b"tvolume 100 ul\r") == b"\n:"
            assert term.say(b"tvolume\r") == b"\n100.00 ul\r\n:"
            assert term.say(b"irun\r") == b"\n>"
            assert term.say(b"\r") == b"\n>"
            assert term.say(b"crate\r") == b"\nInfusing at 10.000 ul/min\r\n>"
            assert re.fullmatch(rb"\n\d+\.\d+ ul\r\n>", term.say(b"ivolume\r"))
            assert re.fullmatch(rb"\n\d+ \d+ \d+ I\.\.\.I\.\r\n>", term.say(b"status\r"))
            assert term.say(b"diameter 10\r") == (
                b"\nCommand error:\r\n   Not allowed while running\r\n>"
            )
            assert term.say(b"stp\r") == b"\n:"
            assert term.say(b"foo\r") == b"\nCommand error:\r\n   Unknown command\r\n:"
            assert term.say(b"irate 10 x/y\r") == (
                b"\nArgument error: 10 x/y\r\n   Unknown argument\r\n:"
            )
            assert term.say(b"irate 900 m/m\r") == (
                b"\nArgument error: 900 m/m\r\n   Out of range\r\n:"
            )
            assert term.say(b"2ver\r") == b"\n02:11 ELITE I/W Single 3.0.4\r\n02:"
            assert term.say(b"poll on\r", b"\x11") == b"\n:\x11"
            assert term.say(b"poll\r", b"\x11") == b"\nPolling mode is ON\r\n:\x11"
            assert term.say(b"poll off\r") == b"\n:"
            # polling off: reaching the target prints T* by itself
            assert term.say(b"tvolume 10 ul\r") == b"\n:"
            assert term.say(b"cvolume\r") == b"\n:"
            assert term.say(b"irate 60 u/m\r") == b"\n:"
            assert term.say(b"irun\r") == b"\n>"
            assert term.read(b"T*", wait=1.5) == b"\nT*"
            assert term.say(b"stp\r") == b"\n:"
        finally:
            port.close()


def test_stall_raises_and_stop_rearms() -> None:
    with harvard_bench() as (world, _chain, transport):
        pump = make_harvard("sample", ha_settings(), transport)
        pump.connect()
        pump.infuse(60.0, 100.0)
        time.sleep(0.1)
        world.devices["sample"].inject("stall")  # the per-pump handle the bench uses
        with pytest.raises(errors.PumpStalled):
            pump.is_running()
        moved = world.pumps["sample"].infused_ul
        assert 0 < moved < 100
        assert pump.syringe.contents_ul == pytest.approx(500.0 - moved, abs=0.001)
        assert pump.driver.status().stalled
        pump.infuse(600.0, 10.0)
        wait_stopped(pump)
        assert pump.displaced_ul() == pytest.approx(10.0, abs=0.001)
        pump.close()


def test_empty_syringe_stalls() -> None:
    with harvard_bench(ne_spec("sample", contents_ul=20.0)) as (_world, _chain, transport):
        pump = make_harvard("sample", ha_settings(), transport)
        pump.connect()
        pump.infuse(600.0, 100.0)
        with pytest.raises(errors.PumpStalled):
            wait_stopped(pump)
        assert pump.displaced_ul() == pytest.approx(20.0, abs=0.001)
        assert pump.driver.status().limit == "I"
        pump.stop()
        pump.close()


def test_power_cycle_mid_run_raises_reset_and_recovers() -> None:
    with harvard_bench() as (world, chain, transport):
        pump = make_harvard("sample", ha_settings(), transport)
        pump.connect()
        pump.infuse(60.0, 200.0)
        time.sleep(0.1)
        before = pump.displaced_ul()
        chain.inject("power_cycle")
        with pytest.raises(errors.PumpReset):
            pump.is_running()  # no XON any more: polling is re-established, prompt is ':'
        assert running_pumps(world) == []
        assert pump.displaced_ul() == pytest.approx(before)  # counters died with the power
        pump.infuse(600.0, 10.0)
        wait_stopped(pump)
        assert pump.displaced_ul() == pytest.approx(10.0, abs=0.001)
        pump.close()


def test_link_faults() -> None:
    with harvard_bench() as (_world, chain, transport):
        pump = make_harvard("sample", ha_settings(), transport)
        pump.connect()
        chain.inject("drop_reply", 1)
        assert pump.driver.diameter() == 4.699  # retried
        chain.faults.rng = LowestRng()  # flip bit 0 of the byte after LF: ":" -> ";"
        chain.inject("garble", 1)
        pump.driver.set_diameter(4.699)  # no valid prompt: resynchronised and repeated
        assert pump.driver.diameter() == 4.699
        chain.inject("split", 1)
        chain.inject("slow", 0.1)
        assert pump.driver.infuse_rate() == 0.0
        chain.faults.clear()
        chain.inject("lockup")
        with pytest.raises(errors.DeviceTimeout):
            pump.driver.version()
        chain.faults.clear()
        assert pump.driver.version() == "11 ELITE I/W Single 3.0.4"
        pump.close()


@pytest.mark.parametrize("wire", ["tcp", "pty"])
def test_unplug_and_replug(wire: str, tmp_path: Path) -> None:
    link = str(tmp_path / "elite11") if wire == "pty" else None
    with harvard_bench(wire=wire, link=link) as (world, chain, transport):
        rig = chain_rig(transport, "harvard", sample=0)
        pump = rig.pumps["sample"]
        rig.connect()
        pump.infuse(60.0, 100.0)
        chain.inject("unplug")
        time.sleep(0.1)
        with pytest.raises(errors.DeviceDisconnected):
            pump.is_running()
        chain.faults.clear()
        time.sleep(0.1)
        rig.reconnect("sample")
        pump.stop()
        assert running_pumps(world) == []
        rig.close()


def test_panel_stop_interrupts_the_run() -> None:
    with harvard_bench() as (_world, _chain, transport):
        pump = make_harvard("sample", ha_settings(), transport)
        pump.connect()
        pump.infuse(60.0)
        pump.driver.stop()  # stopped behind the adapter's back (the touch screen)
        with pytest.raises(errors.PumpInterrupted):
            pump.is_running()
        pump.close()
