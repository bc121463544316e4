"""Emulated New Era NE-1000 pump network: several pumps on one serial line, by address.

Wire format (device_protocols.md 1.1). Host to pump, Basic mode: `[addr|*]<cmd>[args]<CR>`
(spaces and case ignored); Safe mode: `STX len <addr><cmd>[args] crc_hi crc_lo ETX` with
CRC-16/XMODEM over the data. Pump to host: `STX <addr 2 digits> <status> [data] ETX` in Basic
mode, `STX len <addr 2 digits><status>[data] crc ETX` in Safe mode. `*` commands go to every
pump and their simultaneous replies collide on the line (gibberish).

Faults: `stall` and `power_cycle` act on a pump (all pumps when none is named); the link
faults of hardware_sim.faults act on the endpoint serving the chain.
"""

from __future__ import annotations

import binascii
import re
from typing import Any

from hardware_sim.newera_pump import NeSimPump, wall_clock
from hardware_sim.pumpchain import PumpChain
from hardware_sim.syringe import SyringePumpModel
from hardware_sim.world import World

STX, ETX, CR = 0x02, 0x03, 0x0D
MIN_SAFE_LENGTH, MAX_SAFE_LENGTH = 5, 64  # len byte: data (>= 1 byte) + 4; no command is longer
_LINE = re.compile(r"(\*|\d{1,2})?([A-Z]{3})?(.*)")


def safe_frame(data: bytes) -> bytes:
    """Wrap `data` in a Safe-mode packet."""
    checksum = binascii.crc_hqx(data, 0)
    return bytes([STX, len(data) + 4]) + data + bytes([checksum >> 8, checksum & 0xFF, ETX])


def collide(replies: list[bytes]) -> bytes:
    """Replies sent at the same moment by several pumps: their bytes interleave."""
    if len(replies) <= 1:
        return b"".join(replies)
    out = bytearray()
    for index in range(max(len(r) for r in replies)):
        out += bytes(r[index] for r in replies if index < len(r))
    return bytes(out)


class NewEraChain(PumpChain[NeSimPump]):
    """A chain of emulated NE-1000 pumps sharing one port.

    `pumps`: one dict per pump with `name`, `address`, `reagent`, `diameter_mm`,
    `syringe_ul`, `contents_ul` (and optionally `fresh`: False for a pump that has already
    reported its power-up reset). Each pump's model is registered in world.pumps and
    world.devices under its name.
    """

    endpoint_name = "newera"

    def __init__(self, world: World, pumps: list[dict[str, Any]], wall=wall_clock) -> None:
        def make_pump(spec: dict[str, Any], model: SyringePumpModel) -> NeSimPump:
            pump = NeSimPump(int(spec.get("address", 0)), model, wall)
            if not spec.get("fresh", True):
                pump.alarm, pump.ignore_next = "", False
            return pump

        super().__init__(world, pumps, make_pump)

    def _after_device_fault(self, fault: str) -> None:
        if fault == "power_cycle":
            self._buffer = b""

    # -- the Emulator face ----------------------------------------------------------------------
    def connected(self) -> bytes:
        """The pumps say nothing when a host opens the port."""
        return b""

    def poll(self) -> bytes:
        """Clock-driven output: a Safe-mode pump announces its communications-timeout alarm."""
        out = []
        for pump in self.pumps.values():
            pump.sync()
            if pump.watchdog():
                out.append(safe_frame(f"{pump.address:02d}A?T".encode()))
        return collide(out)

    def receive(self, data: bytes) -> bytes:
        """Bytes from the host; the replies of every packet completed by them."""
        self._buffer = (self._buffer + data)[-512:]
        out = b""
        while True:
            packet = self._next_packet()
            if packet is None:
                return out
            out += self._dispatch(*packet)

    def _next_packet(self) -> tuple[str, bool, bool] | None:
        """(text, safe framed, CRC good) of the next complete packet, or None.

        An STX starts a Safe packet wherever it stands, in Basic mode too (section 1.1: a pump
        in Basic mode must accept a Safe-framed packet, e.g. nesp-lib's opening `SAF0`): a
        Basic command never holds an STX, so an unfinished line before it is dropped.
        """
        buf = self._buffer
        stx, cr = buf.find(bytes([STX])), buf.find(b"\r")
        if stx >= 0 and (cr < 0 or stx < cr):
            buf = self._buffer = buf[stx:]
            if len(buf) < 2:
                return None
            if not MIN_SAFE_LENGTH <= buf[1] <= MAX_SAFE_LENGTH:  # no packet: a stray STX
                self._buffer = buf[1:]
                return self._next_packet()
            total = 1 + buf[1]
            if len(buf) < total:
                return None
            packet, self._buffer = buf[:total], buf[total:]
            data, crc = packet[2:-3], packet[-3:-1]
            good = packet[-1] == ETX and binascii.crc_hqx(data, 0).to_bytes(2, "big") == crc
            return data.decode("latin-1"), True, good
        if cr < 0:
            return None
        line, self._buffer = buf[:cr], buf[cr + 1 :]
        return line.decode("latin-1"), False, True

    def _dispatch(self, text: str, safe: bool, good: bool) -> bytes:
        # spaces and control characters are stripped (and bytes outside ASCII: line noise)
        body = "".join(ch for ch in text if ch.isascii() and ch.isprintable()
                       and not ch.isspace()).upper()
        match = _LINE.fullmatch(body)
        assert match is not None  # the pattern matches any string
        address, command, args = match.groups()
        targets = self._targets(address)
        replies = []
        for pump in targets:
            if pump.ignore_next:
                pump.ignore_next = False
                continue
            replies.append(self._answer(pump, command or "", args, safe, good))
        for pump in self.pumps.values():
            pump.ignore_next = False  # every pump saw this command on the line
        return collide(replies)

    def _targets(self, address: str | None) -> list[NeSimPump]:
        if address == "*":
            return list(self.pumps.values())
        pump = self.pumps.get(int(address) if address else 0)
        return [pump] if pump else []

    def _answer(self, pump: NeSimPump, command: str, args: str, safe: bool, good: bool) -> bytes:
        if safe and not good or not safe and pump.nvm.safe_s > 0:
            body = pump.state + "?COM"  # a bad packet, or Basic framing while in Safe mode
        elif command == "" and args:
            body = pump.state + "?"
        else:
            body = pump.execute(command, args)
        data = f"{pump.address:02d}{body}".encode()
        if pump.nvm.safe_s > 0:
            return safe_frame(data)
        return bytes([STX]) + data + bytes([ETX])
