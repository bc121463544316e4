"""Harvard Apparatus Pump 11 Elite / PHD ULTRA syringe pumps, Ultra command set.

Reference: device_protocols.md section 1.2. Commands: `[addr]@<command>[ <args>]\\r` (the `@`
prefix skips display updates; the address only for pumps other than 0 on a daisy chain).
Replies: data lines `\\n[NN:]text\\r`, then the prompt `\\n[NN]<prompt>` and, in polling mode,
XON. The driver turns polling on at connect (so a reply's end is unambiguous and no prompt
arrives unsolicited) and NVRAM writing off (fast rate changes). Errors raise typed exceptions.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from typing import TypeVar

from drivers.errors import (
    CommandRejected,
    DeviceBusy,
    DeviceTimeout,
    GarbledReply,
    OutOfRange,
    PumpStalled,
    SetpointMismatch,
)
from drivers.exchange import (
    AddressedDevice,
    BlindOff,
    blind_offs,
    close_to,
    confirmed,
    in_range,
    own_reply,
    verified,
)
from drivers.harvard_wire import (
    ANY_END,
    DIAMETER,
    DIAMETER_MM,
    LINE_TEXT,
    MAX_RATE_UL_MIN,
    MAX_VOLUME_UL,
    POLLED_END,
    PROMPT,
    PROMPTS,
    STATUS,
    XON,
    PumpStatus,
    UltraReply,
    counting_on,
    format_quantity,
    parse_quantity,
    short_units_ul_min,
    status_goes_on,
)

__all__ = ["HarvardPump", "PumpStatus", "UltraReply", "format_quantity", "parse_quantity",
           "short_units_ul_min"]

log = logging.getLogger(__name__)
T = TypeVar("T")
STOP_TRIES = 3

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
        """Data lines `\\n[NN:]text\\r`, then the prompt; only a leaked prompt may come first."""
        text = raw.removesuffix(XON).decode("latin-1")
        pieces = text.split("\n")
        if pieces[0] and not PROMPT.fullmatch(pieces[0]):
            raise GarbledReply(self.name, f"bytes before the reply: {raw!r}", raw)
        pieces = pieces[1:]
        match = PROMPT.fullmatch(pieces[-1]) if pieces else None
        if match is None:
            raise GarbledReply(self.name, f"no valid prompt in {raw!r}", raw)
        head = f"{self.address:02d}" if self.address else None
        if match.group(1) != head:
            raise GarbledReply(self.name, f"prompt from another address: {raw!r}", raw)
        lines = []
        for piece in pieces[:-1]:
            line = piece.removesuffix("\r")
            if not LINE_TEXT.fullmatch(line):
                raise GarbledReply(self.name, f"not a line of text: {piece!r}", raw)
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
        until = POLLED_END if strict and self.polling else ANY_END
        return self._request(self._encode(command), until, self.timeout, self._decode, retries,
                             command)

    def command(self, command: str, retries: int | None = None) -> UltraReply:
        """Send a command; raise the typed exception for an error in its reply.

        A lost reply after a power cycle (polling was switched off) is recovered once by
        turning polling on again and repeating the command.
        """
        try:
            reply = self.exchange(command, retries=retries)
        except DeviceTimeout:
            if not self.polling:
                raise
            log.info("%s: no reply to %r; re-establishing polling mode", self.name, command)
            self._handshake()
            self.resyncs += 1
            reply = self.exchange(command, retries=retries)
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

    # -- readings and settings -------------------------------------------------------------
    def _reading(self, command: str, parse: Callable[[UltraReply], T],
                 agree: Callable[[T, T], bool] | None = None) -> T:
        """A query's parsed reply, taken once two replies in a row agree (no checksum); three
        for a bare prompt, whose reply is one character."""
        return confirmed(lambda: parse(self.command(command)), name=self.name,
                         what=command or "prompt", agree=agree, runs=2 if command else 3)

    def _setting(self, command: str, query: str, parse: Callable[[UltraReply], T],
                 matches: Callable[[T], bool], what: str) -> None:
        """Send `command`, read the setting back with `query`, again until it `matches`."""
        verified(lambda: self.command(command), lambda: parse(self.command(query)), matches,
                 name=self.name, what=what)

    # -- commands -------------------------------------------------------------------------------
    def prompt(self) -> str:
        """The prompt for an empty command: `:`, `>`, `<`, `*` or `T*`."""
        return self._reading("", lambda reply: reply.prompt)

    def poll(self) -> UltraReply:
        """Status by prompt (two agreeing replies); PumpStalled when the prompt is `*`."""
        reply = self._reading("", lambda reply: reply)
        if reply.prompt == "*":
            raise PumpStalled(self.name, "pump stalled (prompt *)")
        return reply

    def version(self) -> str:
        """E.g. `11 ELITE I/W Single 3.0.4`."""
        return self._reading("ver", self._line)

    def diameter(self) -> float:
        """Syringe inner diameter, mm."""
        return self._reading("diameter", self._diameter)

    def set_diameter(self, mm: float) -> None:
        """Syringe inner diameter (mm), read back."""
        if not (isinstance(mm, int | float) and math.isfinite(mm)
                and DIAMETER_MM[0] <= mm <= DIAMETER_MM[1]):
            raise OutOfRange(self.name, f"diameter {mm!r} mm is outside "
                             f"{DIAMETER_MM[0]:g}-{DIAMETER_MM[1]:g} mm")
        self._setting(f"diameter {mm:.4f}", "diameter", self._diameter,
                      close_to(round(mm, 4)), "diameter")

    def set_syringe_volume(self, ul: float) -> None:
        """Syringe volume (uL), read back."""
        text = self._format(ul)
        self._setting(f"svolume {text} ul", "svolume", self._quantity, close_to(float(text)),
                      "syringe volume")

    def infuse_rate(self) -> float:
        """Infusion rate, uL/min."""
        return self._reading("irate", self._rate)

    def withdraw_rate(self) -> float:
        """Withdrawal rate, uL/min."""
        return self._reading("wrate", self._rate)

    def set_infuse_rate(self, value: float, units: str = "u/m") -> None:
        """Infusion rate in `units` ({m,u,n,p}/{h,m,s}, e.g. `u/m` = uL/min), read back."""
        self._set_rate("irate", value, units)

    def set_withdraw_rate(self, value: float, units: str = "u/m") -> None:
        """Withdrawal rate in `units`, read back."""
        self._set_rate("wrate", value, units)

    def _set_rate(self, command: str, value: float, units: str) -> None:
        try:
            factor = short_units_ul_min(units)
        except ValueError as exc:
            raise OutOfRange(self.name, str(exc)) from None
        text = self._format(value)
        self._setting(f"{command} {text} {units}", command, self._rate,
                      close_to(float(text) * factor), f"{command} (rate)")

    def target_volume(self) -> float | None:
        """Target volume (uL), None when not set."""
        return self._reading("tvolume", self._target)

    def set_target_volume(self, ul: float) -> None:
        """Target volume in uL (read back); the pump stops there (prompt `T*`)."""
        text = self._format(ul)
        wanted = close_to(float(text))
        self._setting(f"tvolume {text} ul", "tvolume", self._target,
                      lambda got: got is not None and wanted(got), "target volume")

    def clear_target(self) -> None:
        """No target: pump until stopped (read back)."""
        self._setting("ctvolume", "tvolume", self._target, lambda got: got is None,
                      "target cleared")

    def clear_volumes(self) -> None:
        """Zero the infused and withdrawn counters (read back)."""
        def both() -> tuple[float, float]:
            return self._quantity(self.command("ivolume")), self._quantity(self.command("wvolume"))
        verified(lambda: self.command("cvolume"), both, lambda got: got == (0.0, 0.0),
                 name=self.name, what="volumes cleared")

    def infused_ul(self) -> float:
        """Volume infused since cleared, uL."""
        return self._reading("ivolume", self._quantity, agree=counting_on)

    def withdrawn_ul(self) -> float:
        """Volume withdrawn since cleared, uL."""
        return self._reading("wvolume", self._quantity, agree=counting_on)

    def infuse(self) -> UltraReply:
        """Run in the infuse direction (sent once: a repeated run would restart the target)."""
        return self._run("irun")

    def withdraw(self) -> UltraReply:
        """Run in the withdraw direction (sent once)."""
        return self._run("wrun")

    def _run(self, command: str) -> UltraReply:
        reply = self.command(command, retries=0)
        if reply.prompt == "*":
            raise PumpStalled(self.name, f"{command}: pump stalled (prompt *)")
        return reply

    def stop(self) -> UltraReply:
        """Stop, confirmed by the prompt (`:`); `stp` is sent again while it says otherwise."""
        reply = self.command("stp")
        for _ in range(STOP_TRIES):
            if reply.prompt not in (">", "<"):
                reply = self._reading("", lambda reply: reply)
                if reply.prompt not in (">", "<"):
                    return reply
            reply = self.command("stp")
        raise SetpointMismatch(self.name, f"still {PROMPTS[reply.prompt]} after "
                               f"{STOP_TRIES + 1} stp commands")

    def stop_blind(self) -> bool:
        """A safe state's stop (`blind_stop`, alone on its port). Never raises; True once the
        pump reported itself stopped."""
        return blind_offs([self.blind_stop()])[0]

    def blind_stop(self) -> BlindOff:
        """This pump's part of a safe state's stop (drivers.exchange.blind_offs, with the other
        pumps on its daisy chain): `stp` sent at once, never after a read, then confirmed by a
        prompt from this address that is neither `>` nor `<` (other pumps' replies skipped)."""
        return BlindOff(self.name, self.transport, self._encode("stp"), self._polled_still)

    def _polled_still(self, wait: float) -> bool:
        until = POLLED_END if self.polling else ANY_END
        return not own_reply(self.transport, self._encode(""), until, wait, self._decode).running

    def status(self) -> PumpStatus:
        """The `status` line parsed (rate fL/s, time, volume fL, flags); two readings agree
        when the flags and rate match and time and volume count on."""
        return self._reading("status", self._status, agree=status_goes_on)

    def _status(self, reply: UltraReply) -> PumpStatus:
        text = self._line(reply)
        match = STATUS.fullmatch(text)
        if match is None:
            raise GarbledReply(self.name, f"status line {text!r}", text.encode())
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
    def _format(self, value: float) -> str:
        try:
            return format_quantity(value)
        except ValueError as exc:
            raise OutOfRange(self.name, str(exc)) from None

    def _line(self, reply: UltraReply) -> str:
        if len(reply.lines) != 1:
            raise GarbledReply(self.name, f"expected one line, got {reply.lines!r}")
        return reply.lines[0]

    def _diameter(self, reply: UltraReply) -> float:
        text = self._line(reply)
        match = DIAMETER.fullmatch(text)
        if match is None:
            raise GarbledReply(self.name, f"diameter reply {text!r}", text.encode())
        return in_range(self.name, "diameter (mm)", float(match.group(1)), *DIAMETER_MM)

    def _target(self, reply: UltraReply) -> float | None:
        if self._line(reply) == "Target volume not set":
            return None
        return self._quantity(reply)

    def _rate(self, reply: UltraReply) -> float:
        text = self._line(reply)
        if "/" not in text:
            raise GarbledReply(self.name, f"a rate has units per time: {text!r}", text.encode())
        return in_range(self.name, "rate (uL/min)", self._parsed(text), 0.0, MAX_RATE_UL_MIN)

    def _quantity(self, reply: UltraReply) -> float:
        text = self._line(reply)
        if "/" in text:
            raise GarbledReply(self.name, f"a volume has no per-time: {text!r}", text.encode())
        return in_range(self.name, "volume (uL)", self._parsed(text), 0.0, MAX_VOLUME_UL)

    def _parsed(self, text: str) -> float:
        try:
            return parse_quantity(text)
        except ValueError as exc:
            raise GarbledReply(self.name, str(exc), text.encode()) from None
