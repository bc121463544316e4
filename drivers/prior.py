"""Driver for the Prior ProScan III controller: XY stage, Z focus, filter wheels, shutters.

From ../shared/reference/device_protocols.md §2.4. 9600 8N1; commands and replies end with
CR. At connect the driver puts the controller in standard mode (`COMP 0` -> `0`) and reads the
user-unit sizes (`RES,s`, `RES,z`); positions in its API are um.

    G,x,y / GR,x,y      absolute / relative XY move        -> R
    V,z / U,n / D,n     absolute Z / Z up / Z down          -> R
    P / PZ              position "x,y,z" / z (user units)
    PS,x,y / PZ,z       redefine the current position      -> 0
    $                   busy bitmask (bit 0 X, 1 Y, 2 Z, higher bits filter wheels)
    I / K               controlled stop / kill, flush queue -> R
    7,w,n / 7,w,F       move filter wheel w / its position -> R / n
    FPW w               positions on wheel w
    8,s,0|1 / 8,s       shutter s open (0) / closed (1)    -> R / state
    SMS[,n] / SMZ[,n]   XY / Z speed (%)                   -> value / 0
    = / ?               limit latch / identity lines up to END
    E,n                 error: 2 not idle, 4 parse, 5 unknown, 8..17 range, 18 queue full

Movement replies: the manual says `R` comes at the end of a move; Micro-Manager expects it at
once. The driver accepts both: after a movement command it waits `ack_timeout` for `R`; if
none comes the `R` is owed and is discarded later (input is flushed before every request, and
a lone `R` is skipped where a value is expected). Completion is always decided by polling `$`.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable
from typing import TypeVar

from drivers.errors import (
    CommandRejected,
    DeviceBusy,
    DeviceTimeout,
    GarbledReply,
    OutOfRange,
    StageFault,
)
from drivers.exchange import as_device, confirmed, in_range, retried, verified
from drivers.transport import SerialTransport

log = logging.getLogger(__name__)
T = TypeVar("T")
BAUDRATE = 9600
EOL = b"\r"
STAGE_BITS = 0b111
BUSY_BITS = 0b111111  # X, Y, Z and three filter wheels
MAX_STRAY_R = 8
MAX_UNITS = 10**9  # no ProScan travel is a billion user units: a longer number is garbled
_INTEGER = re.compile(r"-?\d{1,10}")
_DECIMAL = re.compile(r"\d{1,4}(\.\d{1,6})?")
_TEXT = re.compile(r"[ -~]*")


def error_for(device: str, code: int, command: str) -> CommandRejected:
    """The typed error for a ProScan `E,n` reply."""
    if code == 2:
        return DeviceBusy(device, f"not idle (E,2) for {command!r}")
    if code == 18:
        return DeviceBusy(device, f"movement queue full (E,18) for {command!r}")
    if code == 4:
        return CommandRejected(device, f"controller could not parse {command!r} (E,4)")
    if code == 5:
        return CommandRejected(device, f"unknown command {command!r} (E,5)")
    if 8 <= code <= 17:
        return OutOfRange(device, f"value out of range (E,{code}) in {command!r}")
    return CommandRejected(device, f"error E,{code} for {command!r}")


class ProScan:
    """A ProScan III behind one transport. Lengths in um.

    `name`: the device's name in errors (default: the port's). Queries and settings are sent
    again after a lost or garbled reply (`retries`) and a reading is taken once two replies
    agree; movement commands are sent once (a relative move repeated moves twice).
    """

    def __init__(
        self, transport: SerialTransport, *, name: str | None = None, timeout: float = 0.5,
        ack_timeout: float = 0.3, retries: int = 2,
    ) -> None:
        self.transport = transport
        self.name = name or transport.name
        self.timeout = timeout
        self.ack_timeout = ack_timeout
        self.retries = retries
        self.res_xy = 1.0
        self.res_z = 1.0

    # -- life cycle -------------------------------------------------------------------------
    def connect(self) -> None:
        """Open, select standard mode (COMP 0) and read the user-unit sizes."""
        with as_device(self.name):
            self.transport.open()
        self._expect_zero("COMP 0")
        self.res_xy = self._reading("RES,s", self._resolution)
        self.res_z = self._reading("RES,z", self._resolution)

    def close(self) -> None:
        """Close the port."""
        self.transport.close()

    def identify(self) -> list[str]:
        """The `?` information lines (up to END)."""
        def read() -> list[str]:
            lines = [self._request("?")]
            while lines[-1] != "END":
                lines.append(self._read_line())
                if len(lines) > 64:
                    raise GarbledReply(self.name, "no END after 64 lines of `?`")
            return lines[:-1]
        return self._retried(read)

    def version(self) -> str:
        """Firmware version."""
        return self._reading("VERSION", lambda text: text)

    # -- XY ---------------------------------------------------------------------------------
    def move_to(self, x_um: float, y_um: float) -> None:
        """Start an absolute XY move (returns once accepted; see wait_idle)."""
        self._move(f"G,{self._xy(x_um)},{self._xy(y_um)}", absolute=True)

    def move_by(self, dx_um: float, dy_um: float) -> None:
        """Start a relative XY move."""
        self._move(f"GR,{self._xy(dx_um)},{self._xy(dy_um)}")

    def position(self) -> tuple[float, float, float]:
        """(x, y, z) in um (two replies that agree)."""
        x, y, z = self._reading("P", lambda text: self._integers(text, 3, "P"))
        return x * self.res_xy, y * self.res_xy, z * self.res_z

    def set_position(self, x_um: float, y_um: float) -> None:
        """Call the current XY position (x, y) (PS), read back; E,2 -> DeviceBusy if moving."""
        x, y = self._xy(x_um), self._xy(y_um)
        verified(lambda: self._expect_zero(f"PS,{x},{y}"),
                 lambda: self._integers(self._query("P"), 3, "P")[:2],
                 lambda got: got == (x, y), name=self.name, what="PS")

    # -- Z ----------------------------------------------------------------------------------
    def focus_to(self, z_um: float) -> None:
        """Start an absolute Z move (V)."""
        self._move(f"V,{self._z(z_um)}", absolute=True)

    def focus_by(self, dz_um: float) -> None:
        """Start a relative Z move (U up for dz > 0, D down for dz < 0)."""
        units = self._z(abs(dz_um))
        if units:
            self._move(f"{'U' if dz_um > 0 else 'D'},{units}")

    def z(self) -> float:
        """Z in um (PZ)."""
        return self._reading("PZ", lambda text: self._integers(text, 1, "PZ"))[0] * self.res_z

    def set_z(self, z_um: float) -> None:
        """Call the current Z position z (PZ,z), read back."""
        z = self._z(z_um)
        verified(lambda: self._expect_zero(f"PZ,{z}"),
                 lambda: self._integers(self._query("PZ"), 1, "PZ")[0],
                 lambda got: got == z, name=self.name, what="PZ")

    # -- state ------------------------------------------------------------------------------
    def busy(self) -> int:
        """The `$` bitmask: bit 0 X, bit 1 Y, bit 2 Z, higher bits filter wheels."""
        return self._reading("$", lambda text: self._bounded(text, "$", 0, BUSY_BITS))

    def wait_idle(self, timeout_s: float = 30.0, mask: int = -1, interval: float = 0.02) -> None:
        """Poll `$` until the masked bits clear; StageFault if still moving after timeout_s."""
        deadline = time.monotonic() + timeout_s
        while True:
            state = self.busy() & mask
            if not state:
                return
            if time.monotonic() > deadline:
                raise StageFault(self.name, f"still moving after {timeout_s:g} s ($ = {state})")
            time.sleep(interval)

    def stop(self) -> None:
        """Controlled stop (I): decelerate and flush the queue (sent again if unanswered)."""
        self._retried(lambda: self._expect_r("I"))

    def kill(self) -> None:
        """Immediate stop (K): flush the queue (sent again if unanswered)."""
        self._retried(lambda: self._expect_r("K"))

    def limit_latch(self) -> int:
        """The limit switches hit since the last read (`=`, cleared by reading: sent once)."""
        with self.transport.lock:
            return self._bounded(self._query("=", retry=False), "=", 0, 255)

    def compatibility_mode(self) -> int:
        """COMP: 0 (standard mode, set at connect) or 1 (compatibility mode: the controller
        was reset since, and its origin with it)."""
        return self._reading("COMP", lambda text: self._bounded(text, "COMP", 0, 1))

    def speed(self) -> int:
        """XY speed, % of maximum (SMS)."""
        return self._reading("SMS", lambda text: self._bounded(text, "SMS", 1, 100))

    def set_speed(self, percent: int) -> None:
        """XY speed, 1..100 % of maximum, read back."""
        if isinstance(percent, bool) or not isinstance(percent, int) or not 1 <= percent <= 100:
            raise OutOfRange(self.name, f"speed {percent!r} % outside 1..100")
        verified(lambda: self._expect_zero(f"SMS,{percent}"),
                 lambda: self._bounded(self._query("SMS"), "SMS", 1, 100),
                 lambda got: got == percent, name=self.name, what="SMS")

    # -- filter wheels and shutters --------------------------------------------------------
    def filter_position(self, wheel: int) -> int:
        """Position of filter wheel `wheel` (1..3)."""
        command = f"7,{self._wheel(wheel)},F"
        return self._reading(command, lambda text: self._bounded(text, command, 1, 20))

    def move_filter(self, wheel: int, position: int) -> None:
        """Start turning filter wheel `wheel` to `position` (poll busy / wait_idle)."""
        self._move(f"7,{self._wheel(wheel)},{int(position)}", absolute=True)

    def filter_count(self, wheel: int) -> int:
        """Number of positions on a wheel (0: no wheel fitted)."""
        command = f"FPW {self._wheel(wheel)}"
        return self._reading(command, lambda text: self._bounded(text, command, 0, 20))

    def set_shutter(self, shutter: int, is_open: bool) -> None:
        """Open (0) or close (1) a shutter, read back."""
        state = 0 if is_open else 1
        command = f"8,{int(shutter)}"
        verified(lambda: self._retried(lambda: self._expect_r(f"{command},{state}")),
                 lambda: self._bounded(self._query(command), command, 0, 1),
                 lambda got: got == state, name=self.name, what=f"shutter {shutter}")

    def shutter_open(self, shutter: int) -> bool:
        """True if the shutter is open (state 0)."""
        command = f"8,{int(shutter)}"
        return self._reading(command, lambda text: self._bounded(text, command, 0, 1)) == 0

    # -- wire helpers -----------------------------------------------------------------------
    def _xy(self, um: float) -> int:
        return self._units(um, self.res_xy)

    def _z(self, um: float) -> int:
        return self._units(um, self.res_z)

    def _units(self, um: float, resolution: float) -> int:
        try:
            units = round(um / resolution)
        except (ValueError, OverflowError, TypeError):
            raise OutOfRange(self.name, f"position {um!r} um is not a number") from None
        if abs(units) > MAX_UNITS:
            raise OutOfRange(self.name, f"position {um!r} um is beyond any stage's travel")
        return units

    def _wheel(self, wheel: int) -> int:
        if isinstance(wheel, bool) or not isinstance(wheel, int) or not 1 <= wheel <= 3:
            raise OutOfRange(self.name, f"filter wheel {wheel!r}; the ProScan has 1..3")
        return wheel

    def _reading(self, command: str, parse: Callable[[str], T]) -> T:
        """A query's parsed reply, taken once two replies in a row agree (no checksum)."""
        return confirmed(lambda: parse(self._query(command)), name=self.name, what=command)

    def _resolution(self, text: str) -> float:
        if not _DECIMAL.fullmatch(text):
            raise GarbledReply(self.name, f"RES reply {text!r}", text.encode())
        return in_range(self.name, "resolution (um)", float(text), 0.001, 100.0)

    def _bounded(self, text: str, command: str, low: int, high: int) -> int:
        value = self._integers(text, 1, command)[0]
        return int(in_range(self.name, f"{command} reply", value, low, high))

    def _integers(self, text: str, count: int, command: str) -> tuple[int, ...]:
        parts = text.split(",")
        if len(parts) != count or not all(_INTEGER.fullmatch(p) for p in parts):
            raise GarbledReply(self.name, f"expected {count} whole number(s) from {command}, "
                               f"got {text!r}", text.encode())
        return tuple(int(p) for p in parts)

    def _retried(self, exchange: Callable[[], T]) -> T:
        """`exchange()` again after a lost or garbled reply, `retries` times."""
        return retried(self.transport, exchange, self.retries + 1, name=self.name,
                       what="exchange", log=log)

    def _read_line(self, timeout: float | None = None) -> str:
        with as_device(self.name):
            raw = self.transport.read_frame(EOL, self.timeout if timeout is None else timeout)
        line = raw.decode("latin-1").strip()
        if not _TEXT.fullmatch(line):
            raise GarbledReply(self.name, f"not a line of text: {raw!r}", raw)
        return line

    def _request(self, command: str, timeout: float | None = None) -> str:
        with self.transport.lock, as_device(self.name):
            self.transport.flush_input()
            self.transport.write(command.encode("ascii") + b"\r")
            return self._read_line(timeout)

    def _query(self, command: str, retry: bool = True) -> str:
        """A property reply (retried unless `retry` is False): stray `R`s of earlier moves
        skipped; E,n -> typed error."""
        def exchange() -> str:
            line = self._request(command)
            for _ in range(MAX_STRAY_R):
                if line not in ("R", ""):
                    break
                line = self._read_line()
            self._raise_if_error(line, command)
            return line
        return self._retried(exchange) if retry else exchange()

    def _expect_zero(self, command: str) -> None:
        line = self._query(command)
        if line != "0":
            raise GarbledReply(self.name, f"expected 0 to {command!r}, got {line!r}")

    def _expect_r(self, command: str) -> None:
        line = self._request(command)
        self._raise_if_error(line, command)
        if line != "R":
            raise GarbledReply(self.name, f"expected R to {command!r}, got {line!r}")

    def _move(self, command: str, absolute: bool = False) -> None:
        """Send a movement command; `R` now, `R` later, or E,n. A garbled answer to an
        absolute move sends it again (same target); to a relative one it is an error."""
        for attempt in range(self.retries + 1 if absolute else 1):
            try:
                line = self._request(command, self.ack_timeout)
            except DeviceTimeout:
                return  # R at the end of the move: owed, flushed or skipped later
            self._raise_if_error(line, command)
            if line == "R":
                return
            log.debug("%s: %r answered %r (attempt %d)", self.name, command, line, attempt + 1)
        raise GarbledReply(self.name, f"expected R to {command!r}, got {line!r}")

    def _raise_if_error(self, line: str, command: str) -> None:
        if line.startswith("E,") or line.startswith("E "):
            code = line[2:].strip()
            if not code.isdigit() or len(code) > 3:
                raise GarbledReply(self.name, f"bad error reply {line!r} to {command!r}")
            raise error_for(self.name, int(code), command)
