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

    Bytes before the STX (the tail of a late reply) are left in the frame and skipped by the
    decoder. A pump answers in the framing of the mode it is in after the command, so a
    command that changes the mode, or meets an alarm instead, may be answered either way.
    """
    start = buffer.find(bytes([STX]))
    if start < 0 or len(buffer) < start + 2:
        return None
    if is_basic(buffer[start:]):
        end = buffer.find(bytes([ETX]), start)
        return end + 1 if end >= 0 else None
    end = start + 1 + buffer[start + 1]
    return end if len(buffer) >= end else None


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
