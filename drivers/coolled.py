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

import contextlib
import logging
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

from drivers.errors import (
    CommandRejected,
    DeviceError,
    DeviceTimeout,
    GarbledReply,
    OutOfRange,
)
from drivers.exchange import as_device, blind_off, confirmed, retried, verified
from drivers.transport import SerialTransport

log = logging.getLogger(__name__)
T = TypeVar("T")
BAUDRATE = 57600
EOL = b"\n"
_CSS = re.compile(r"^CSS((?:[A-H][SX][NF]\d{3})+)$")
_GROUP = re.compile(r"([A-H])([SX])([NF])(\d{3})")
MAX_SKIPPED_LINES = 4
OFF_TIMEOUT_S = 0.25  # all_off waits this long for each confirmation (3 tries: < 1 s)


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
    """Parse a CSS state line ("CSSASN050BXF000...") into channel -> state; ValueError for
    anything else (a repeated channel, an intensity above 100 %)."""
    match = _CSS.match(line.strip())
    if match is None:
        raise ValueError(f"not a CSS state line: {line!r}")
    groups = _GROUP.findall(match.group(1))
    letters = [ch for ch, *_ in groups]
    if len(set(letters)) != len(letters):
        raise ValueError(f"a channel appears twice in {line!r}")
    state = {ch: ChannelState(sel == "S", on == "N", int(level)) for ch, sel, on, level in groups}
    if any(s.intensity > 100 for s in state.values()):
        raise ValueError(f"an intensity above 100 % in {line!r}")
    return state


def format_css(state: dict[str, ChannelState]) -> str:
    """The CSS set command for the given channel states."""
    groups = (
        f"{ch}{'S' if s.selected else 'X'}{'N' if s.on else 'F'}{s.intensity:03d}"
        for ch, s in sorted(state.items())
    )
    return "CSS" + "".join(groups)


def _is_greeting(line: str) -> bool:
    return "coolled" in line.lower() or "hello" in line.lower()


def _dark(state: dict[str, ChannelState]) -> bool:
    return not any(s.selected and s.on for s in state.values())


