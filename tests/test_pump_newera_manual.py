"""A conversation typed from the NE-1000 manual, sent raw to the emulated pump.

The expected replies are written from the manual (device_protocols.md 1.1): STX, two-digit
address, status character, data, ETX; alarms `A?x`; errors `?`, `?NA`, `?OOR`.
"""

from __future__ import annotations

import binascii
import re
import socket
import time

import pytest
import serial
from pumpsim import ne_spec, newera_bench


class Terminal:
    """Types lines at the pump and reads whole replies (up to ETX), with a deadline."""

    def __init__(self, port: serial.SerialBase) -> None:
        self.port = port

    def say(self, line: bytes, wait: float = 1.0) -> bytes:
        self.port.reset_input_buffer()
        self.port.write(line)
        reply = b""
        deadline = time.monotonic() + wait
        while not reply.endswith(b"\x03") and time.monotonic() < deadline:
            reply += self.port.read(1)
        return reply


@pytest.mark.parametrize("wire", ["tcp", "pty"])
def test_manual_conversation(wire: str) -> None:
    spec = ne_spec("pump", diameter_mm=20.0, syringe_ul=60000.0, contents_ul=30000.0)
    with newera_bench(spec, wire=wire) as (_world, chain, transport):
        port = serial.serial_for_url(transport.url, baudrate=19200, timeout=0.05)
        term = Terminal(port)
        try:
            assert term.say(b"DIA 14.5\r", wait=0.3) == b""  # first command after power-up
            assert term.say(b"DIA 14.5\r") == b"\x0200A?R\x03"  # reset alarm, not executed
            assert term.say(b"DIA\r") == b"\x0200S20.00\x03"
            assert term.say(b"DIA 14.5\r") == b"\x0200S\x03"
            assert term.say(b"DIA\r") == b"\x0200S14.50\x03"
            assert term.say(b"RAT 10 UM\r") == b"\x0200S\x03"
            assert term.say(b"RAT\r") == b"\x0200S10.00UM\x03"
            assert term.say(b"VOL 100\r") == b"\x0200S\x03"
            assert term.say(b"VOL\r") == b"\x0200S100.0ML\x03"  # > 14.0 mm: volumes in mL
            assert term.say(b"DIR\r") == b"\x0200SINF\x03"
            assert term.say(b"RUN\r") == b"\x0200I\x03"
            assert term.say(b"\r") == b"\x0200I\x03"
            time.sleep(0.1)
            dis = term.say(b"DIS\r")
            match = re.fullmatch(rb"\x0200II(\d+\.\d*)W0\.000ML\x03", dis)
            assert match and len(match.group(1)) == 5 and float(match.group(1)) > 0
            assert term.say(b"DIA 10\r") == b"\x0200I?NA\x03"  # not while pumping
            assert term.say(b"STP\r") == b"\x0200P\x03"
            assert term.say(b"\r") == b"\x0200P\x03"
            assert term.say(b"STP\r") == b"\x0200S\x03"
            assert term.say(b"DIA 100\r") == b"\x0200S?OOR\x03"
            assert term.say(b"XYZ\r") == b"\x0200S?\x03"
            assert term.say(b"00 dia\r") == b"\x0200S14.50\x03"  # address, case, spaces
            assert term.say(b"VER\r") == b"\x0200SNE1000V3.928\x03"
            assert not chain.by_name["pump"].model.running
        finally:
            port.close()


def test_system_command_reaches_every_pump() -> None:
    specs = [ne_spec("a", 0, fresh=False), ne_spec("b", 1, fresh=False)]
    with newera_bench(*specs) as (world, _chain, transport):
        sock = socket.create_connection(("127.0.0.1", int(transport.url.rsplit(":", 1)[1])))
        sock.settimeout(0.5)
        try:
            for line in (b"0RAT 100 UM\r", b"1RAT 100 UM\r", b"*RUN\r"):
                sock.sendall(line)
                time.sleep(0.05)
            assert all(m.flow_ul_per_min(world.now()) == 100.0 for m in world.pumps.values())
            sock.sendall(b"*STP\r*STP\r")
            time.sleep(0.1)
            assert all(m.flow_ul_per_min(world.now()) == 0.0 for m in world.pumps.values())
        finally:
            sock.close()


def _safe(data: bytes) -> bytes:
    """A Safe-mode packet as the manual gives it: STX, len(data) + 4, data, CRC16, ETX."""
    crc = binascii.crc_hqx(data, 0)
    return bytes([2, len(data) + 4]) + data + bytes([crc >> 8, crc & 0xFF, 3])


def test_safe_mode_on_the_wire() -> None:
    with newera_bench(ne_spec("pump", fresh=False), wire="tcp") as (_world, _chain, transport):
        port = serial.serial_for_url(transport.url, timeout=0.05)
        term = Terminal(port)
        try:
            assert term.say(_safe(b"0SAF0")) == b"\x0200S\x03"  # Basic pumps take Safe packets
            assert term.say(_safe(b"0SAF5")) == _safe(b"00S")  # now answered in Safe framing
            assert term.say(_safe(b"0SAF")) == _safe(b"00S5")
            assert term.say(_safe(b"0DIA")) == _safe(b"00S4.699")
            bad_crc = _safe(b"0DIA")[:-3] + b"\x00\x00\x03"
            assert term.say(bad_crc) == _safe(b"00S?COM")
            assert term.say(b"0DIA\r") == _safe(b"00S?COM")  # Basic framing in Safe mode
            cut = _safe(b"0SAF0")
            assert term.say(cut[:5], wait=0.2) == b""  # a packet cut short: no answer...
            assert term.say(cut[5:]) == b"\x0200S\x03"  # ...until its end arrives
        finally:
            port.close()
