"""Driver for CoolLED pE-300 / pE-4000 LED illuminators (text protocol, USB CDC 57600 8N1).

From ../shared/reference/device_protocols.md §2.1. The host ends commands with CR; the unit
answers lines ending CRLF and greets on connect ("CoolLED precisExcite, Hello, ..."); the
greeting, or one sent again after a power cycle, is skipped wherever it turns up.

    CSS?                    state: CSS + <ch><S|X><N|F><nnn> per channel
    CSS<groups>             set the state of any channels; answers the new CSS line
    C<ch>S / C<ch>X         select / deselect a channel
    C<ch>I<n>               intensity 0..100 %
    CSN / CSF               every selected channel on / off
    XMODEL                  "XMODEL <model>"
    XVER                    4 (pE-300) or 5 (pE-4000) version lines
    LAMS                    "LAM:<ch>:<nm>" per channel (pE-4000)

A channel emits only if it is selected and on.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from drivers.errors import CommandRejected, GarbledReply, OutOfRange
from drivers.transport import SerialTransport

BAUDRATE = 57600
EOL = b"\n"
_CSS = re.compile(r"^CSS((?:[A-H][SX][NF]\d{3})+)$")
_GROUP = re.compile(r"([A-H])([SX])([NF])(\d{3})")
MAX_SKIPPED_LINES = 4


@dataclass(frozen=True)
class ChannelState:
    """One channel as CSS? reports it."""

    selected: bool
    on: bool
    intensity: int

    @property
    def emitting(self) -> bool:
        """Light comes out only when selected and on (and intensity > 0)."""
        return self.selected and self.on and self.intensity > 0


def parse_css(line: str) -> dict[str, ChannelState]:
    """Parse a CSS state line ("CSSASN050BXF000...") into channel -> state."""
    match = _CSS.match(line.strip())
    if match is None:
        raise ValueError(f"not a CSS state line: {line!r}")
    return {
        ch: ChannelState(sel == "S", on == "N", int(level))
        for ch, sel, on, level in _GROUP.findall(match.group(1))
    }


def format_css(state: dict[str, ChannelState]) -> str:
    """The CSS set command for the given channel states."""
    groups = (
        f"{ch}{'S' if s.selected else 'X'}{'N' if s.on else 'F'}{s.intensity:03d}"
        for ch, s in sorted(state.items())
    )
    return "CSS" + "".join(groups)


def _is_greeting(line: str) -> bool:
    return "coolled" in line.lower() or "hello" in line.lower()


class CoolLed:
    """A CoolLED pE-300 / pE-4000 behind one transport."""

    def __init__(self, transport: SerialTransport, *, timeout: float = 0.5) -> None:
        self.transport = transport
        self.name = transport.name
        self.timeout = timeout
        self.model = ""
        self.channels: tuple[str, ...] = ()

    # -- life cycle -------------------------------------------------------------------------
    def connect(self) -> str:
        """Open the port, identify the unit and learn its channels; returns the model."""
        self.transport.open()
        self.model = self.identify()
        self.channels = tuple(self.state())
        return self.model

    def close(self) -> None:
        """Close the port."""
        self.transport.close()

    # -- queries ----------------------------------------------------------------------------
    def identify(self) -> str:
        """The model from XMODEL (e.g. "pE-300")."""
        line = self._request("XMODEL", prefix="XMODEL")
        model = line[len("XMODEL") :].strip()
        if not model:
            raise GarbledReply(self.name, f"empty model in {line!r}", line.encode())
        return model

    def versions(self) -> list[str]:
        """XVER: 4 lines on a pE-300, 5 on a pE-4000."""
        count = 5 if "4000" in (self.model or self.identify()) else 4
        with self.transport.lock:
            first = self._request("XVER", prefix="XVER")
            return [first] + [self._read_line(prefix="XVER") for _ in range(count - 1)]

    def wavelengths(self) -> dict[str, int]:
        """LAMS (pE-4000): channel -> loaded LED wavelength (nm)."""
        with self.transport.lock:
            lines = [self._request("LAMS", prefix="LAM:")]
            lines += [self._read_line(prefix="LAM:") for _ in range(len(self.channels) - 1)]
        out = {}
        for line in lines:
            parts = line.split(":")
            if len(parts) != 3 or not parts[2].strip().isdigit():
                raise GarbledReply(self.name, f"bad LAMS line {line!r}", line.encode())
            out[parts[1]] = int(parts[2])
        return out

    def state(self) -> dict[str, ChannelState]:
        """CSS?: every channel's selected / on / intensity."""
        return self._css_reply(self._request("CSS?", prefix="CSS"))

    # -- commands ---------------------------------------------------------------------------
    def set_state(self, state: dict[str, ChannelState]) -> dict[str, ChannelState]:
        """Set channels in one CSS command; returns (and checks) the state the unit reports."""
        for ch, s in state.items():
            self._check_channel(ch)
            self._check_intensity(s.intensity)
        reported = self._css_reply(self._request(format_css(state), prefix="CSS"))
        for ch, wanted in state.items():
            got = reported.get(ch)
            on_wanted = wanted.on and wanted.selected
            if got is None or (got.selected, got.intensity) != (wanted.selected, wanted.intensity):
                raise GarbledReply(self.name, f"channel {ch} reports {got}, wanted {wanted}")
            if got.on != on_wanted:
                raise GarbledReply(self.name, f"channel {ch} reports {got}, wanted {wanted}")
        return reported

    def select(self, channel: str) -> None:
        """C<ch>S: select a channel."""
        self._check_channel(channel)
        self._request(f"C{channel}S")

    def deselect(self, channel: str) -> None:
        """C<ch>X: deselect a channel."""
        self._check_channel(channel)
        self._request(f"C{channel}X")

    def set_intensity(self, channel: str, percent: int) -> None:
        """C<ch>I<n>: intensity in percent (0..100)."""
        self._check_channel(channel)
        self._check_intensity(percent)
        self._request(f"C{channel}I{int(percent)}")

    def on(self) -> None:
        """CSN: every selected channel on."""
        self._request("CSN")

    def off(self) -> None:
        """CSF: every selected channel off."""
        self._request("CSF")

    # -- helpers ----------------------------------------------------------------------------
    def _check_channel(self, channel: str) -> None:
        if self.channels and channel not in self.channels:
            raise OutOfRange(self.name, f"no channel {channel!r}; channels {self.channels}")
        if len(channel) != 1 or not "A" <= channel <= "H":
            raise OutOfRange(self.name, f"bad channel {channel!r}")

    def _check_intensity(self, percent: float) -> None:
        if not 0 <= percent <= 100 or int(percent) != percent:
            raise OutOfRange(self.name, f"intensity {percent} not an integer in 0..100 %")

    def _css_reply(self, line: str) -> dict[str, ChannelState]:
        try:
            return parse_css(line)
        except ValueError as exc:
            raise GarbledReply(self.name, str(exc), line.encode()) from exc

    def _request(self, command: str, prefix: str = "") -> str:
        with self.transport.lock:
            self.transport.flush_input()
            self.transport.write(command.encode("ascii") + b"\r")
            return self._read_line(prefix)

    def _read_line(self, prefix: str = "") -> str:
        """The next reply line, skipping greetings; it must start with `prefix`."""
        for _ in range(MAX_SKIPPED_LINES):
            raw = self.transport.read_frame(EOL, self.timeout)
            line = raw.decode("ascii", "replace").strip()
            if not line or _is_greeting(line):
                continue
            if line.startswith("?") or line.lower().startswith("error"):
                raise CommandRejected(self.name, f"refused: {line!r}")
            if not line.startswith(prefix):
                raise GarbledReply(self.name, f"expected {prefix!r}..., got {line!r}", raw)
            return line
        raise GarbledReply(self.name, "only greetings and blank lines in reply")
