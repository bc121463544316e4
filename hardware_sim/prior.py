"""Emulator of a Prior ProScan III: XY stage, Z focus, filter wheels and shutters.

Written from ../shared/reference/device_protocols.md §2.4. Commands and replies end with CR;
arguments are separated by commas, spaces, tabs, semicolons or colons (empty fields are
skipped, so `G,,100,200` works). Positions are in user units (`RES,s` um per XY unit, `RES,z`
um per Z unit). Movement commands queue (up to 100; more -> E,18) and run one after another
at the set speed on the virtual clock; the `$` bitmask shows what moves (bit 0 X, 1 Y, 2 Z,
bits 3-5 filter wheels 1-3).

Replies: property commands answer at once (a value, or `0` for a setting); movement commands
answer `R` - at the end of the move (`r_at_end=True`, the manual) or at once (`False`, what
Micro-Manager assumes). `I`/`K` stop and flush the queue and answer `R` (plus the stopped
move's own `R` when it was due at its end). Errors: `E,2` not idle, `E,4` parse, `E,5`
unknown command, `E,8` value out of range, `E,18` queue full.

Device faults (`inject`): `lockup` (no replies until `power_cycle`), `stall` (the next XY move
stops half way, no error: the position falls short), `power_cycle` (positions zeroed,
compatibility mode back on, lock-up cleared), `clear`.
"""

from __future__ import annotations

import re
from collections import deque
from typing import Any

from hardware_sim.lines import LineBuffer, LineEmulator
from hardware_sim.prior_commands import QUEUE_LIMIT, Move, ProScanCommands, ProScanState

_SEP = re.compile(r"[,\s;:]+")
WHEEL_SECONDS_PER_STEP = 0.08


