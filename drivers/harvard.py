"""Harvard Apparatus Pump 11 Elite / PHD ULTRA syringe pumps, Ultra command set.

Reference: device_protocols.md section 1.2. Commands: `[addr]@<command>[ <args>]\\r` (the `@`
prefix skips display updates; the address only for pumps other than 0 on a daisy chain).
Replies: data lines `\\n[NN:]text\\r`, then the prompt `\\n[NN]<prompt>` and, in polling mode,
XON. The driver turns polling on at connect (so a reply's end is unambiguous and no prompt
arrives unsolicited) and NVRAM writing off (fast rate changes). Errors raise typed exceptions.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass

from drivers.errors import (
    CommandRejected,
    DeviceBusy,
    DeviceTimeout,
    GarbledReply,
    OutOfRange,
    PumpStalled,
)
from drivers.exchange import AddressedDevice

log = logging.getLogger(__name__)

XON = b"\x11"
PROMPTS = {":": "idle", ">": "infusing", "<": "withdrawing", "*": "stalled", "T*": "target"}
VOLUME_UL = {"ml": 1000.0, "ul": 1.0, "nl": 1e-3, "pl": 1e-6, "fl": 1e-9}
PER_MIN = {"hr": 1 / 60.0, "h": 1 / 60.0, "min": 1.0, "m": 1.0, "sec": 60.0, "s": 60.0}
_POLLED_END = re.compile(rb"\n(\d\d)?(T\*|[:<>*])\x11")
_ANY_END = re.compile(rb"\n(\d\d)?(T\*|[:<>*])\x11?$")
_PROMPT = re.compile(r"(\d\d)?(T\*|[:<>*])")
_QUANTITY = re.compile(r"(\d+(?:\.\d*)?|\.\d+)\s*([munpf]?l)(?:/(hr|h|min|m|sec|s))?")
_STATUS = re.compile(r"(\d+) (\d+) (\d+) ([iwIW])([.IW])([.S])([.T])([IWiw.])([.T])")


def rate_in_units(rate_ul_min: float) -> tuple[float, str]:
    """Units for an irate/wrate command: (number, units) in ml/min, ul/min or nl/min."""
    if rate_ul_min >= 10000.0:
        return rate_ul_min / 1000.0, "m/m"
    if rate_ul_min >= 0.1:
        return rate_ul_min, "u/m"
    return rate_ul_min * 1000.0, "n/m"


@dataclass(frozen=True)
class UltraReply:
    """Data lines (address prefix removed) and the prompt."""

    lines: tuple[str, ...]
    prompt: str

    @property
    def running(self) -> bool:
        """The prompt says the pump is infusing or withdrawing."""
        return self.prompt in (">", "<")


@dataclass(frozen=True)
class PumpStatus:
    """The `status` line: rate (uL/min), time, displaced volume (uL) and the flags."""

    rate_ul_min: float
    time: int
    volume_ul: float
    direction: str  # "i" or "w"
    running: bool
    limit: str  # ".", "I" or "W"
    stalled: bool
    target_reached: bool


def format_quantity(value: float) -> str:
    """A plain decimal (no exponent), at most 6 significant digits."""
    if value <= 0:
        raise ValueError(f"{value} must be positive")
    text = f"{value:.6g}"
    if "e" in text:
        text = f"{value:.9f}".rstrip("0").rstrip(".")
    return text


def parse_quantity(text: str) -> float:
    """`12.345 ul/min` -> uL/min, `1.5 ml` -> uL."""
    match = _QUANTITY.fullmatch(text.strip().lower())
    if match is None:
        raise ValueError(f"not a quantity: {text!r}")
    number, volume, per = match.groups()
    return float(number) * VOLUME_UL[volume] * (PER_MIN[per] if per else 1.0)


class HarvardPump(AddressedDevice):
    """One Ultra-command-set pump at `address` on a (possibly shared) SerialTransport."""

    family = "Harvard"

    def _setup(self) -> None:
        self.polling = False
        self.resyncs = 0  # times the link was re-established after a lost reply (power cycle?)

    # -- link -----------------------------------------------------------------------------------
    def _encode(self, command: str) -> bytes:
        prefix = str(self.address) if self.address else ""
        return f"{prefix}@{command}\r".encode("ascii") if command else f"{prefix}\r".encode()

    def _decode(self, raw: bytes) -> UltraReply:
        text = raw.rstrip(XON).decode("latin-1")
        pieces = text.split("\n")[1:]  # anything before the first LF is a late prompt's tail
        match = _PROMPT.fullmatch(pieces[-1]) if pieces else None
        if match is None:
            raise GarbledReply(self.name, f"no valid prompt in {raw!r}", raw)
        head = f"{self.address:02d}" if self.address else None
        if match.group(1) != head:
            raise GarbledReply(self.name, f"prompt from another address: {raw!r}", raw)
        lines = []
        for piece in pieces[:-1]:
            line = piece.rstrip("\r")
            if head is not None:
                if not line.startswith(head + ":"):
                    raise GarbledReply(self.name, f"line from another address: {line!r}", raw)
                line = line[3:]
            lines.append(line)
        return UltraReply(tuple(lines), match.group(2))

    def exchange(
        self, command: str, *, strict: bool = True, retries: int | None = None
    ) -> UltraReply:
        """Send a command and read its reply (retried if lost or garbled); no error checks.

        `strict` frames by the polling-mode XON; otherwise a prompt at the end of the input
        ends the reply (only safe for replies without data lines, before polling is on).
        """
        until = _POLLED_END if strict and self.polling else _ANY_END
        return self._request(self._encode(command), until, self.timeout, self._decode, retries,
                             command)

    def command(self, command: str) -> UltraReply:
        """Send a command; raise the typed exception for an error in its reply.

        A lost reply after a power cycle (polling was switched off) is recovered once by
        turning polling on again and repeating the command.
        """
        try:
            reply = self.exchange(command)
        except DeviceTimeout:
            if not self.polling:
                raise
            log.info("%s: no reply to %r; re-establishing polling mode", self.name, command)
            self._handshake()
            self.resyncs += 1
            reply = self.exchange(command)
        self.check(reply, command)
        return reply

    def check(self, reply: UltraReply, command: str = "") -> None:
        """Raise CommandRejected / OutOfRange for an error reply."""
        text = " ".join(line.strip() for line in reply.lines)
        if not reply.lines:
            return
        first = reply.lines[0]
        if first.startswith("Command error"):
            kind = DeviceBusy if "running" in text.lower() else CommandRejected
            raise kind(self.name, f"{command!r}: {text}")
        if first.startswith("Argument error"):
            kind = OutOfRange if "range" in text.lower() else CommandRejected
            raise kind(self.name, f"{command!r}: {text}")

    # -- life cycle -----------------------------------------------------------------------------
    def _handshake(self) -> None:
        self.polling = False
        self.exchange("", strict=False)  # a bare CR: the manual's connection test
        self.exchange("poll on", strict=False)
        self.polling = True

    def connect(self) -> str:
        """Resynchronise (`\\r`), polling on, NVRAM writes off; return the `ver` line."""
        self._handshake()
        self.command("nvram off")
        return self.version()

    def close(self) -> None:
        """Nothing to stop (the port belongs to the transport)."""

    # -- commands -------------------------------------------------------------------------------
    def prompt(self) -> str:
        """The prompt for an empty command: `:`, `>`, `<`, `*` or `T*`."""
        return self.command("").prompt

    def poll(self) -> UltraReply:
        """Status by prompt; PumpStalled when the prompt is `*`."""
        reply = self.command("")
        if reply.prompt == "*":
            raise PumpStalled(self.name, "pump stalled (prompt *)")
        return reply

    def version(self) -> str:
        """E.g. `11 ELITE I/W Single 3.0.4`."""
        return self._line(self.command("ver"))

    def diameter(self) -> float:
        """Syringe inner diameter, mm."""
        text = self._line(self.command("diameter"))
        if not text.endswith(" mm"):
            raise GarbledReply(self.name, f"diameter reply {text!r}")
        return float(text[:-3])

    def set_diameter(self, mm: float) -> None:
        """Syringe inner diameter (mm)."""
        self.command(f"diameter {mm:.4f}")

    def set_syringe_volume(self, ul: float) -> None:
        """Syringe volume (uL)."""
        self.command(f"svolume {format_quantity(ul)} ul")

    def infuse_rate(self) -> float:
        """Infusion rate, uL/min."""
        return self._quantity(self.command("irate"))

    def withdraw_rate(self) -> float:
        """Withdrawal rate, uL/min."""
        return self._quantity(self.command("wrate"))

    def set_infuse_rate(self, value: float, units: str = "u/m") -> None:
        """Infusion rate in `units` ({m,u,n,p}/{h,m,s}, e.g. `u/m` = uL/min)."""
        self.command(f"irate {format_quantity(value)} {units}")

    def set_withdraw_rate(self, value: float, units: str = "u/m") -> None:
        """Withdrawal rate in `units`."""
        self.command(f"wrate {format_quantity(value)} {units}")

    def target_volume(self) -> float | None:
        """Target volume (uL), None when not set."""
        reply = self.command("tvolume")
        if self._line(reply) == "Target volume not set":
            return None
        return self._quantity(reply)

    def set_target_volume(self, ul: float) -> None:
        """Target volume in uL; the pump stops there (prompt `T*`)."""
        self.command(f"tvolume {format_quantity(ul)} ul")

    def clear_target(self) -> None:
        """No target: pump until stopped."""
        self.command("ctvolume")

    def clear_volumes(self) -> None:
        """Zero the infused and withdrawn counters."""
        self.command("cvolume")

    def infused_ul(self) -> float:
        """Volume infused since cleared, uL."""
        return self._quantity(self.command("ivolume"))

    def withdrawn_ul(self) -> float:
        """Volume withdrawn since cleared, uL."""
        return self._quantity(self.command("wvolume"))

    def infuse(self) -> UltraReply:
        """Run in the infuse direction."""
        return self._run("irun")

    def withdraw(self) -> UltraReply:
        """Run in the withdraw direction."""
        return self._run("wrun")

    def _run(self, command: str) -> UltraReply:
        reply = self.command(command)
        if reply.prompt == "*":
            raise PumpStalled(self.name, f"{command}: pump stalled (prompt *)")
        return reply

    def stop(self) -> UltraReply:
        """Stop (prompt `:`)."""
        return self.command("stp")

    def status(self) -> PumpStatus:
        """The `status` line parsed (rate fL/s, time, volume fL, flags)."""
        text = self._line(self.command("status"))
        match = _STATUS.fullmatch(text)
        if match is None:
            raise GarbledReply(self.name, f"status line {text!r}")
        rate, time, volume, motor, limit, stall, _trigger, _port, target = match.groups()
        return PumpStatus(
            rate_ul_min=int(rate) * 60e-9,
            time=int(time),
            volume_ul=int(volume) * 1e-9,
            direction=motor.lower(),
            running=motor.isupper(),
            limit=limit,
            stalled=stall == "S",
            target_reached=target == "T",
        )

    # -- helpers --------------------------------------------------------------------------------
    def _line(self, reply: UltraReply) -> str:
        if len(reply.lines) != 1:
            raise GarbledReply(self.name, f"expected one line, got {reply.lines!r}")
        return reply.lines[0]

    def _quantity(self, reply: UltraReply) -> float:
        text = self._line(reply)
        try:
            return parse_quantity(text)
        except ValueError as exc:
            raise GarbledReply(self.name, str(exc), text.encode()) from exc