class CoolLed:
    """A CoolLED pE-300 / pE-4000 behind one transport.

    `name`: the device's name in errors (default: the port's); `retries`: how many times a
    command is sent again after a lost or garbled reply (every CoolLED command sets or reads
    an absolute state, so repeating one is safe).
    """

    def __init__(self, transport: SerialTransport, *, name: str | None = None,
                 timeout: float = 0.5, retries: int = 2) -> None:
        self.transport = transport
        self.name = name or transport.name
        self.timeout = timeout
        self.retries = retries
        self.model = ""
        self.channels: tuple[str, ...] = ()

    # -- life cycle -------------------------------------------------------------------------
    def connect(self) -> str:
        """Open the port, identify the unit and learn its channels; returns the model."""
        with as_device(self.name):
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
        def read() -> str:
            line = self._request("XMODEL", prefix="XMODEL")
            model = line[len("XMODEL") :].strip()
            if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9 ._-]*", model):
                raise GarbledReply(self.name, f"no model in {line!r}", line.encode())
            return model
        return confirmed(read, name=self.name, what="XMODEL")

    def versions(self) -> list[str]:
        """XVER: 4 lines on a pE-300, 5 on a pE-4000."""
        count = 5 if "4000" in (self.model or self.identify()) else 4
        return self._retried(lambda: [self._request("XVER", prefix="XVER")]
                             + [self._read_line(prefix="XVER") for _ in range(count - 1)])

    def wavelengths(self) -> dict[str, int]:
        """LAMS (pE-4000): channel -> loaded LED wavelength (nm)."""
        def read() -> dict[str, int]:
            lines = [self._request("LAMS", prefix="LAM:")]
            lines += [self._read_line(prefix="LAM:") for _ in range(len(self.channels) - 1)]
            out = {}
            for line in lines:
                match = re.fullmatch(r"LAM:([A-H]):(\d{3,4})", line)
                if match is None or match.group(1) in out:
                    raise GarbledReply(self.name, f"bad LAMS line {line!r}", line.encode())
                out[match.group(1)] = int(match.group(2))
            return out
        return confirmed(lambda: self._retried(read), name=self.name, what="LAMS")

    def state(self) -> dict[str, ChannelState]:
        """CSS?: every channel's selected / on / intensity (two replies that agree)."""
        return confirmed(self._read_state, name=self.name, what="CSS?")

    def _read_state(self) -> dict[str, ChannelState]:
        return self._css_reply(self._request("CSS?", prefix="CSS"))

    # -- commands ---------------------------------------------------------------------------
    def set_state(self, state: dict[str, ChannelState]) -> dict[str, ChannelState]:
        """Set channels in one CSS command; the state it answers must be the one wanted, else
        the command is sent again (SetpointMismatch after three tries). Returns that state."""
        for ch, s in state.items():
            self._check_channel(ch)
            self._check_intensity(s.intensity)
        command = format_css(state)
        return verified(lambda: None, lambda: self._css_reply(self._request(command, "CSS")),
                        lambda got: _matches(got, state), name=self.name, what=command)

    def select(self, channel: str) -> None:
        """C<ch>S: select a channel (read back)."""
        self._check_channel(channel)
        self._apply(f"C{channel}S", lambda got: got[channel].selected)

    def deselect(self, channel: str) -> None:
        """C<ch>X: deselect a channel (read back)."""
        self._check_channel(channel)
        self._apply(f"C{channel}X", lambda got: not got[channel].selected)

    def set_intensity(self, channel: str, percent: int) -> None:
        """C<ch>I<n>: intensity in percent (0..100), read back."""
        self._check_channel(channel)
        self._check_intensity(percent)
        self._apply(f"C{channel}I{int(percent)}", lambda got: got[channel].intensity == percent)

    def on(self) -> None:
        """CSN: every selected channel on (read back)."""
        self._apply("CSN", lambda got: all(s.on for s in got.values() if s.selected))

    def off(self) -> None:
        """CSF: every selected channel off (read back)."""
        self._apply("CSF", _dark)

    def all_off(self, attempts: int = 3) -> bool:
        """Every channel dark, sent blindly: `CSF` (every selected channel off; an unselected
        one cannot emit) goes out first on every try, without waiting for the port's lock or
        reading any state first (the port is reopened if it was lost). True once the unit
        confirms no channel is on (stale replies waiting ahead of its answer read past);
        False if it never did in `attempts` tries (each waits at most OFF_TIMEOUT_S for the
        port and as long for the reply). Never raises."""
        return blind_off(self.transport, b"CSF\r", self._confirmed_dark, name=self.name,
                         attempts=attempts, wait=min(self.timeout, OFF_TIMEOUT_S))

    def _confirmed_dark(self, wait: float) -> bool:
        """Within `wait` s, a state line showing nothing on: the reply to CSF or, if that was
        a line of another kind, to one CSS?. Stale input is read past: a state line with a
        channel on (a late reply to an earlier command: CSF's shows none on), noise, a
        greeting. A try that fails leaves the input flushed (the port still held), so the next
        starts clean and a confirmation arriving after it is a late one, taken as such."""
        deadline = time.monotonic() + wait
        asked = False
        try:
            while True:
                line = self._line_before(deadline)
                if line.startswith("CSS"):
                    if self._shows_dark(line):
                        return True
                elif line and not asked:
                    self.transport.flush_input()
                    self.transport.write(b"CSS?\r")
                    asked = True
        except DeviceError:
            with contextlib.suppress(DeviceError):
                self.transport.flush_input()
            raise

    def _line_before(self, deadline: float) -> str:
        """The next reply line arriving before `deadline` ("" for noise or a greeting);
        DeviceTimeout after it."""
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise DeviceTimeout(self.name, "no state line showing every channel off")
        raw = self.transport.read_frame(EOL, remaining)
        if not raw.endswith(b"\r\n") or not all(32 <= b < 127 for b in raw[:-2]):
            return ""
        line = raw[:-2].decode("ascii").strip()
        return "" if _is_greeting(line) else line

    def _shows_dark(self, line: str) -> bool:
        try:
            return _dark(self._css_reply(line))
        except GarbledReply:
            return False

    # -- helpers ----------------------------------------------------------------------------
    def _apply(self, command: str, matches: Callable[[dict[str, ChannelState]], bool]) -> None:
        verified(lambda: self._request(command), self._read_state, matches, name=self.name,
                 what=command)

    def _check_channel(self, channel: str) -> None:
        if not isinstance(channel, str) or len(channel) != 1 or not "A" <= channel <= "H":
            raise OutOfRange(self.name, f"bad channel {channel!r}")
        if self.channels and channel not in self.channels:
            raise OutOfRange(self.name, f"no channel {channel!r}; channels {self.channels}")

    def _check_intensity(self, percent: float) -> None:
        if not (isinstance(percent, int | float) and 0 <= percent <= 100
                and int(percent) == percent):
            raise OutOfRange(self.name, f"intensity {percent!r} not an integer in 0..100 %")

    def _css_reply(self, line: str) -> dict[str, ChannelState]:
        try:
            state = parse_css(line)
        except ValueError as exc:
            raise GarbledReply(self.name, str(exc), line.encode()) from exc
        if self.channels and tuple(sorted(state)) != tuple(sorted(self.channels)):
            raise GarbledReply(self.name, f"channels {sorted(state)} in {line!r}, the unit has "
                               f"{list(self.channels)}", line.encode())
        return state

    def _retried(self, exchange: Callable[[], T]) -> T:
        """`exchange()` again after a lost or garbled reply, `retries` times."""
        return retried(self.transport, exchange, self.retries + 1, name=self.name,
                       what="exchange", log=log)

    def _request(self, command: str, prefix: str = "") -> str:
        """One command line and the reply line starting with `prefix`, retried."""
        def exchange() -> str:
            self.transport.flush_input()
            self.transport.write(command.encode("ascii") + b"\r")
            return self._read_line(prefix)
        return self._retried(exchange)

    def _read_line(self, prefix: str = "", timeout: float | None = None) -> str:
        """The next reply line, skipping greetings; it must start with `prefix`."""
        for _ in range(MAX_SKIPPED_LINES):
            with as_device(self.name):
                raw = self.transport.read_frame(EOL, self.timeout if timeout is None else timeout)
            if not raw.endswith(b"\r\n") or not all(32 <= b < 127 for b in raw[:-2]):
                raise GarbledReply(self.name, f"not a line of text: {raw!r}", raw)
            line = raw[:-2].decode("ascii").strip()
            if not line or _is_greeting(line):
                continue
            if line.startswith("?") or line.lower().startswith("error"):
                raise CommandRejected(self.name, f"refused: {line!r}")
            if not line.startswith(prefix):
                raise GarbledReply(self.name, f"expected {prefix!r}..., got {line!r}", raw)
            return line
        raise GarbledReply(self.name, "only greetings and blank lines in reply")


def _matches(got: dict[str, ChannelState], wanted: dict[str, ChannelState]) -> bool:
    """The reported state is the wanted one (an unselected channel reads off)."""
    for ch, want in wanted.items():
        have = got.get(ch)
        if have is None or (have.selected, have.intensity) != (want.selected, want.intensity):
            return False
        if have.on != (want.on and want.selected):
            return False
    return True
