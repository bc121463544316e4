"""New Era NE-1000 family syringe pumps (also WPI Aladdin), RS-232 Basic and Safe modes.

Reference: device_protocols.md section 1.1. Commands go out as `<addr><CMD><args>\\r` (Basic)
or `STX len <addr><CMD><args> crc16 ETX` (Safe); replies are `STX <addr 2> <status> [data]
ETX` (Basic) or the same data in a Safe packet. Several pumps share one port (one
SerialTransport) by address. Alarms and command errors raise drivers.errors exceptions.
"""

from __future__ import annotations

import binascii
import logging
import re
import threading
import time
from dataclasses import dataclass

from drivers.errors import (
    CommandRejected,
    CommunicationTimeoutAlarm,
    DeviceAlarm,
    DeviceBusy,
    DeviceTimeout,
    GarbledReply,
    OutOfRange,
    ProgramAlarm,
    PumpReset,
    PumpStalled,
)
from drivers.exchange import AddressedDevice
from drivers.transport import SerialTransport

log = logging.getLogger(__name__)

STX, ETX = 0x02, 0x03
RATE_UNITS = {"UM": 1.0, "MM": 1000.0, "UH": 1.0 / 60.0, "MH": 1000.0 / 60.0}  # -> uL/min
VOLUME_UNITS = {"UL": 1.0, "ML": 1000.0}  # -> uL
STATUSES = {
    "I": "infusing",
    "W": "withdrawing",
    "S": "stopped",
    "P": "paused",
    "T": "timed pause",
    "U": "user wait",
    "X": "purging",
}
RUNNING = frozenset("IWX")
PROBE_TIMEOUT_S = 0.25
ALARMS: dict[str, tuple[type[DeviceAlarm], str]] = {
    "R": (PumpReset, "pump was reset (power interrupted)"),
    "S": (PumpStalled, "motor stalled"),
    "T": (CommunicationTimeoutAlarm, "safe-mode communications timeout"),
    "E": (ProgramAlarm, "pumping program error"),
    "O": (ProgramAlarm, "pumping program phase out of range"),
}
ERRORS: dict[str, tuple[type[CommandRejected], str]] = {
    "": (CommandRejected, "command not recognized"),
    "NA": (DeviceBusy, "command not currently applicable"),
    "OOR": (OutOfRange, "data out of range"),
    "COM": (CommandRejected, "invalid communications packet"),
    "IGN": (DeviceBusy, "command ignored (simultaneous new phase start)"),
}
_REPLY = re.compile(rb"\x02(\d\d)(A\?[RSTEO]|[IWSPTUX])([ -~]*)\x03")
_FLOAT = r"(\d+\.\d*|\.\d+)"
_RATE = re.compile(_FLOAT + r"(UM|MM|UH|MH)")
_VOLUME = re.compile(_FLOAT + r"(UL|ML)")
_DISPENSED = re.compile("I" + _FLOAT + "W" + _FLOAT + r"(UL|ML)")
_VERSION = re.compile(r"NE(\d+)(X\d+)?V(\d+)\.(\d+)")


def format_number(value: float) -> str:
    """A number as the pump reads it: <= 4 digits, <= 3 decimals, always a point ("1500.")."""
    if value < 0 or value >= 9999.5:
        raise ValueError(f"{value} does not fit the pump's number format (0 to 9999)")
    whole_digits = len(str(int(round(value))))
    decimals = min(3, 4 - whole_digits)
    text = f"{value:.{decimals}f}"
    if len(text.replace(".", "")) > 4:  # rounding added a digit (9.9996 -> 10.000)
        text = f"{value:.{decimals - 1}f}"
    return text if "." in text else text + "."


def safe_packet(data: bytes) -> bytes:
    """A Safe-mode packet: STX, length (data + 4), data, CRC-16/XMODEM big-endian, ETX."""
    crc = binascii.crc_hqx(data, 0).to_bytes(2, "big")
    return bytes([STX, len(data) + 4]) + data + crc + bytes([ETX])


def _is_basic(frame: bytes) -> bool:
    """After STX a Basic reply has an address digit, a Safe one its length (< 0x30)."""
    return frame[1:2].isdigit()


def frame_end(buffer: bytes) -> int | None:
    """End of the first reply in `buffer`, Basic (`STX ... ETX`) or Safe (by its length).

    Bytes before the STX (the tail of a late reply) are left in the frame and skipped by the
    decoder. A pump answers in the framing of the mode it is in after the command, so a
    command that changes the mode, or meets an alarm instead, may be answered either way.
    """
    start = buffer.find(bytes([STX]))
    if start < 0 or len(buffer) < start + 2:
        return None
    if _is_basic(buffer[start:]):
        end = buffer.find(bytes([ETX]), start)
        return end + 1 if end >= 0 else None
    end = start + 1 + buffer[start + 1]
    return end if len(buffer) >= end else None


