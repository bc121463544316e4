"""Emulator of a VICI Valco universal electric actuator turning a Cheminert multiposition
selector valve: its serial interface, and a rotor that steps from port to port on the virtual
clock.

Written from the VICI "Universal Electric Actuator" user manual, Optional Serial Interface,
pp. 14-19 (azmanual.top/manuals/595651, pages 14 to 19), and the micro-electric actuator manuals
for the link and the ID prefix (azmanual.top/manuals/595646 p. 5). Where the manual is silent,
what a client that drove real actuators recorded (cambiegroup/flowchem, devices/vicivalco) is
marked [flowchem], and what is chosen here is marked [chosen].

Commands end with CR (LF is ignored); a reply is one line ending CR, led by the ID when one is
set [flowchem]. Case is ignored [chosen].

    AM / AMn        mode: 1 two position with stops, 2 without stops, 3 multiposition -> AMn
    NP / NPnn       positions; set (even, 2-40) in modes 2 and 3                     -> NPnn
    SO / SOnn       number of the first position (1..96-NP+1; factory 1)             -> SOnn
    CP              current position (the last one the rotor passed while moving)  -> CPnn
                    (CPA / CPB in the two-position modes)
    GOnn / GO       to position nn in the SM direction / to the next position
    CWnn / CCnn     towards higher / lower numbers [chosen] to nn; bare: one position
    HM              to the first position (ignored when there)
    SM / SMl        F forward, R reverse, A shortest route (a tie goes forward) [chosen] -> SMl
    CNT / CNTn      positions moved (mode 3 counts every position passed)            -> CNTn
    IFM / IFMn      reply to moves: 0 none; 1, 2 the CP line once the move ends [chosen] -> IFMn
    LG / LGn        1: replies carry " = " between the name and the value           -> LGn
    ID / IDc / ID*  device ID (0-9, A-Z) / clear; with an ID only `c<command>` and the
                    broadcast `*<command>` are obeyed                                -> IDc / ID*
    VR / VR2        main board: build date, build time, firmware name [flowchem] / serial board
    HM, SM in modes 1 and 2, TO, TT, DT, LRN in mode 3: `E2 <command> Invalid` [flowchem]

Moves to a position outside SO..SO+NP-1 are ignored [manual]; so are move commands while the
rotor turns and commands the manual does not list [chosen]. Settings reply nothing [manual:
the examples show replies only for queries]. Factory defaults: IFM1 [chosen], LG0, SMA
[chosen], SO 1; the mode and the number of positions are the bench's (a lab sets AM3 and NP for
its valve head).

The rotor advances one position every `step_s` simulated seconds (modelled, not a figure from
the manual). Device faults (`inject`): `stall` (the next move stops half way: a jammed rotor),
`lockup` (no replies until `power_cycle`), `power_cycle` (the move stops; settings and the
rotor's position are kept), `clear`. Link faults act through `faults` on the endpoint.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from hardware_sim.faults import FaultInjector
from hardware_sim.lines import LineBuffer, LineEmulator

STEP_S = 0.15  # simulated seconds per position (modelled)
FIRMWARE = ("Dec 15 2011", "15:02:20", "UA_MAIN_CT")  # the lines a real actuator gave [flowchem]
SERIAL_FIRMWARE = "UA_SERIAL"
TWO_POSITION_ONLY = ("TO", "TT", "DT", "LRN")
COMMANDS = ("CNT", "IFM", "LRN", "AM", "NP", "SO", "CP", "GO", "CW", "CC", "HM", "SM", "LG",
            "ID", "VR", "TO", "TT", "DT")  # longest first: a value may start with a letter


@dataclass
class Move:
    """One rotation: from `origin`, `steps` positions in `sense` (+1 up, -1 down)."""

    start: float
    origin: int
    steps: int
    sense: int
    planned: int

    def end(self, step_s: float) -> float:
        """When the rotor stops."""
        return self.start + self.steps * step_s


class ViciValveEmulator(LineEmulator):
    """A universal actuator on a selector valve, registered as `world.devices[name]`."""

    def __init__(self, world: Any, name: str = "valve", *, positions: int = 10, mode: int = 3,
                 first: int = 1, position: int | None = None, step_s: float = STEP_S) -> None:
        if positions < 2 or positions % 2 or positions > 40:
            raise ValueError("a VICI multiposition valve has an even number of positions, 2-40")
        self.world = world
        self.name = name
        self.mode = mode
        self.positions = positions
        self.first = first
        self.rotor = first if position is None else position
        self.step_s = step_s
        self.direction, self.reply_mode, self.long_replies = "A", 1, False
        self.device_id: str | None = None
        self.cycles = 0
        self.move: Move | None = None
        self.stall_next = self.locked_up = False
        self.faults = FaultInjector()
        self._lines = LineBuffer()
        self._unsolicited = b""
        world.devices[name] = self

    # -- the Emulator face (LineEmulator) -------------------------------------------------
    def _answer(self, lines: list[str]) -> bytes:
        """Command lines in, reply lines out (after any announcement that fell due)."""
        self._advance()
        out = b""
        for line in lines:
            for reply in self._obey(line.strip().upper()):
                out += self._line(reply)
        return self._take_unsolicited() + out

    def _due(self) -> bytes:
        """The end of a move, announced when IFM is 1 or 2."""
        self._advance()
        return self._take_unsolicited()

    def inject(self, fault: str) -> None:
        """Device faults: stall, lockup, power_cycle, clear."""
        self._advance()
        if fault == "stall":
            self.stall_next = True
        elif fault == "lockup":
            self.locked_up = True
        elif fault == "power_cycle":
            self.move, self.locked_up, self.stall_next = None, False, False
            self._lines.clear()
        elif fault == "clear":
            self.locked_up = self.stall_next = False
        else:
            raise ValueError(f"unknown VICI actuator fault {fault!r}; "
                             "known: stall, lockup, power_cycle, clear")

    # -- the valve as the fluidics see it -----------------------------------------------------
    def selected_port(self) -> int | None:
        """The port the common outlet connects to, None while the rotor is between ports."""
        self._advance()
        return None if self.move is not None else self.rotor

    def snapshot(self) -> dict[str, Any]:
        """State for the control channel."""
        self._advance()
        target = self.move.planned if self.move is not None else None
        return {"position": self.rotor, "moving": self.move is not None, "target": target,
                "mode": self.mode,
                "positions": self.positions, "first": self.first, "cycles": self.cycles}

    # -- motion -----------------------------------------------------------------------------
    def _advance(self) -> None:
        """Bring the rotor up to the clock."""
        move = self.move
        if move is None:
            return
        now = self.world.now()
        done = min(move.steps, int((now - move.start) / self.step_s + 1e-9))
        self.rotor = self._offset(move.origin, move.sense * done)
        if now >= move.end(self.step_s) - 1e-9:
            self.cycles += move.steps
            self.move = None
            if self.reply_mode:
                self._unsolicited += self._line(self._position_reply())

    def _offset(self, position: int, steps: int) -> int:
        return self.first + (position - self.first + steps) % self.positions

    def _steps(self, target: int, sense: int) -> int:
        return ((target - self.rotor) * sense) % self.positions

    def _start(self, target: int, sense: int | None = None) -> None:
        """Rotate to `target`: in `sense`, or as SM says. Ignored while turning or out of range."""
        if self.move is not None or not self.first <= target < self.first + self.positions:
            return
        if sense is None:
            up, down = self._steps(target, +1), self._steps(target, -1)
            sense = {"F": +1, "R": -1}.get(self.direction, +1 if up <= down else -1)
        steps = self._steps(target, sense)
        if steps == 0:
            return
        if self.stall_next:
            self.stall_next, steps = False, steps // 2
        self.move = Move(self.world.now(), self.rotor, steps, sense, target)

    # -- commands ---------------------------------------------------------------------------
    def _obey(self, line: str) -> list[str]:
        if self.device_id is not None:
            if not line or line[0] not in (self.device_id, "*"):
                return []
            line = line[1:]
        elif line.startswith("*"):
            line = line[1:]
        command = next((name for name in COMMANDS if line.startswith(name)), "")
        value = line[len(command):]
        if (command in TWO_POSITION_ONLY and self.mode == 3
                or command in ("HM", "SM") and self.mode != 3):
            return [f"E2 {command} Invalid"]
        handler = self._handlers().get(command)
        return handler(value) if handler is not None else []  # unlisted commands: ignored

    def _handlers(self) -> dict[str, Callable[[str], list[str]]]:
        return {
            "AM": self._am, "NP": self._np, "SO": self._so, "CP": self._cp, "GO": self._go,
            "CW": lambda v: self._turn(v, +1), "CC": lambda v: self._turn(v, -1),
            "HM": self._hm, "SM": self._sm, "CNT": self._cnt,
            "IFM": self._ifm, "LG": self._lg, "ID": self._id, "VR": self._vr,
        }

    def _reply(self, key: str, value: object) -> str:
        return f"{key} = {value}" if self.long_replies else f"{key}{value}"

    def _line(self, text: str) -> bytes:
        return ((self.device_id or "") + text).encode("ascii") + b"\r"

    def _take_unsolicited(self) -> bytes:
        out, self._unsolicited = self._unsolicited, b""
        return out

    def _position_reply(self) -> str:
        if self.mode == 3:
            return self._reply("CP", f"{self.rotor:02d}")
        return self._reply("CP", "A" if (self.rotor - self.first) % 2 == 0 else "B")

    def _setting(self, value: str, apply: Callable[[int], None], valid: Callable[[int], bool],
                 query: str) -> list[str]:
        if not value:
            return [query]
        if value.isdigit() and valid(int(value)):
            apply(int(value))
        return []

    def _am(self, value: str) -> list[str]:
        return self._setting(value, lambda n: setattr(self, "mode", n), lambda n: n in (1, 2, 3),
                             self._reply("AM", self.mode))

    def _np(self, value: str) -> list[str]:
        if value and self.mode == 1:
            return ["E2 NP Invalid"]
        return self._setting(value, self._set_positions,
                             lambda n: 2 <= n <= 40 and n % 2 == 0 and self.first + n - 1 <= 96,
                             self._reply("NP", f"{self.positions:02d}"))

    def _set_positions(self, count: int) -> None:
        self.positions = count
        self.rotor = min(self.rotor, self.first + count - 1)

    def _so(self, value: str) -> list[str]:
        def apply(first: int) -> None:
            self.rotor += first - self.first
            self.first = first

        return self._setting(value, apply, lambda n: 1 <= n <= 97 - self.positions,
                             self._reply("SO", f"{self.first:02d}"))

    def _cp(self, value: str) -> list[str]:
        return [] if value else [self._position_reply()]

    def _go(self, value: str) -> list[str]:
        if self.mode == 3:
            if not value:
                self._start(self._offset(self.rotor, 1), +1)
            elif value.isdigit():
                self._start(int(value))
        return []

    def _turn(self, value: str, sense: int) -> list[str]:
        if self.mode == 3:
            if not value:
                self._start(self._offset(self.rotor, sense), sense)
            elif value.isdigit():
                self._start(int(value), sense)
        return []

    def _hm(self, value: str) -> list[str]:
        if not value:
            self._start(self.first)
        return []

    def _sm(self, value: str) -> list[str]:
        if not value:
            return [self._reply("SM", self.direction)]
        if value in ("A", "F", "R"):
            self.direction = value
        return []

    def _cnt(self, value: str) -> list[str]:
        return self._setting(value, lambda n: setattr(self, "cycles", n), lambda n: n <= 65535,
                             self._reply("CNT", self.cycles))

    def _ifm(self, value: str) -> list[str]:
        return self._setting(value, lambda n: setattr(self, "reply_mode", n),
                             lambda n: n in (0, 1, 2), self._reply("IFM", self.reply_mode))

    def _lg(self, value: str) -> list[str]:
        return self._setting(value, lambda n: setattr(self, "long_replies", n == 1),
                             lambda n: n in (0, 1), self._reply("LG", int(self.long_replies)))

    def _id(self, value: str) -> list[str]:
        if not value:
            return [self._reply("ID", self.device_id or "*")]
        if value == "*":
            self.device_id = None
        elif re.fullmatch(r"[0-9A-Z]", value):
            self.device_id = value
        return []

    def _vr(self, value: str) -> list[str]:
        return [SERIAL_FIRMWARE] if value == "2" else list(FIRMWARE)


def add_to_bench(world: Any, serve: Callable[[str, Any], str], name: str = "valve", *,
                 positions: int = 10, step_s: float = STEP_S) -> dict[str, Any]:
    """Add an emulated selector valve to a simulated bench and return its bench-file entry.

    Builds the actuator (registered as `world.devices[name]`, AM3, NP `positions`), serves it
    with `serve(key, emulator) -> url` (SimBench._serve: a TCP port or a pseudo-terminal whose
    link faults are the emulator's `faults`) and describes it for the controller.
    """
    valve = ViciValveEmulator(world, name, positions=positions, step_s=step_s)
    url = serve(name, valve)
    return {"driver": "vici", "url": url, "positions": positions, "move_timeout": "10 s"}
