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

import time

from drivers.errors import (
    CommandRejected,
    DeviceBusy,
    DeviceTimeout,
    GarbledReply,
    OutOfRange,
    StageFault,
)
from drivers.transport import SerialTransport

BAUDRATE = 9600
EOL = b"\r"
STAGE_BITS = 0b111
MAX_STRAY_R = 8


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
    """A ProScan III behind one transport. Lengths in um."""

    def __init__(
        self, transport: SerialTransport, *, timeout: float = 0.5, ack_timeout: float = 0.3
    ) -> None:
        self.transport = transport
        self.name = transport.name
        self.timeout = timeout
        self.ack_timeout = ack_timeout
        self.res_xy = 1.0
        self.res_z = 1.0

    # -- life cycle -------------------------------------------------------------------------
    def connect(self) -> None:
        """Open, select standard mode (COMP 0) and read the user-unit sizes."""
        self.transport.open()
        self._expect_zero("COMP 0")
        self.res_xy = self._positive(self._query("RES,s"), "RES,s")
        self.res_z = self._positive(self._query("RES,z"), "RES,z")

    def close(self) -> None:
        """Close the port."""
        self.transport.close()

    def identify(self) -> list[str]:
        """The `?` information lines (up to END)."""
        with self.transport.lock:
            lines = [self._request("?")]
            while lines[-1] != "END":
                lines.append(self._read_line())
                if len(lines) > 64:
                    raise GarbledReply(self.name, "no END after 64 lines of `?`")
        return lines[:-1]

    def version(self) -> str:
        """Firmware version."""
        return self._query("VERSION")

    # -- XY ---------------------------------------------------------------------------------
    def move_to(self, x_um: float, y_um: float) -> None:
        """Start an absolute XY move (returns once accepted; see wait_idle)."""
        self._move(f"G,{self._units(x_um, self.res_xy)},{self._units(y_um, self.res_xy)}")

    def move_by(self, dx_um: float, dy_um: float) -> None:
        """Start a relative XY move."""
        self._move(f"GR,{self._units(dx_um, self.res_xy)},{self._units(dy_um, self.res_xy)}")

    def position(self) -> tuple[float, float, float]:
        """(x, y, z) in um."""
        fields = self._numbers(self._query("P"), 3, "P")
        return fields[0] * self.res_xy, fields[1] * self.res_xy, fields[2] * self.res_z

    def set_position(self, x_um: float, y_um: float) -> None:
        """Call the current XY position (x, y) (PS); E,2 -> DeviceBusy while moving."""
        self._expect_zero(f"PS,{self._units(x_um, self.res_xy)},{self._units(y_um, self.res_xy)}")

    # -- Z ----------------------------------------------------------------------------------
    def focus_to(self, z_um: float) -> None:
        """Start an absolute Z move (V)."""
        self._move(f"V,{self._units(z_um, self.res_z)}")

    def focus_by(self, dz_um: float) -> None:
        """Start a relative Z move (U up for dz > 0, D down for dz < 0)."""
        units = self._units(abs(dz_um), self.res_z)
        if units:
            self._move(f"{'U' if dz_um > 0 else 'D'},{units}")

    def z(self) -> float:
        """Z in um (PZ)."""
        return self._numbers(self._query("PZ"), 1, "PZ")[0] * self.res_z

    def set_z(self, z_um: float) -> None:
        """Call the current Z position z (PZ,z)."""
        self._expect_zero(f"PZ,{self._units(z_um, self.res_z)}")

    # -- state ------------------------------------------------------------------------------
    def busy(self) -> int:
        """The `$` bitmask: bit 0 X, bit 1 Y, bit 2 Z, higher bits filter wheels."""
        return int(self._numbers(self._query("$"), 1, "$")[0])

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
        """Controlled stop (I): decelerate and flush the queue."""
        self._expect_r("I")

    def kill(self) -> None:
        """Immediate stop (K): flush the queue."""
        self._expect_r("K")

    def limit_latch(self) -> int:
        """The limit switches hit since the last read (`=`, cleared by reading)."""
        return int(self._numbers(self._query("="), 1, "=")[0])

    def speed(self) -> int:
        """XY speed, % of maximum (SMS)."""
        return int(self._numbers(self._query("SMS"), 1, "SMS")[0])

    def set_speed(self, percent: int) -> None:
        """XY speed, 1..100 % of maximum."""
        if not 1 <= percent <= 100:
            raise OutOfRange(self.name, f"speed {percent} % outside 1..100")
        self._expect_zero(f"SMS,{int(percent)}")

    # -- filter wheels and shutters --------------------------------------------------------
    def filter_position(self, wheel: int) -> int:
        """Position of filter wheel `wheel` (1..3)."""
        return int(self._numbers(self._query(f"7,{int(wheel)},F"), 1, "7,w,F")[0])

    def move_filter(self, wheel: int, position: int) -> None:
        """Start turning filter wheel `wheel` to `position` (poll busy / wait_idle)."""
        self._move(f"7,{int(wheel)},{int(position)}")

    def filter_count(self, wheel: int) -> int:
        """Number of positions on a wheel (0: no wheel fitted)."""
        return int(self._numbers(self._query(f"FPW {int(wheel)}"), 1, "FPW")[0])

    def set_shutter(self, shutter: int, is_open: bool) -> None:
        """Open (0) or close (1) a shutter."""
        self._expect_r(f"8,{int(shutter)},{0 if is_open else 1}")

    def shutter_open(self, shutter: int) -> bool:
        """True if the shutter is open (state 0)."""
        return self._numbers(self._query(f"8,{int(shutter)}"), 1, "8,s")[0] == 0

    # -- wire helpers -----------------------------------------------------------------------
    @staticmethod
    def _units(um: float, resolution: float) -> int:
        return int(round(um / resolution))

    def _positive(self, text: str, command: str) -> float:
        value = self._numbers(text, 1, command)[0]
        if value <= 0:
            raise GarbledReply(self.name, f"{command} gave {value}", text.encode())
        return value

    def _numbers(self, text: str, count: int, command: str) -> list[float]:
        parts = text.split(",")
        try:
            values = [float(p) for p in parts]
        except ValueError as exc:
            raise GarbledReply(self.name, f"non-numeric reply {text!r} to {command}") from exc
        if len(values) != count:
            raise GarbledReply(self.name, f"{len(values)} fields in {text!r} to {command}")
        return values

    def _read_line(self, timeout: float | None = None) -> str:
        raw = self.transport.read_frame(EOL, self.timeout if timeout is None else timeout)
        return raw.decode("ascii", "replace").strip()

    def _request(self, command: str, timeout: float | None = None) -> str:
        with self.transport.lock:
            self.transport.flush_input()
            self.transport.write(command.encode("ascii") + b"\r")
            return self._read_line(timeout)

    def _query(self, command: str) -> str:
        """A property reply: skip stray `R`s of earlier moves; E,n -> typed error."""
        with self.transport.lock:
            line = self._request(command)
            for _ in range(MAX_STRAY_R):
                if line not in ("R", ""):
                    break
                line = self._read_line()
            self._raise_if_error(line, command)
            return line

    def _expect_zero(self, command: str) -> None:
        line = self._query(command)
        if line != "0":
            raise GarbledReply(self.name, f"expected 0 to {command!r}, got {line!r}")

    def _expect_r(self, command: str) -> None:
        line = self._request(command)
        self._raise_if_error(line, command)
        if line != "R":
            raise GarbledReply(self.name, f"expected R to {command!r}, got {line!r}")

    def _move(self, command: str) -> None:
        """Send a movement command; `R` now, `R` later, or E,n."""
        try:
            line = self._request(command, self.ack_timeout)
        except DeviceTimeout:
            return  # R at the end of the move: owed, flushed or skipped later
        self._raise_if_error(line, command)
        if line != "R":
            raise GarbledReply(self.name, f"expected R to {command!r}, got {line!r}")

    def _raise_if_error(self, line: str, command: str) -> None:
        if line.startswith("E,") or line.startswith("E "):
            code = line[2:].strip()
            if not code.isdigit():
                raise GarbledReply(self.name, f"bad error reply {line!r} to {command!r}")
            raise error_for(self.name, int(code), command)
