"""Driver for a VICI Valco universal electric actuator (EUH / EUD / EUT; the modular UMH / UMD /
UMT take the same commands) turning a Cheminert multiposition selector valve.

Sources, followed byte for byte ([M] manual, [1] one client that drove real actuators):
[M] VICI "Universal Electric Actuator" user manual, section Optional Serial Interface: command
    table p. 14, command reference pp. 15-19. Read at
    https://azmanual.top/manuals/595651/vici-eut-universal-electric-actuator-eud-universal-electric-actuator-euh-universal-electric-actuator-valve-actuators-universal-euh-eud-and-eut.html?page=14
    (and ?page=15 ... ?page=19; SM and SO at manualsdir.com/manuals/595651/...?page=18).
[M] VICI micro-electric actuator manuals for the link: 9600 baud, 8N1, a carriage return ends
    each command, line feeds are ignored; with a device ID set the actuator "responds only to
    commands which begin with the correct ID prefix" (manualslib.com/manual/3018250 p. 4,
    azmanual.top/manuals/595646 p. 5).
[1] cambiegroup/flowchem devices/vicivalco (command list in the module): replies carry the ID
    prefix (`0CPA`, `0AM3`, `0IFM0`), `VR` answers three lines (`Dec 15 2011`, `15:02:20`,
    `UA_MAIN_CT`), a command the current mode does not offer answers `E2 NP Invalid`, and `GO`
    answers nothing.

Host to actuator `[id]<command>[value]<CR>`; actuator to host `[id]<reply><CR>`:

    IFM / IFM0     response to action commands; 0 = none                  -> IFMn
    VR             firmware (main board)                                  -> lines of text
    AM             mode: 1, 2 two position, 3 multiposition               -> AMn
    NP             number of positions                                    -> NPnn
    SO             number of the first position (offset; factory 1)       -> SOnn
    CP             current position                                       -> CPnn
    GOnn           go to position nn, in the direction SM sets            (no reply with IFM0)
    HM             go to the first position                               (no reply with IFM0)
    SM / SMl       direction: F forward, R reverse, A shortest route      -> SMl
    E<n> ...       the command is not available in the current mode       -> CommandRejected

The valve's ports are SO..SO+NP-1 and "the actuator will respond only to commands for position
SO through SO+NP-1" [M]: a GO outside that range is silently ignored, so the driver refuses it
before sending (OutOfRange). With LG1 the actuator adds " = " to its replies [M]; the parser
accepts both forms.

Move completion: connect() sets IFM0 so that moves answer nothing; select() then polls CP until
two consecutive replies name the target (the protocol has no checksum, so one corrupted digit
must not end a move early). A valve that reports another port at the move timeout raises
ValveFault (stalled, jammed); one that never answers raises DeviceTimeout.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable

from drivers.errors import (
    CommandRejected,
    DeviceError,
    DeviceTimeout,
    GarbledReply,
    OutOfRange,
    ValveFault,
)
from drivers.exchange import request_with_retries
from drivers.transport import SerialTransport

BAUDRATE = 9600
EOL = b"\r"
MULTIPOSITION = 3
MAX_POSITION = 96  # SO + NP - 1 never exceeds 96 [M]
MAX_VR_LINES = 8
DIRECTIONS = {"A": "shortest route", "F": "forward", "R": "reverse"}
MODES = {1: "two position with stops", 2: "two position without stops", 3: "multiposition"}
_ERROR = re.compile(r"E\d+\b.*")
log = logging.getLogger(__name__)


class ViciValve:
    """A VICI universal actuator in multiposition mode behind one transport.

    `device_id`: the actuator's ID character (0-9, A-Z) when one is set, else None;
    `positions`: the number of positions the bench expects (checked against NP at connect);
    `timeout`: reply timeout (s); `retries`: extra attempts for a lost or garbled query reply;
    `move_timeout`: how long a move may take (s); `clock` / `sleep`: the time source, injectable.
    """

    def __init__(
        self,
        transport: SerialTransport,
        name: str | None = None,
        *,
        device_id: str | None = None,
        positions: int | None = None,
        timeout: float = 0.5,
        retries: int = 2,
        move_timeout: float = 10.0,
        poll_interval: float = 0.05,
        quiet: float = 0.1,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if device_id is not None and re.fullmatch(r"[0-9A-Z]", device_id) is None:
            raise ValueError(f"VICI device ID must be one character 0-9 or A-Z, not {device_id!r}")
        self.transport = transport
        self.name = name or transport.name
        self.device_id = device_id
        self.expected_positions = positions
        self.timeout = timeout
        self.retries = retries
        self.move_timeout = move_timeout
        self.poll_interval = poll_interval
        self.quiet = quiet
        self.clock = clock
        self.sleep = sleep
        self.firmware = ""
        self.first = 1
        self.count = 0

    # -- life cycle -------------------------------------------------------------------------
    def connect(self) -> str:
        """Open, silence action replies (IFM0), identify, check the mode and read the ports."""
        self.transport.open()
        self._silence_action_replies()
        self.firmware = self.identify()
        mode = self.mode()
        if mode != MULTIPOSITION:
            raise ValveFault(self.name, f"actuator is in mode {mode} ({MODES.get(mode, '?')}), "
                             "not 3 (multiposition); set AM3 for a selector valve")
        count, first = self._number("NP"), self._number("SO")
        if count < 2 or first < 1 or first + count - 1 > MAX_POSITION:
            raise GarbledReply(self.name, f"impossible port range: NP{count}, SO{first}")
        if self.expected_positions is not None and count != self.expected_positions:
            raise ValveFault(self.name, f"valve has {count} positions (NP), the bench says "
                             f"{self.expected_positions}: another valve head is fitted")
        self.first, self.count = first, count
        self.position()
        return self.firmware

    def close(self) -> None:
        """Nothing to stop (the port belongs to the transport, which other actuators may share)."""

    @property
    def ports(self) -> range:
        """The port numbers this valve accepts (SO..SO+NP-1), known after connect()."""
        return range(self.first, self.first + self.count)

    # -- queries ----------------------------------------------------------------------------
    def identify(self) -> str:
        """VR: the firmware lines, joined by spaces."""
        with self.transport.lock:
            lines = [self._query_raw("VR", lambda raw: self._text(raw, "VR"))]
            while len(lines) < MAX_VR_LINES:
                try:
                    lines.append(self._text(self.transport.read_frame(EOL, self.quiet), "VR"))
                except DeviceTimeout:
                    break
        text = " ".join(line for line in lines if line)
        if not text:
            raise GarbledReply(self.name, "empty VR reply")
        return text

    def mode(self) -> int:
        """AM: 1 or 2 two position, 3 multiposition."""
        return self._number("AM")

    def direction(self) -> str:
        """SM: A (shortest route), F (forward) or R (reverse)."""
        return self._query("SM", value="[AFR]")

    def position(self) -> int:
        """CP: the port the valve is at (two consecutive replies must agree)."""
        previous: int | None = None
        failure: DeviceError | None = None
        for _ in range(2 + 2 * self.retries):
            try:
                reading = self._read_position()
            except (DeviceTimeout, GarbledReply) as exc:
                previous, failure = None, exc
                continue
            if reading == previous:
                return reading
            previous = reading
        if failure is not None:
            raise failure
        raise GarbledReply(self.name, "CP replies never agreed twice in a row")

    # -- commands ---------------------------------------------------------------------------
    def select(self, port: int) -> None:
        """Turn the valve to `port` and return once it is there (GOnn, then CP until it is)."""
        self._check_port(port)
        self._send(f"GO{port}")
        self._wait_at(port)

    def home(self) -> None:
        """HM: turn to the first position and wait until the valve is there."""
        self._send("HM")
        self._wait_at(self.first)

    def set_direction(self, direction: str) -> None:
        """SMl: rotation for GO, A shortest route, F forward, R reverse; read back."""
        if direction not in DIRECTIONS:
            raise OutOfRange(self.name, f"direction {direction!r} is none of A, F, R")
        self._send(f"SM{direction}")
        if self.direction() != direction:
            raise CommandRejected(self.name, f"SM{direction} did not take effect")

    # -- waiting for a move -----------------------------------------------------------------
    def _wait_at(self, port: int) -> None:
        deadline = self.clock() + self.move_timeout
        previous: int | None = None
        last: int | None = None
        failure: DeviceError | None = None
        while True:
            try:
                reading: int | None = self._read_position()
                last, failure = reading, None
            except (DeviceTimeout, GarbledReply) as exc:
                reading, failure = None, exc
            if reading == port and previous == port:
                return
            if self.clock() >= deadline:
                break
            previous = reading
            self.sleep(self.poll_interval)
        if failure is not None or last is None:
            raise failure or DeviceTimeout(self.name, "no position reply")
        raise ValveFault(self.name, f"did not reach port {port} within {self.move_timeout:g} s; "
                         f"it reports port {last}")

    def _check_port(self, port: int) -> None:
        if not self.count:
            raise DeviceError(self.name, "not connected: the valve's ports are unknown")
        if isinstance(port, bool) or not isinstance(port, int) or port not in self.ports:
            raise OutOfRange(self.name, f"no port {port!r}; this valve has ports "
                             f"{self.first}-{self.first + self.count - 1}")

    # -- wire helpers -----------------------------------------------------------------------
    def _silence_action_replies(self) -> None:
        if self._query("IFM") == "0":
            return
        self._send("IFM0")
        if self._query("IFM") != "0":
            raise CommandRejected(self.name, "IFM0 did not take effect")

    def _read_position(self) -> int:
        position = self._number("CP", retries=0)
        if self.count and position not in self.ports:
            raise GarbledReply(self.name, f"position {position} is not a port of this valve")
        return position

    def _number(self, key: str, retries: int | None = None) -> int:
        return int(self._query(key, retries, value=r"\d{1,5}"))

    def _query(self, key: str, retries: int | None = None, value: str = r"\S+") -> str:
        """The value of a `key` query reply (`[id]KEY[ = ]value`, value matching `value`)."""
        pattern = re.compile(rf"{key}\s*(?:=\s*)?({value})")

        def decode(raw: bytes) -> str:
            text = self._text(raw, key)
            match = pattern.fullmatch(text)
            if match is None:
                raise GarbledReply(self.name, f"expected {key}..., got {text!r}", raw)
            return match.group(1)

        return self._query_raw(key, decode, retries)

    def _query_raw(self, command: str, decode: Callable[[bytes], str],
                   retries: int | None = None) -> str:
        attempts = 1 + (self.retries if retries is None else retries)
        return request_with_retries(self.transport, self._frame(command), EOL, self.timeout,
                                    decode, attempts, name=self.name, what=command, log=log)

    def _send(self, command: str) -> None:
        """A command the actuator does not answer (a move with IFM0, a setting)."""
        with self.transport.lock:
            self.transport.flush_input()
            self.transport.write(self._frame(command))

    def _frame(self, command: str) -> bytes:
        return ((self.device_id or "") + command).encode("ascii") + EOL

    def _text(self, raw: bytes, command: str) -> str:
        """A reply line without its CR and ID prefix; `E<n> ...` raises CommandRejected."""
        text = raw.decode("ascii", "replace").strip()
        if self.device_id is not None:
            if not text.startswith(self.device_id):
                raise GarbledReply(self.name, f"reply {text!r} lacks ID {self.device_id}", raw)
            text = text[1:]
        if _ERROR.fullmatch(text):
            raise CommandRejected(self.name, f"{command!r} refused: {text!r}")
        return text
