"""New Era NE-1000 family syringe pumps (also WPI Aladdin), RS-232 Basic and Safe modes.

Reference: device_protocols.md section 1.1. Commands go out as `<addr><CMD><args>\\r` (Basic)
or `STX len <addr><CMD><args> crc16 ETX` (Safe); replies are `STX <addr 2> <status> [data]
ETX` (Basic) or the same data in a Safe packet. Several pumps share one port (one
SerialTransport) by address. Alarms and command errors raise drivers.errors exceptions.
"""

from __future__ import annotations

import binascii
import logging
import math
import re
from collections.abc import Callable
from typing import TypedDict, TypeVar, Unpack

from drivers.errors import (
    CommandRejected,
    DeviceAlarm,
    DeviceTimeout,
    GarbledReply,
    OutOfRange,
    PumpReset,
    SetpointMismatch,
)
from drivers.exchange import (
    AddressedDevice,
    BlindOff,
    blind_offs,
    confirmed,
    in_range,
    own_reply,
    verified,
)
from drivers.newera_safe import Heartbeat, emergency_stop_all
from drivers.newera_wire import (
    ALARMS,
    DISPENSED,
    ERRORS,
    ETX,
    RATE,
    RATE_UNITS,
    REPLY,
    RUNNING,
    STATUSES,
    STX,
    VERSION,
    VOLUME,
    VOLUME_UNITS,
    Reply,
    format_number,
    frame_end,
    is_basic,
    reply_packet,
    safe_packet,
)

__all__ = ["NewEraPump", "Reply", "emergency_stop_all", "format_number", "safe_packet"]

log = logging.getLogger(__name__)
T = TypeVar("T")

PROBE_TIMEOUT_S = 0.25
DIAMETER_MM = (0.1, 80.0)  # what the pump accepts (nesp-lib's limits; the emulator's too)
STOP_TRIES = 4


class ExchangeOptions(TypedDict, total=False):
    """How one command goes out: `safe` (Safe-mode framing; default: whether the pump runs
    in Safe mode), `retries` (default: the pump's), `timeout` (s; default: the pump's)."""

    safe: bool | None
    retries: int | None
    timeout: float | None