@dataclass(frozen=True)
class Reply:
    """A parsed reply: status character (or `A?x` alarm) and data."""

    address: int
    status: str
    data: str

    @property
    def running(self) -> bool:
        """The pump is moving (infusing, withdrawing or purging)."""
        return self.status in RUNNING


class NewEraPump(AddressedDevice):
    """One NE-1000 pump at `address` on a (possibly shared) SerialTransport."""

    family = "New Era"

    def _setup(self) -> None:
        self.safe_timeout_s = 0
        self.reset_seen = False
        self._pending_alarm: DeviceAlarm | None = None
        self._heartbeat: threading.Thread | None = None
        self._beat = threading.Event()
        self._closing = threading.Event()

    # -- link -----------------------------------------------------------------------------------
    def _encode(self, body: str, safe: bool) -> bytes:
        data = f"{self.address}{body}".encode("ascii")
        return safe_packet(data) if safe else data + b"\r"

    def _decode(self, raw: bytes) -> Reply:
        packet = raw[raw.find(bytes([STX])) :]
        if not _is_basic(packet):
            data, crc = packet[2:-3], packet[-3:-1]
            if packet[-1:] != bytes([ETX]) or binascii.crc_hqx(data, 0).to_bytes(2, "big") != crc:
                raise GarbledReply(self.name, "Safe-mode reply with a bad CRC or frame", raw)
            raw = bytes([STX]) + data + bytes([ETX])
        start = raw.rfind(bytes([STX]))
        match = _REPLY.fullmatch(raw[start:]) if start >= 0 else None
        if match is None:
            raise GarbledReply(self.name, f"reply does not follow the grammar: {raw!r}", raw)
        address = int(match.group(1))
        if address != self.address:
            message = f"reply from address {address}, expected {self.address}"
            raise GarbledReply(self.name, message, raw)
        return Reply(address, match.group(2).decode(), match.group(3).decode())

    def exchange(
        self,
        body: str,
        *,
        safe: bool | None = None,
        retries: int | None = None,
        timeout: float | None = None,
    ) -> Reply:
        """Send one command and read its reply; retry on a lost or garbled reply. No checks."""
        safe = self.safe_timeout_s > 0 if safe is None else safe
        reply = self._request(self._encode(body, safe), frame_end, timeout or self.timeout,
                              self._decode, retries, body)
        self._beat.set()
        return reply

    def command(
        self,
        body: str,
        *,
        safe: bool | None = None,
        retries: int | None = None,
        timeout: float | None = None,
    ) -> Reply:
        """Send a command (options as for exchange); raise the alarm or command error its
        reply carries."""
        if self._pending_alarm is not None:
            alarm, self._pending_alarm = self._pending_alarm, None
            raise alarm
        reply = self.exchange(body, safe=safe, retries=retries, timeout=timeout)
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
        self._stop_heartbeat()

    # -- commands -------------------------------------------------------------------------------
    def status(self) -> Reply:
        """Status query (empty command)."""
        return self.command("")

    def version(self) -> str:
        """Model and firmware, e.g. `NE1000V3.928`."""
        data = self.command("VER").data
        if not _VERSION.fullmatch(data):
            raise GarbledReply(self.name, f"VER reply {data!r}", data.encode())
        return data

    def diameter(self) -> float:
        """Syringe inner diameter, mm."""
        return self._number(self.command("DIA").data)

    def set_diameter(self, mm: float) -> None:
        """Set the syringe inner diameter (mm); also sets the volume units (UL if <= 14 mm)."""
        self.command("DIA" + self._format(mm))

    def rate(self) -> tuple[float, str]:
        """Pumping rate and its units."""
        return self._with_units(_RATE, self.command("RAT").data)

    def set_rate(self, value: float, units: str = "UM") -> None:
        """Set the rate; `units` one of UM, MM, UH, MH."""
        if units not in RATE_UNITS:
            raise ValueError(f"rate units {units!r}; use one of {', '.join(RATE_UNITS)}")
        self.command("RAT" + self._format(value) + units)

    def volume(self) -> tuple[float, str]:
        """Volume to dispense (0 = until stopped) and its units."""
        return self._with_units(_VOLUME, self.command("VOL").data)

    def set_volume(self, value: float, units: str = "UL") -> None:
        """Set the volume units, then the volume to dispense (0 = pump until stopped)."""
        if units not in VOLUME_UNITS:
            raise ValueError(f"volume units {units!r}; use UL or ML")
        number = self._format(value)
        self.command("VOL" + units)
        self.command("VOL" + number)

    def direction(self) -> str:
        """`INF` or `WDR`."""
        data = self.command("DIR").data
        if data not in ("INF", "WDR"):
            raise GarbledReply(self.name, f"DIR reply {data!r}", data.encode())
        return data

    def set_direction(self, direction: str) -> None:
        """`INF` (infuse) or `WDR` (withdraw)."""
        if direction not in ("INF", "WDR"):
            raise ValueError("direction must be INF or WDR")
        self.command("DIR" + direction)

    def run(self) -> Reply:
        """Start pumping (or resume a paused run)."""
        return self.command("RUN")

    def stop(self) -> Reply:
        """Stop: STP pauses a running pump, a second STP stops it (status S)."""
        reply = self.command("STP")
        if reply.status == "P":
            reply = self.command("STP")
        return reply

    def dispensed(self) -> tuple[float, float, str]:
        """(infused, withdrawn, units) since they were last cleared."""
        data = self.command("DIS").data
        match = _DISPENSED.fullmatch(data)
        if match is None:
            raise GarbledReply(self.name, f"DIS reply {data!r}", data.encode())
        return float(match.group(1)), float(match.group(2)), match.group(3)

    def dispensed_ul(self) -> tuple[float, float]:
        """(infused, withdrawn) in uL."""
        infused, withdrawn, units = self.dispensed()
        return infused * VOLUME_UNITS[units], withdrawn * VOLUME_UNITS[units]

    def clear_dispensed(self) -> None:
        """Zero both dispensed-volume counters."""
        self.command("CLDINF")
        self.command("CLDWDR")

    # -- Safe mode ------------------------------------------------------------------------------
    def set_safe_mode(self, timeout_s: int, *, timeout: float | None = None) -> None:
        """`SAF<n>` (n s, 1-255; 0 = Basic mode), sent Safe-framed; heartbeat while in Safe mode."""
        if not 0 <= timeout_s <= 255:
            raise ValueError("safe-mode timeout must be 0-255 s")
        self.command(f"SAF{timeout_s}", safe=True, timeout=timeout)
        self.safe_timeout_s = timeout_s
        self._stop_heartbeat()
        if timeout_s:
            self._start_heartbeat()

    def _start_heartbeat(self) -> None:
        self._closing.clear()
        self._heartbeat = threading.Thread(
            target=self._beat_loop, name=f"{self.name}-heartbeat", daemon=True
        )
        self._heartbeat.start()

    def _stop_heartbeat(self) -> None:
        self._closing.set()
        thread, self._heartbeat = self._heartbeat, None
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout=5)

    def _beat_loop(self) -> None:
        while not self._closing.is_set():
            if self._beat.wait(self.safe_timeout_s / 2.0):
                self._beat.clear()  # other traffic already kept the pump's watchdog fed
                continue
            if self._closing.is_set():
                return
            if not self.transport.is_open:
                continue  # the link is gone; the caller sees that on its next command
            try:
                reply = self.exchange("")
                self.check(reply, "")
            except DeviceAlarm as alarm:  # acknowledged by this reply: keep it for the caller
                self._pending_alarm = alarm
            except Exception as exc:  # noqa: BLE001 - the next command will see the fault
                log.warning("%s: heartbeat failed: %s", self.name, exc)

    # -- helpers --------------------------------------------------------------------------------
    def _format(self, value: float) -> str:
        try:
            return format_number(value)
        except ValueError as exc:
            raise OutOfRange(self.name, str(exc)) from exc

    def _number(self, data: str) -> float:
        if not re.fullmatch(_FLOAT, data):
            raise GarbledReply(self.name, f"expected a number, got {data!r}", data.encode())
        return float(data)

    def _with_units(self, pattern: re.Pattern[str], data: str) -> tuple[float, str]:
        match = pattern.fullmatch(data)
        if match is None:
            raise GarbledReply(self.name, f"unexpected reply data {data!r}", data.encode())
        return float(match.group(1)), match.group(2)


def emergency_stop_all(transport: SerialTransport, settle_s: float = 0.1) -> None:
    """Broadcast `*STP` to every New Era pump on the port, in Basic and in Safe framing.

    Sent twice (STP pauses a running pump, the second STP stops it; a pending alarm swallows
    one). The pumps answer at once and their replies collide, so the replies are discarded.
    """
    with transport.lock:
        for _ in range(2):
            transport.flush_input()
            transport.write(b"*STP\r")
            transport.write(safe_packet(b"*STP"))
            time.sleep(settle_s)
        transport.flush_input()
