"""The Ultra command set's wire format: framing, prompts, quantities and the status line.

Reference: device_protocols.md section 1.2. Pure functions and constants, no I/O: the driver
(drivers.harvard) frames and parses with these.
"""

from __future__ import annotations

import dataclasses
import math
import re
from dataclasses import dataclass

XON = b"\x11"
PROMPTS = {":": "idle", ">": "infusing", "<": "withdrawing", "*": "stalled", "T*": "target"}
VOLUME_UL = {"ml": 1000.0, "ul": 1.0, "nl": 1e-3, "pl": 1e-6, "fl": 1e-9}
PER_MIN = {"hr": 1 / 60.0, "h": 1 / 60.0, "min": 1.0, "m": 1.0, "sec": 60.0, "s": 60.0}
POLLED_END = re.compile(rb"\n(\d\d)?(T\*|[:<>*])\x11")
ANY_END = re.compile(rb"\n(\d\d)?(T\*|[:<>*])\x11?$")
PROMPT = re.compile(r"(\d\d)?(T\*|[:<>*])")
QUANTITY = re.compile(r"(\d+(?:\.\d*)?|\.\d+)\s*([munpf]?l)(?:/(hr|h|min|m|sec|s))?")
STATUS = re.compile(r"(\d+) (\d+) (\d+) ([iwIW])([.IW])([.S])([.T])([IWiw.])([.T])")
DIAMETER = re.compile(r"(\d{1,3}\.\d{1,4}) mm")
SHORT_UNITS = re.compile(r"([munp])/([hms])")
LINE_TEXT = re.compile(r"[ -~]*")
DIAMETER_MM = (0.1, 50.0)  # the widest syringe an Elite or PHD ULTRA rack holds is ~ 33 mm
MAX_VOLUME_UL = 1e6  # 1 L: more than any syringe on the rack; a larger reading is garbled
MAX_RATE_UL_MIN = 1e6


@dataclass(frozen=True)
class UltraReply:
    """Data lines (address prefix removed) and the prompt."""

    lines: tuple[str, ...]
    prompt: str

    @property
    def running(self) -> bool:
        """The prompt says the pump is infusing or withdrawing."""
        return self.prompt in (">", "<")


@dataclass(frozen=True)
class PumpStatus:
    """The `status` line: rate (uL/min), time, displaced volume (uL) and the flags."""

    rate_ul_min: float
    time: int
    volume_ul: float
    direction: str  # "i" or "w"
    running: bool
    limit: str  # ".", "I" or "W"
    stalled: bool
    target_reached: bool


def format_quantity(value: float) -> str:
    """A plain decimal (no exponent), at most 6 significant digits."""
    if not (isinstance(value, int | float) and math.isfinite(value) and 0 < value < 1e9):
        raise ValueError(f"{value!r} must be a positive number below 1e9")
    text = f"{value:.6g}"
    if "e" in text:
        text = f"{value:.9f}".rstrip("0").rstrip(".")
    return text


def short_units_ul_min(units: str) -> float:
    """The factor from a rate in short units (`u/m`, `n/h`, ...) to uL/min."""
    match = SHORT_UNITS.fullmatch(units)
    if match is None:
        raise ValueError(f"rate units {units!r}; use m, u, n or p / h, m or s (e.g. u/m)")
    volume, per = match.groups()
    return VOLUME_UL[volume + "l"] * PER_MIN[per]


def parse_quantity(text: str) -> float:
    """`12.345 ul/min` -> uL/min, `1.5 ml` -> uL."""
    match = QUANTITY.fullmatch(text.strip().lower())
    if match is None:
        raise ValueError(f"not a quantity: {text!r}")
    number, volume, per = match.groups()
    return float(number) * VOLUME_UL[volume] * (PER_MIN[per] if per else 1.0)


def status_goes_on(earlier: PumpStatus, later: PumpStatus) -> bool:
    """Two status lines of one pump: same flags and rate, time and volume counting on."""
    return (dataclasses.replace(earlier, time=0, volume_ul=0.0)
            == dataclasses.replace(later, time=0, volume_ul=0.0)
            and 0 <= later.time - earlier.time <= 60_000
            and counting_on(earlier.volume_ul, later.volume_ul))


def counting_on(earlier: float, later: float) -> bool:
    """Two readings of a counter that may be moving: the later continues the earlier, by
    little (a bit flip in a digit moves it far, or backwards)."""
    return 0 <= later - earlier <= 1e-6 + 0.02 * earlier