class PriorEmulator(LineEmulator, ProScanCommands):
    """A ProScan III registered as `world.devices[name]`."""

    def __init__(
        self,
        world: Any,
        name: str = "stage",
        *,
        r_at_end: bool = True,
        max_speed_xy_um_s: float = 5000.0,
        max_speed_z_um_s: float = 500.0,
        travel_um: tuple[float, float, float, float] = (-60000.0, -40000.0, 60000.0, 40000.0),
        z_range_um: tuple[float, float] = (-5000.0, 10000.0),
        wheel_positions: dict[int, int] | None = None,
    ) -> None:
        self.world = world
        self.name = name
        self.r_at_end = r_at_end
        self.max_speed_xy = max_speed_xy_um_s
        self.max_speed_z = max_speed_z_um_s
        self.travel = travel_um
        self.z_range = z_range_um
        self.wheel_positions = dict(wheel_positions or {1: 10})
        self.state = ProScanState()
        self.queue: deque[Move] = deque()
        self.locked_up = False
        self.stall_next = False
        self._lines = LineBuffer()
        self._due_r = 0
        world.devices[name] = self

    # -- emulator face (LineEmulator) -------------------------------------------------------
    def _answer(self, lines: list[str]) -> bytes:
        """Handle command lines (replies end with CR); an `R` for each move that ended."""
        out = self._due()
        for line in lines:
            reply = self._command(line.strip())
            out += self._flush_r()
            if reply is not None:
                out += b"".join(r.encode("ascii") + b"\r" for r in reply)
        return out

    def _due(self) -> bytes:
        """Run the motion queue to the clock; an `R` for each move that ended (R-at-end)."""
        self._run(self.world.now())
        return self._flush_r()

    def inject(self, fault: str) -> None:
        """Device faults: lockup, stall, power_cycle, clear."""
        if fault == "lockup":
            self.locked_up = True
        elif fault == "stall":
            self.stall_next = True
        elif fault == "power_cycle":
            self.state = ProScanState()
            self.queue.clear()
            self.locked_up = self.stall_next = False
            self._due_r = 0
        elif fault == "clear":
            self.locked_up = self.stall_next = False
        else:
            raise ValueError(f"unknown ProScan fault {fault!r}")

    # -- the stage as the camera sees it -------------------------------------------------
    def xyz_um(self) -> tuple[float, float, float]:
        """Current position in um (mid-move positions interpolated)."""
        self._run(self.world.now())
        return self._position_now(self.world.now())

    def busy_mask(self) -> int:
        """The `$` bitmask now."""
        self._run(self.world.now())
        if not self.queue:
            return 0
        move = self.queue[0]
        if move.kind == "xy":
            moving_x = move.target[0] != move.origin[0]
            moving_y = move.target[1] != move.origin[1]
            return (1 if moving_x else 0) | (2 if moving_y else 0) or 1
        if move.kind == "z":
            return 4
        return 8 << (move.wheel - 1)

    # -- motion -----------------------------------------------------------------------------
    def _duration(self, move: Move) -> float:
        s = self.state
        if move.kind == "xy":
            dist = max(abs(move.target[0] - s.x), abs(move.target[1] - s.y))
            return dist / (self.max_speed_xy * s.speed_xy_pct / 100)
        if move.kind == "z":
            return abs(move.target[0] - s.z) / (self.max_speed_z * s.speed_z_pct / 100)
        if move.kind == "wheel":
            return WHEEL_SECONDS_PER_STEP * max(1, abs(int(move.target[0]) - s.wheels[move.wheel]))
        return 0.0

    def _begin(self, move: Move, when: float) -> None:
        move.start = when
        move.origin = (self.state.x, self.state.y) if move.kind == "xy" else (self.state.z,)
        move.end = when + self._duration(move)
        if move.kind == "xy" and self.stall_next:
            self.stall_next = False
            move.target = tuple((o + t) / 2 for o, t in zip(move.origin, move.target, strict=True))

    def _finish(self, move: Move) -> None:
        s = self.state
        if move.kind == "xy":
            s.x, s.y = move.target
        elif move.kind == "z":
            s.z = move.target[0]
        elif move.kind == "wheel":
            s.wheels[move.wheel] = int(move.target[0])
        if self.r_at_end and move.owes_r:
            self._due_r += 1

    def _run(self, now: float) -> None:
        while self.queue:
            move = self.queue[0]
            if move.start is None:
                self._begin(move, now)
            assert move.end is not None
            if move.end > now:
                return
            self.queue.popleft()
            self._finish(move)
            if self.queue:
                self._begin(self.queue[0], move.end)

    def _position_now(self, now: float) -> tuple[float, float, float]:
        s = self.state
        x, y, z = s.x, s.y, s.z
        if self.queue and self.queue[0].start is not None:
            move = self.queue[0]
            assert move.end is not None and move.start is not None
            span = move.end - move.start
            f = 1.0 if span <= 0 else min(1.0, (now - move.start) / span)
            if move.kind == "xy":
                x = move.origin[0] + f * (move.target[0] - move.origin[0])
                y = move.origin[1] + f * (move.target[1] - move.origin[1])
            elif move.kind == "z":
                z = move.origin[0] + f * (move.target[0] - move.origin[0])
        return x, y, z

    def _enqueue(self, move: Move) -> list[str] | None:
        if len(self.queue) >= QUEUE_LIMIT:
            return ["E,18"]
        move.owes_r = self.r_at_end
        self.queue.append(move)
        self._run(self.world.now())
        return None if self.r_at_end else ["R"]

    def _flush_r(self) -> bytes:
        count, self._due_r = self._due_r, 0
        return b"R\r" * count

    def _stop(self) -> list[str]:
        if self.queue and self.queue[0].start is not None:
            x, y, z = self._position_now(self.world.now())
            self.state.x, self.state.y, self.state.z = x, y, z
            if self.queue[0].owes_r:
                self._due_r += 1  # the stopped move's own R comes too
        self.queue.clear()
        return ["R"]

    def _command(self, line: str) -> list[str] | None:
        words = [w for w in _SEP.split(line.upper()) if w]
        if not words:
            return None
        return self.dispatch(words[0], words[1:])
