"""Emulator of a CoolLED pE-300 (channels A-C) / pE-4000 (A-D) LED illuminator.

Written from ../shared/reference/device_protocols.md §2.1. Commands end with CR, LF or CRLF;
replies are lines ending CRLF. On connect the unit greets:
`CoolLED precisExcite, Hello, pleased to meet you`.

    CSS?                 -> CSS<ch><S|X><N|F><nnn>...   (S selected / X not; N on / F off)
    CSS<ch><S|X><N|F><nnn>...  set any channels -> the new CSS line
    C<ch>I<n>            intensity 0-100 % (values above 100 clamp) -> the new CSS line
    C<ch>S / C<ch>X      select / deselect                          -> the new CSS line
    CSN / CSF            every selected channel on / off            -> the new CSS line
    C<ch>?               -> C<ch><nnn>
    XMODEL               -> XMODEL <model>
    XVER                 -> 4 lines (pE-300) or 5 lines (pE-4000)
    LAMS                 -> LAM:<ch>:<nm> per channel
    PORT:P=ON|OFF        -> the same text
    anything else        -> ?<the command>   (the manual does not say; chosen here)

A channel emits only when selected and on; turning on an unselected channel leaves it off.
A channel selected but off waits for its TTL trigger input (§2.1): on this bench the camera's
exposure output drives it, so an armed channel lights the sample during exposures only
(hardware-timed shutter; `armed()`, read by the camera). Its CSS state stays what was set.

Light dose: whatever emits continuously is integrated on the virtual clock, from one state
change to the next (`settle`, called before every command and on every poll), and handed to
the world (`world.illuminate`), which bleaches the field under the objective. The dose is then
power x simulated on-time, whatever the speed factor or the machine's load.
Device faults (`inject`): `reset` (state back to power-on, greeting sent again), `clear`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from hardware_sim.lines import LineBuffer

GREETING = b"CoolLED precisExcite, Hello, pleased to meet you\r\n"
MODELS = {
    "pE-300": {"A": 470.0, "B": 550.0, "C": 635.0},
    "pE-4000": {"A": 470.0, "B": 550.0, "C": 635.0, "D": 740.0},
}
_CSS_GROUP = re.compile(r"([A-D])([SX])([NF])(\d{3})")


@dataclass
class Channel:
    """One LED channel's state."""

    wavelength_nm: float
    selected: bool = False
    on: bool = False
    intensity: int = 0

    def css(self, letter: str) -> str:
        """This channel's 6-character CSS group."""
        return (
            f"{letter}{'S' if self.selected else 'X'}{'N' if self.on else 'F'}{self.intensity:03d}"
        )


