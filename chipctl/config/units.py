"""Quantities written out in files ("5 uL/min", "10 min", "50 ms") to plain floats.

The number and the unit are read here, never by evaluating an expression: pint would compute
`9**9**9 uL` (and hang), and its parser raises AssertionError, TokenError or OverflowError on
some inputs. A quantity is a decimal number (optionally with an exponent) and a unit made of
unit names, `/`, `*`, spaces and exponents 1-3; pint only looks up and converts the unit. The
number, and the result, must be finite. One pint registry for the whole program. `to_unit`
accepts a number (taken as already in the target unit) or a string with units; anything else
raises UnitError with a readable message.
"""

from __future__ import annotations

import functools
import math
import re

import pint


class UnitError(ValueError):
    """A quantity that cannot be read or has the wrong dimension."""


@functools.cache
def registry() -> pint.UnitRegistry:
    """The shared unit registry (built once; pint's start-up is not free)."""
    ureg: pint.UnitRegistry = pint.UnitRegistry()
    return ureg


MAX_TEXT = 64  # no quantity in a lab file is longer
_NUMBER = re.compile(r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?", re.ASCII)
_NAME = r"(?:[A-Za-zµμ°%Ωω]{1,20}(?:(?:\^|\*\*)-?[1-3])?)"
_UNIT = re.compile(rf"(?:1\s*/\s*|/\s*)?{_NAME}(?:\s*(?:/|\*|·|\s)\s*{_NAME})*")
_ALIASES = [
    (re.compile(r"(?<![A-Za-z])u(?=[LlMmgs])"), "µ"),  # uL, um, us, ug -> µL, µm, ...
    (re.compile(r"(?<![A-Za-z])([µmnp]?)L(?![A-Za-z])"), r"\1l"),  # L -> l (litre)
    (re.compile(r"/\s*h(?![a-z])"), "/hour"),
    (re.compile(r"(?<![A-Za-z])x\s*g(?![A-Za-z])"), "g0"),
    (re.compile(r"·"), "*"),
]


def _normalise(text: str) -> str:
    out = text.strip().replace("μ", "µ")
    for pattern, replacement in _ALIASES:
        out = pattern.sub(replacement, out)
    if out.startswith("/"):
        out = "1" + out  # "/mL" -> "1/mL"
    return out


def split_quantity(text: str) -> tuple[float, str]:
    """("5", "uL/min") read from "5 uL/min": the number (finite) and the unit text as written.

    UnitError if the text is not a plain number followed by a unit (no expressions)."""
    stripped = text.strip()
    if len(stripped) > MAX_TEXT:
        raise UnitError(f"cannot read {_shown(text)} as a quantity: longer than "
                        f"{MAX_TEXT} characters")
    match = _NUMBER.match(stripped)
    if match is None:
        raise UnitError(f"cannot read {_shown(text)} as a quantity: it does not start with a "
                        "number (write e.g. '5 uL/min')")
    unit = stripped[match.end():].strip()
    if unit and not _UNIT.fullmatch(unit):
        raise UnitError(f"cannot read {_shown(text)} as a quantity: '{unit}' is not a unit "
                        "(write a number, then a unit such as uL/min; no arithmetic)")
    number = float(match.group(0))
    if not math.isfinite(number):
        raise UnitError(f"{_shown(text)} is too large a number")
    return number, unit


def to_unit(value: object, unit: str) -> float:
    """`value` ("5 uL/min", "2 mL", 4.5) expressed in `unit` ("uL/min", "uL", ...)."""
    if isinstance(value, bool):
        raise UnitError(f"expected a quantity in {unit}, got {value!r}")
    if isinstance(value, int | float):
        return _finite(value, value, unit)
    if not isinstance(value, str) or not value.strip():
        raise UnitError(f"expected a quantity in {unit} such as '5 {unit}', got {_shown(value)}")
    number, written = split_quantity(value)
    if not written:
        raise UnitError(f"{_shown(value)} has no unit; write it as e.g. '{value.strip()} {unit}'")
    ureg = registry()
    try:
        source = ureg.Unit(_normalise(written))
        target = ureg.Unit(_normalise(unit))
    except Exception as exc:  # noqa: BLE001 - pint raises many types; none may escape
        raise UnitError(f"cannot read {_shown(value)} as a quantity: unknown unit "
                        f"'{written}'") from exc
    if source.dimensionless and not target.dimensionless:
        raise UnitError(f"{_shown(value)} has no unit; write it as e.g. '{number:g} {unit}'")
    try:
        converted = ureg.Quantity(number, source).to(target).magnitude
    except pint.errors.DimensionalityError as exc:
        kind = unit_kind(unit)
        raise UnitError(f"{_shown(value)} is not a {kind} (expected units like {unit})") from exc
    except Exception as exc:  # noqa: BLE001 - overflow and the like inside pint
        raise UnitError(f"cannot convert {_shown(value)} to {unit}") from exc
    return _finite(converted, value, unit)


def _finite(number: object, value: object, unit: str) -> float:
    try:
        result = float(number)  # type: ignore[arg-type]
    except (OverflowError, TypeError, ValueError):
        raise UnitError(f"{_shown(value)} is not a usable number of {unit}") from None
    if not math.isfinite(result):
        raise UnitError(f"{_shown(value)} is not a finite quantity in {unit}")
    return result


def _shown(value: object) -> str:
    """A value for a message: repr, cut short."""
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def unit_kind(unit: str) -> str:
    """A word for the dimension of `unit`, for messages."""
    kinds = {
        "uL": "volume", "mL": "volume", "uL/min": "flow rate", "s": "duration",
        "min": "duration", "ms": "duration", "um": "length", "mm": "length",
        "kPa": "pressure", "%": "percentage", "1/mL": "concentration",
    }
    return kinds.get(unit, f"quantity in {unit}")