class NewEraPump(AddressedDevice):
    """One NE-1000 pump at `address` on a (possibly shared) SerialTransport."""

    family = "New Era"

    def _setup(self) -> None:
        self.safe_timeout_s = 0
        self.reset_seen = False
        self._pending_alarm: DeviceAlarm | None = None
        self.heartbeat = Heartbeat(self.name, self._beat_once)

    # -- link -----------------------------------------------------------------------------------
    def _encode(self, body: str, safe: bool) -> bytes:
        data = f"{self.address}{body}".encode("ascii")
        return safe_packet(data) if safe else data + b"\r"

    def _decode(self, raw: bytes) -> Reply:
        """Exactly one Basic (`STX addr status data ETX`) or Safe packet, after the bytes
        resynchronising dropped (`reply_packet`)."""
        raw = reply_packet(raw)
        if raw[:1] != bytes([STX]) or raw[-1:] != bytes([ETX]):
            raise GarbledReply(self.name, f"not one framed reply: {raw!r}", raw)
        if is_basic(raw):
            body = raw[1:-1]
        else:
            body, crc = raw[2:-3], raw[-3:-1]
            if len(raw) != raw[1] + 1 or binascii.crc_hqx(body, 0).to_bytes(2, "big") != crc:
                raise GarbledReply(self.name, "Safe-mode reply with a bad CRC or length", raw)
        match = REPLY.fullmatch(body)
        if match is None:
            raise GarbledReply(self.name, f"reply does not follow the grammar: {raw!r}", raw)
        address = int(match.group(1))
        if address != self.address:
            message = f"reply from address {address}, expected {self.address}"
            raise GarbledReply(self.name, message, raw)
        return Reply(address, match.group(2).decode(), match.group(3).decode())

    def exchange(self, body: str, **options: Unpack[ExchangeOptions]) -> Reply:
        """Send one command and read its reply; retry on a lost or garbled reply. No checks."""
        safe = options.get("safe")
        safe = self.safe_timeout_s > 0 if safe is None else safe
        reply = self._request(self._encode(body, safe), frame_end,
                              options.get("timeout") or self.timeout, self._decode,
                              options.get("retries"), body)
        self.heartbeat.traffic()
        return reply

    def command(self, body: str, **options: Unpack[ExchangeOptions]) -> Reply:
        """Send a command (options as for exchange); raise the alarm or command error its
        reply carries."""
        if self._pending_alarm is not None:
            alarm, self._pending_alarm = self._pending_alarm, None
            raise alarm
        reply = self.exchange(body, **options)
        self.check(reply, body)
        return reply

    def check(self, reply: Reply, body: str = "") -> None:
        """Raise the typed exception for an alarm or a command error in `reply`."""
        if reply.status.startswith("A?"):
            alarm, text = ALARMS[reply.status[2]]
            if alarm is PumpReset:
                self.reset_seen = True
            raise alarm(self.name, f"{text} (alarm {reply.status}, on {body!r})")
        if reply.data.startswith("?"):
            error, text = ERRORS.get(reply.data[1:], (CommandRejected, "error"))
            raise error(self.name, f"{body!r}: {text} ({reply.data})")

    # -- life cycle -----------------------------------------------------------------------------
    def connect(self, safe_timeout_s: int = 0) -> str:
        """Reach the pump in whatever mode it is, acknowledge power-up alarms, return VER.

        Sends `SAF<n>` in Safe framing (a pump in Basic mode accepts it too). The pump ignores
        the first command after power-up and answers the next with `A?R`: both are absorbed.
        The first packet waits at most PROBE_TIMEOUT_S (a pump answers within milliseconds).
        """
        last: Exception | None = None
        for attempt in range(4):
            try:
                probe = min(PROBE_TIMEOUT_S, self.timeout or self.transport.timeout)
                self.set_safe_mode(safe_timeout_s, timeout=probe if attempt == 0 else None)
                break
            except DeviceAlarm as alarm:  # acknowledged by this reply; the command did not run
                log.info("%s: alarm at connect (acknowledged): %s", self.name, alarm)
                last = alarm
            except DeviceTimeout as exc:
                last = exc
        else:
            assert last is not None
            raise last
        return self.version()

    def close(self) -> None:
        """Stop the heartbeat (the port belongs to the transport)."""
        self.heartbeat.stop()

    # -- readings and settings -------------------------------------------------------------
    def _reading(self, body: str, parse: Callable[[str], T], confirm: bool = True) -> T:
        """A query's parsed data; in Basic mode (no CRC) only once two replies agree, unless
        `confirm` is False (a read-back, compared with what was just sent)."""
        def read() -> T:
            return parse(self.command(body).data)
        if self.safe_timeout_s > 0 or not confirm:
            return read()
        return confirmed(read, name=self.name, what=body or "status")

    def _setting(self, body: str, query: str, parse: Callable[[str], T], wanted: T,
                 what: str) -> None:
        """Send `body`, read the setting back (`query`), send again until it reads `wanted`."""
        verified(lambda: self.command(body), lambda: self._reading(query, parse, confirm=False),
                 lambda got: got == wanted, name=self.name, what=what)

    # -- commands -------------------------------------------------------------------------------
    def status(self) -> Reply:
        """Status query (empty command); confirmed by a second reply in Basic mode."""
        if self.safe_timeout_s > 0:
            return self.command("")
        return confirmed(lambda: self.command(""), name=self.name, what="status", runs=3)

    def version(self) -> str:
        """Model and firmware, e.g. `NE1000V3.928`."""
        return self._reading("VER", self._version)

    def diameter(self) -> float:
        """Syringe inner diameter, mm."""
        return self._reading("DIA", self._diameter)

    def set_diameter(self, mm: float) -> None:
        """Set the syringe inner diameter (mm), read back; also sets the volume units (UL if
        <= 14 mm)."""
        self._check(mm, DIAMETER_MM, "diameter", "mm")
        text = self._format(mm)
        self._setting("DIA" + text, "DIA", self._diameter, float(text), "diameter")

    def rate(self) -> tuple[float, str]:
        """Pumping rate and its units."""
        return self._reading("RAT", self._rate)

    def set_rate(self, value: float, units: str = "UM") -> None:
        """Set the rate (read back); `units` one of UM, MM, UH, MH."""
        if units not in RATE_UNITS:
            raise OutOfRange(self.name, f"rate units {units!r}; use one of {', '.join(RATE_UNITS)}")
        text = self._format(value)
        self._setting("RAT" + text + units, "RAT", self._rate, (float(text), units), "rate")

    def volume(self) -> tuple[float, str]:
        """Volume to dispense (0 = until stopped) and its units."""
        return self._reading("VOL", self._volume)

    def set_volume(self, value: float, units: str = "UL") -> None:
        """Set the volume units, then the volume to dispense (0 = pump until stopped); read
        back."""
        if units not in VOLUME_UNITS:
            raise OutOfRange(self.name, f"volume units {units!r}; use UL or ML")
        number = self._format(value)

        def apply() -> None:
            self.command("VOL" + units)
            self.command("VOL" + number)
        verified(apply, lambda: self._reading("VOL", self._volume, confirm=False),
                 lambda got: got == (float(number), units), name=self.name, what="volume")

    def direction(self) -> str:
        """`INF` or `WDR`."""
        return self._reading("DIR", self._direction)

    def set_direction(self, direction: str) -> None:
        """`INF` (infuse) or `WDR` (withdraw), read back."""
        if direction not in ("INF", "WDR"):
            raise OutOfRange(self.name, f"direction must be INF or WDR, not {direction!r}")
        self._setting("DIR" + direction, "DIR", self._direction, direction, "direction")

    def run(self) -> Reply:
        """Start pumping (or resume a paused run). Never sent twice: RUN is not idempotent."""
        return self.command("RUN", retries=0)

    def stop(self) -> Reply:
        """Stop until the pump confirms it: STP pauses a running pump, a second STP stops it
        (status S); the status is read back after each STP."""
        reply = self.command("STP")
        for _ in range(STOP_TRIES):
            if reply.status not in RUNNING and reply.status != "P":
                reply = self.status()
                if reply.status not in RUNNING and reply.status != "P":
                    return reply
            reply = self.command("STP")
        raise SetpointMismatch(self.name, f"still {STATUSES.get(reply.status, reply.status)} "
                               f"after {STOP_TRIES + 1} STP commands")

    def dispensed(self) -> tuple[float, float, str]:
        """(infused, withdrawn, units) since they were last cleared."""
        def read() -> tuple[float, float, str]:
            return self._dispensed(self.command("DIS").data)
        if self.safe_timeout_s > 0:
            return read()
        return confirmed(read, name=self.name, what="DIS", agree=_counting_on)

    def dispensed_ul(self) -> tuple[float, float]:
        """(infused, withdrawn) in uL."""
        infused, withdrawn, units = self.dispensed()
        return infused * VOLUME_UNITS[units], withdrawn * VOLUME_UNITS[units]

    def clear_dispensed(self) -> None:
        """Zero both dispensed-volume counters (read back)."""
        def apply() -> None:
            self.command("CLDINF")
            self.command("CLDWDR")
        verified(apply, lambda: self._reading("DIS", self._dispensed, confirm=False),
                 lambda got: got[:2] == (0.0, 0.0), name=self.name, what="dispensed volume cleared")

    # -- Safe mode ------------------------------------------------------------------------------
    def set_safe_mode(self, timeout_s: int, *, timeout: float | None = None) -> None:
        """`SAF<n>` (n s, 1-255; 0 = Basic mode), sent Safe-framed and read back; heartbeat
        while in Safe mode."""
        if isinstance(timeout_s, bool) or not isinstance(timeout_s, int) or not (
                0 <= timeout_s <= 255):
            raise OutOfRange(self.name, f"safe-mode timeout must be 0-255 s, got {timeout_s!r}")
        self.heartbeat.stop()

        def apply() -> None:
            self.command(f"SAF{timeout_s}", safe=True, timeout=timeout)
            self.safe_timeout_s = timeout_s  # the pump answers in its new framing from now on

        verified(apply, lambda: self._reading("SAF", self._safe_seconds, confirm=False),
                 lambda got: got == timeout_s, name=self.name, what="safe mode")
        if timeout_s:
            self.heartbeat.start(timeout_s / 2.0)

    def _beat_once(self) -> None:
        """One heartbeat: a status query; an alarm it brings is kept for the next command."""
        if not self.transport.is_open:
            return  # the link is gone; the caller sees that on its next command
        try:
            self.check(self.exchange(""), "")
        except DeviceAlarm as alarm:  # acknowledged by this reply: keep it for the caller
            self._pending_alarm = alarm

    def stop_blind(self) -> bool:
        """A safe state's stop (`blind_stop`, alone on its port). Never raises; True once
        confirmed."""
        return blind_offs([self.blind_stop()])[0]

    def blind_stop(self) -> BlindOff:
        """This pump's part of a safe state's stop (drivers.exchange.blind_offs, with the other
        pumps on its port): STP sent twice at once (it pauses a running pump, then stops it; an
        alarm swallows one), never after a read, then confirmed by a status from this address
        that is not running (other pumps' replies on the chain are skipped)."""
        stp = self._encode("STP", self.safe_timeout_s > 0)
        return BlindOff(self.name, self.transport, stp + stp, self._still)

    def _still(self, wait: float) -> bool:
        packet = self._encode("", self.safe_timeout_s > 0)
        reply = own_reply(self.transport, packet, frame_end, wait, self._decode)
        self.heartbeat.traffic()
        return reply.status not in RUNNING

    # -- helpers --------------------------------------------------------------------------------
    def _format(self, value: float) -> str:
        try:
            return format_number(value)
        except (ValueError, TypeError) as exc:
            raise OutOfRange(self.name, str(exc)) from exc

    def _check(self, value: float, limits: tuple[float, float], what: str, unit: str) -> None:
        if not (isinstance(value, int | float) and math.isfinite(value)
                and limits[0] <= value <= limits[1]):
            raise OutOfRange(self.name, f"{what} {value!r} {unit} is outside "
                             f"{limits[0]:g}-{limits[1]:g} {unit}")

    def _number(self, data: str) -> float:
        """The pump's number: a point, at most 4 digits, at most 3 after the point."""
        whole, point, decimals = data.partition(".")
        digits = whole + decimals
        if not point or not digits.isdigit() or len(digits) > 4 or len(decimals) > 3:
            raise GarbledReply(self.name, f"expected a number, got {data!r}", data.encode())
        return float(data)

    def _diameter(self, data: str) -> float:
        return in_range(self.name, "diameter (mm)", self._number(data), *DIAMETER_MM)

    def _version(self, data: str) -> str:
        if not VERSION.fullmatch(data):
            raise GarbledReply(self.name, f"VER reply {data!r}", data.encode())
        return data

    def _direction(self, data: str) -> str:
        if data not in ("INF", "WDR"):
            raise GarbledReply(self.name, f"DIR reply {data!r}", data.encode())
        return data

    def _safe_seconds(self, data: str) -> int:
        if not re.fullmatch(r"\d{1,3}", data) or int(data) > 255:
            raise GarbledReply(self.name, f"SAF reply {data!r}", data.encode())
        return int(data)

    def _dispensed(self, data: str) -> tuple[float, float, str]:
        match = DISPENSED.fullmatch(data)
        if match is None:
            raise GarbledReply(self.name, f"DIS reply {data!r}", data.encode())
        return self._number(match.group(1)), self._number(match.group(2)), match.group(3)

    def _rate(self, data: str) -> tuple[float, str]:
        return self._with_units(RATE, data)

    def _volume(self, data: str) -> tuple[float, str]:
        return self._with_units(VOLUME, data)

    def _with_units(self, pattern: re.Pattern[str], data: str) -> tuple[float, str]:
        match = pattern.fullmatch(data)
        if match is None:
            raise GarbledReply(self.name, f"unexpected reply data {data!r}", data.encode())
        return self._number(match.group(1)), match.group(2)


def _counting_on(earlier: tuple[float, float, str], later: tuple[float, float, str]) -> bool:
    """Two DIS readings of a pump that is moving agree when the later one continues the
    earlier: same units, neither counter going back, and by little (a bit flip in a digit
    moves a counter far, or backwards)."""
    if earlier[2] != later[2]:
        return False
    steps = (later[0] - earlier[0], later[1] - earlier[1])
    return all(0 <= step <= 0.002 + 0.02 * earlier_value
               for step, earlier_value in zip(steps, earlier[:2], strict=True))