class CoolLedEmulator:
    """A pE-300 / pE-4000 registered as `world.devices[name]`."""

    def __init__(
        self,
        world: Any,
        name: str = "led",
        model: str = "pE-300",
        wavelengths: dict[str, float] | None = None,
    ) -> None:
        if model not in MODELS:
            raise ValueError(f"unknown CoolLED model {model!r}; known: {', '.join(MODELS)}")
        self.world = world
        self.name = name
        self.model = model
        self.wavelengths = dict(wavelengths or MODELS[model])
        self.channels: dict[str, Channel] = {}
        self._lines = LineBuffer()
        self._unsolicited = b""
        self._settled_at = world.now()
        self._power_on()
        world.devices[name] = self

    def _power_on(self) -> None:
        self.channels = {ch: Channel(nm) for ch, nm in self.wavelengths.items()}

    # -- emulator face ----------------------------------------------------------------------
    def connected(self) -> bytes:
        """The greeting a host sees when it opens the port."""
        self._lines.clear()
        return GREETING

    def receive(self, data: bytes) -> bytes:
        """Handle command lines (the light so far dosed before anything changes)."""
        out = b""
        for line in self._lines.feed(data):
            self.settle()
            reply = self._command(line.strip())
            out += b"".join(r.encode("ascii") + b"\r\n" for r in reply)
        return out

    def poll(self) -> bytes:
        """Dose the light emitted so far; unsolicited output (a greeting after a reset)."""
        self.settle()
        out, self._unsolicited = self._unsolicited, b""
        return out

    def inject(self, fault: str) -> None:
        """`reset`: back to power-on state and greet again; `clear`: nothing to clear."""
        if fault == "reset":
            self.settle()
            self._power_on()
            self._unsolicited += GREETING
        elif fault != "clear":
            raise ValueError(f"unknown CoolLED fault {fault!r}; known: reset, clear")

    # -- the light as the camera sees it --------------------------------------------------
    def emission(self) -> list[tuple[str, float, float]]:
        """(channel, wavelength nm, power %) of every channel emitting now."""
        return [
            (ch, c.wavelength_nm, float(c.intensity))
            for ch, c in self.channels.items()
            if c.selected and c.on and c.intensity > 0
        ]

    def armed(self) -> list[tuple[str, float, float]]:
        """(channel, wavelength nm, power %) of every channel waiting for its TTL trigger
        (selected, off): these light the sample while the camera exposes."""
        return [
            (ch, c.wavelength_nm, float(c.intensity))
            for ch, c in self.channels.items()
            if c.selected and not c.on and c.intensity > 0
        ]

    def settle(self) -> None:
        """Hand the continuous light since the last settle to the world, as simulated
        seconds at each emitting channel's power."""
        now = self.world.now()
        seconds, self._settled_at = now - self._settled_at, now
        lights = [(nm, power / 100.0) for _, nm, power in self.emission()]
        illuminate = getattr(self.world, "illuminate", None)
        if seconds > 0 and lights and callable(illuminate):
            illuminate(lights, seconds)

    # -- commands ---------------------------------------------------------------------------
    def css(self) -> str:
        """The CSS state line."""
        return "CSS" + "".join(c.css(ch) for ch, c in self.channels.items())

    def _command(self, line: str) -> list[str]:
        upper = line.upper()
        if upper == "CSS?":
            return [self.css()]
        if upper.startswith("CSS"):
            return self._set_css(upper[3:], line)
        if upper in ("CSN", "CSF"):
            for c in self.channels.values():
                c.on = upper == "CSN" and c.selected
            return [self.css()]
        if upper == "XMODEL":
            return [f"XMODEL {self.model}"]
        if upper == "XVER":
            return self._versions()
        if upper == "LAMS":
            return [f"LAM:{ch}:{nm:g}" for ch, nm in self.wavelengths.items()]
        if upper in ("PORT:P=ON", "PORT:P=OFF"):
            return [upper]
        return self._channel_command(upper, line)

    def _channel_command(self, upper: str, line: str) -> list[str]:
        match = re.fullmatch(r"C([A-D])(S|X|\?|I(\d{1,3}))", upper)
        if match is None or match.group(1) not in self.channels:
            return [f"?{line}"]
        channel = self.channels[match.group(1)]
        action = match.group(2)
        if action == "?":
            return [f"C{match.group(1)}{channel.intensity:03d}"]
        if action == "S":
            channel.selected = True
        elif action == "X":
            channel.selected = False
            channel.on = False
        else:
            channel.intensity = min(100, int(match.group(3)))
        return [self.css()]

    def _set_css(self, payload: str, line: str) -> list[str]:
        groups = [payload[i : i + 6] for i in range(0, len(payload), 6)]
        parsed = [_CSS_GROUP.fullmatch(g) for g in groups]
        if not groups or any(p is None or p.group(1) not in self.channels for p in parsed):
            return [f"?{line}"]
        for match in parsed:
            assert match is not None
            letter, sel, on, level = match.groups()
            channel = self.channels[letter]
            channel.selected = sel == "S"
            channel.on = on == "N" and channel.selected
            channel.intensity = min(100, int(level))
        return [self.css()]

    def _versions(self) -> list[str]:
        lines = [
            "XVER MAINBOARD=1.4.2",
            "XVER HARDWARE=3",
            "XVER DATA=2.0",
            "XVER POD=1.1",
        ]
        if self.model == "pE-4000":
            lines.append("XVER BACKEND=1.0.7")
        return lines
