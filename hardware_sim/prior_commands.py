"""The ProScan III command set of the emulator (hardware_sim/prior.py): parsing and replies."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

QUEUE_LIMIT = 100
SPEED_COMMANDS = ("SMS", "SAS", "SCS", "SMZ", "SAZ", "SCZ")


@dataclass
class Move:
    """One queued movement: what moves where, and when it runs."""

    kind: str  # "xy", "z", "wheel"
    target: tuple[float, ...]
    wheel: int = 0
    start: float | None = None
    end: float | None = None
    origin: tuple[float, ...] = ()
    owes_r: bool = True


@dataclass
class ProScanState:
    """What the controller holds (positions in um)."""

    x: float = 0.0
    y: float = 0.0
    z: float = 0.0
    res_xy: float = 1.0
    res_z: float = 0.1
    comp: int = 1
    speeds: dict[str, int] = field(default_factory=lambda: dict.fromkeys(SPEED_COMMANDS, 100))
    wheels: dict[int, int] = field(default_factory=lambda: {1: 1})
    shutters: dict[int, int] = field(default_factory=lambda: {1: 1, 2: 1, 3: 1})
    limit_latch: int = 0

    @property
    def speed_xy_pct(self) -> int:
        return self.speeds["SMS"]

    @property
    def speed_z_pct(self) -> int:
        return self.speeds["SMZ"]


class BadArgs(Exception):
    """A reply of E,4 (parse) or E,8 (out of range)."""

    def __init__(self, code: int) -> None:
        super().__init__(code)
        self.code = code


def _num(text: str) -> float:
    try:
        return float(text)
    except ValueError as exc:
        raise BadArgs(4) from exc


def _int(text: str) -> int:
    value = _num(text)
    if value != int(value):
        raise BadArgs(4)
    return int(value)


class ProScanCommands:
    """Mixin of PriorEmulator: one method per command family."""

    state: ProScanState
    queue: Any
    world: Any
    travel: tuple[float, float, float, float]
    z_range: tuple[float, float]
    wheel_positions: dict[int, int]
    _current_verb: str = ""

    def _enqueue(self, move: Move) -> list[str] | None: ...  # provided by PriorEmulator

    def _stop(self) -> list[str]:  # provided by PriorEmulator
        raise NotImplementedError

    def _position_now(self, now: float) -> tuple[float, float, float]:  # by PriorEmulator
        raise NotImplementedError

    def busy_mask(self) -> int:  # provided by PriorEmulator
        raise NotImplementedError

    def dispatch(self, verb: str, args: list[str]) -> list[str] | None:
        """Reply lines for one command (None = no reply)."""
        handler = {
            "?": self._cmd_info,
            "VERSION": lambda a: ["100"],
            "SERIAL": lambda a: ["12345"],
            "DATE": lambda a: ["Prior Scientific Instruments ProScan III", "Version 1.00"],
            "COMP": self._cmd_comp,
            "G": self._cmd_go,
            "GR": self._cmd_go_relative,
            "P": self._cmd_position,
            "PS": self._cmd_position,
            "PX": self._cmd_position,
            "PY": self._cmd_position,
            "PZ": self._cmd_position,
            "$": lambda a: [str(self.busy_mask())],
            "I": lambda a: self._stop(),
            "K": lambda a: self._stop(),
            "U": self._cmd_focus,
            "D": self._cmd_focus,
            "V": self._cmd_focus,
            "RES": self._cmd_resolution,
            "SIS": lambda a: self._enqueue(Move("xy", (0.0, 0.0))),
            "7": self._cmd_wheel,
            "FPW": self._cmd_wheel_count,
            "FILTER": self._cmd_filter_names,
            "8": self._cmd_shutter,
            "=": self._cmd_latch,
            "LMT": lambda a: [f"{self._active_limits():02X}"],
        }.get(verb)
        if handler is None and verb in SPEED_COMMANDS:
            handler = lambda a: self._cmd_speed(verb, a)  # noqa: E731
        if handler is None:
            return ["E,5"]
        self._current_verb = verb
        try:
            return handler(args)
        except BadArgs as exc:
            return [f"E,{exc.code}"]

    # -- identity and modes -------------------------------------------------------------
    def _cmd_info(self, args: list[str]) -> list[str]:
        wheels = [f"FILTER_{w} = {n} POSITIONS" for w, n in sorted(self.wheel_positions.items())]
        return ["PROSCAN INFORMATION", "STAGE = H117", "FOCUS = NORMAL", *wheels, "END"]

    def _cmd_comp(self, args: list[str]) -> list[str]:
        if not args:
            return [str(self.state.comp)]
        value = _int(args[0])
        if value not in (0, 1):
            raise BadArgs(8)
        self.state.comp = value
        return ["0"]

    # -- XY ---------------------------------------------------------------------------------
    def _commanded(self) -> tuple[float, float, float]:
        """Where the queue leaves the stage (um)."""
        x, y, z = self.state.x, self.state.y, self.state.z
        for move in self.queue:
            if move.kind == "xy":
                x, y = move.target
            elif move.kind == "z":
                z = move.target[0]
        return x, y, z

    def _clip_xy(self, x: float, y: float) -> tuple[float, float]:
        x0, y0, x1, y1 = self.travel
        cx, cy = min(max(x, x0), x1), min(max(y, y0), y1)
        bits = (x > x1) | (x < x0) << 1 | (y > y1) << 2 | (y < y0) << 3
        self.state.limit_latch |= bits
        return cx, cy

    def _cmd_go(self, args: list[str]) -> list[str] | None:
        if len(args) != 2:
            raise BadArgs(4)
        r = self.state.res_xy
        x, y = self._clip_xy(_num(args[0]) * r, _num(args[1]) * r)
        return self._enqueue(Move("xy", (x, y)))

    def _cmd_go_relative(self, args: list[str]) -> list[str] | None:
        if len(args) != 2:
            raise BadArgs(4)
        x, y, _ = self._commanded()
        r = self.state.res_xy
        target = self._clip_xy(x + _num(args[0]) * r, y + _num(args[1]) * r)
        return self._enqueue(Move("xy", target))

    def _cmd_position(self, args: list[str]) -> list[str]:
        x, y, z = self._position_now(self.world.now())
        rx, rz = self.state.res_xy, self.state.res_z
        ux, uy, uz = round(x / rx), round(y / rx), round(z / rz)
        verb = self._current_verb
        if not args:
            values = {"P": [ux, uy, uz], "PS": [ux, uy], "PX": [ux], "PY": [uy], "PZ": [uz]}
            return [",".join(str(v) for v in values[verb])]
        if verb == "P":
            raise BadArgs(4)
        if self.queue:
            return ["E,2"]
        numbers = [_num(a) for a in args]
        if verb == "PS" and len(numbers) == 2:
            self.state.x, self.state.y = numbers[0] * rx, numbers[1] * rx
        elif verb in ("PX", "PY", "PZ") and len(numbers) == 1:
            scale = rz if verb == "PZ" else rx
            setattr(self.state, verb[1].lower(), numbers[0] * scale)
        else:
            raise BadArgs(4)
        return ["0"]

    # -- Z ----------------------------------------------------------------------------------
    def _cmd_focus(self, args: list[str]) -> list[str] | None:
        verb = self._current_verb
        if len(args) != 1:
            raise BadArgs(4)
        value = _num(args[0]) * self.state.res_z
        _, _, z = self._commanded()
        target = {"U": z + value, "D": z - value, "V": value}[verb]
        lo, hi = self.z_range
        if not lo <= target <= hi:
            self.state.limit_latch |= 16 if target > hi else 32
            target = min(max(target, lo), hi)
        return self._enqueue(Move("z", (target,)))

    def _cmd_resolution(self, args: list[str]) -> list[str]:
        if not args or args[0] not in ("S", "Z"):
            raise BadArgs(4)
        attr = "res_xy" if args[0] == "S" else "res_z"
        if len(args) == 1:
            return [f"{getattr(self.state, attr):g}"]
        value = _num(args[1])
        if not 0.001 <= value <= 100:
            raise BadArgs(8)
        setattr(self.state, attr, value)
        return ["0"]

    def _cmd_speed(self, verb: str, args: list[str]) -> list[str]:
        if not args:
            return [str(self.state.speeds[verb])]
        value = _int(args[0])
        if not 1 <= value <= 100:
            raise BadArgs(8)
        self.state.speeds[verb] = value
        return ["0"]

    # -- filter wheels, shutters, limits ----------------------------------------------------
    def _wheel(self, text: str) -> int:
        wheel = _int(text)
        if wheel not in (1, 2, 3):
            raise BadArgs(8)
        return wheel

    def _cmd_wheel(self, args: list[str]) -> list[str] | None:
        if len(args) != 2:
            raise BadArgs(4)
        wheel = self._wheel(args[0])
        count = self.wheel_positions.get(wheel, 0)
        if count == 0:
            raise BadArgs(8)
        if args[1] == "F":
            return [str(self.state.wheels.setdefault(wheel, 1))]
        position = _int(args[1])
        if not 1 <= position <= count:
            raise BadArgs(8)
        self.state.wheels.setdefault(wheel, 1)
        return self._enqueue(Move("wheel", (float(position),), wheel=wheel))

    def _cmd_wheel_count(self, args: list[str]) -> list[str]:
        if len(args) != 1:
            raise BadArgs(4)
        return [str(self.wheel_positions.get(self._wheel(args[0]), 0))]

    def _cmd_filter_names(self, args: list[str]) -> list[str]:
        if len(args) != 1:
            raise BadArgs(4)
        wheel = self._wheel(args[0])
        count = self.wheel_positions.get(wheel, 0)
        if count == 0:
            return [f"FILTER_{wheel} = NONE", "END"]
        return [f"FILTER_{wheel} = POSITION {n}" for n in range(1, count + 1)] + ["END"]

    def _cmd_shutter(self, args: list[str]) -> list[str]:
        if not 1 <= len(args) <= 2:
            raise BadArgs(4)
        shutter = _int(args[0])
        if shutter not in self.state.shutters:
            raise BadArgs(8)
        if len(args) == 1:
            return [str(self.state.shutters[shutter])]
        value = _int(args[1])
        if value not in (0, 1):
            raise BadArgs(8)
        self.state.shutters[shutter] = value
        return ["R"]

    def _cmd_latch(self, args: list[str]) -> list[str]:
        latch, self.state.limit_latch = self.state.limit_latch, 0
        return [str(latch)]

    def _active_limits(self) -> int:
        x0, y0, x1, y1 = self.travel
        s = self.state
        return (s.x >= x1) | (s.x <= x0) << 1 | (s.y >= y1) << 2 | (s.y <= y0) << 3
