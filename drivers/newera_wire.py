"""The New Era NE-1000 family's wire format: numbers, packets, reply grammar, status codes.

Reference: device_protocols.md section 1.1. Basic mode: `<addr><CMD><args>\\r` out,
`STX <addr 2> <status> [data] ETX` back. Safe mode: `STX len <data> crc16 ETX` both ways, with
CRC-16/XMODEM over the data.
"""

from __future__ import annotations

import binascii
import math
import re
from dataclasses import dataclass

from drivers.errors import (
    CommandRejected,
    CommunicationTimeoutAlarm,
    DeviceAlarm,
    DeviceBusy,
    OutOfRange,
    ProgramAlarm,
    PumpReset,
    PumpStalled,
)

STX, ETX = 0x02, 0x03
STX_BYTE, ETX_BYTE = bytes([STX]), bytes([ETX])
SAFE_MIN_LENGTH = 7  # a Safe reply's length byte: address (2), status (1), CRC (2), ETX
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
REPLY = re.compile(rb"(\d\d)(A\?[RSTEO]|[IWSPTUX])((?:\?(?:NA|OOR|COM|IGN)?)|[0-9A-Z.]*)")
FLOAT = r"(\d+\.\d*|\.\d+)"
RATE = re.compile(FLOAT + r"(UM|MM|UH|MH)")
VOLUME = re.compile(FLOAT + r"(UL|ML)")
DISPENSED = re.compile("I" + FLOAT + "W" + FLOAT + r"(UL|ML)")
VERSION = re.compile(r"NE(\d+)(X\d+)?V(\d+)\.(\d+)")


def format_number(value: float) -> str:
    """A number as the pump reads it: <= 4 digits, <= 3 decimals, always a point ("1500.")."""
    if not math.isfinite(value) or value < 0 or value >= 9999.5:
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


def is_basic(frame: bytes) -> bool:
    """After STX a Basic reply has an address digit, a Safe one its length (< 0x30)."""
    return frame[1:2].isdigit()


def frame_end(buffer: bytes) -> int | None:
    """End of the first reply in `buffer`, Basic (`STX ... ETX`) or Safe (by its length).

    Resynchronised on STX: a Safe packet that does not check out (no ETX where its length
    byte says, or a bad CRC) is dropped up to the next STX and the rest parsed again, so a
    flipped length byte costs that packet, never the reply it would swallow or leave its tail
    in. The frame keeps the bytes before the reply found; `reply_packet` drops them. A lone
    corrupt packet ends the frame at once (its decoder refuses it); None while a packet may
    still be arriving. A pump answers in the framing of the mode it is in after the command,
    so a command that changes the mode, or meets an alarm instead, may be answered either way.
    """
    first_bad: int | None = None
    arriving = False
    start = buffer.find(STX_BYTE)
    while start >= 0:
        end = _packet_end(buffer, start)
        if end is None:
            arriving = True
        elif end > 0:
            return end
        elif first_bad is None:
            first_bad = -end
        start = buffer.find(STX_BYTE, start + 1)
    return None if arriving or first_bad is None else first_bad


def reply_packet(frame: bytes) -> bytes:
    """The Safe packet that ends `frame` (`frame_end`'s), without the bytes before it (a
    corrupt packet, the tail of a late reply); else `frame` itself (a Basic reply has no CRC
    to vouch for it after noise: bytes around it make it garbled)."""
    start = frame.find(STX_BYTE)
    while start >= 0:
        if not is_basic(frame[start:]) and _packet_end(frame, start) == len(frame):
            return frame[start:]
        start = frame.find(STX_BYTE, start + 1)
    return frame


def _packet_end(buffer: bytes, start: int) -> int | None:
    """The end of the packet at `start` (an STX) if it checks out, minus the end of its bytes
    if it does not, None while it may still be arriving. A Basic packet checks out when it
    ends in ETX (its grammar is the decoder's); a Safe one by its ETX and CRC. A Safe packet
    short of what its length byte says, whose CRC checks up to an ETX, is all there: its
    length byte is wrong."""
    if len(buffer) < start + 2:
        return None
    if is_basic(buffer[start:]):
        etx = buffer.find(ETX_BYTE, start)
        return etx + 1 if etx >= 0 else None
    end = start + 1 + buffer[start + 1]
    if buffer[start + 1] < SAFE_MIN_LENGTH:
        return -(start + 2)
    if len(buffer) < end:
        for etx in _positions(buffer, ETX_BYTE, start + SAFE_MIN_LENGTH):
            if _crc_checks(buffer[start + 2 : etx + 1]):
                return -(etx + 1)
        return None
    return end if _crc_checks(buffer[start + 2 : end]) else -end


def _crc_checks(body: bytes) -> bool:
    """`body` (after the length byte) is data, its CRC-16/XMODEM and ETX."""
    return (len(body) >= 3 and body[-1] == ETX
            and binascii.crc_hqx(body[:-3], 0).to_bytes(2, "big") == body[-3:-1])


def _positions(buffer: bytes, byte: bytes, start: int) -> list[int]:
    found, index = [], buffer.find(byte, start)
    while index >= 0:
        found.append(index)
        index = buffer.find(byte, index + 1)
    return found


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
