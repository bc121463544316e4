"""Quantities written out in files ("5 uL/min", "10 min", "50 ms") to plain floats.

One pint registry for the whole program. `to_unit` accepts a number (taken as already in the
target unit) or a string with units; wrong dimensions raise UnitError with a readable message.
"""

from __future__ import annotations

import functools
import re

import pint


class UnitError(ValueError):
    """A quantity that cannot be read or has the wrong dimension."""


@functools.cache
def registry() -> pint.UnitRegistry:
    """The shared unit registry (built once; pint's start-up is not free)."""
    ureg: pint.UnitRegistry = pint.UnitRegistry()
    return ureg


_ALIASES = [
    (re.compile(r"(?<![A-Za-z])u(?=[LlMmgs])"), "µ"),  # uL, um, us, ug -> µL, µm, ...
    (re.compile(r"(?<![A-Za-z])([µmnp]?)L(?![A-Za-z])"), r"\1l"),  # L -> l (litre)
    (re.compile(r"/\s*h(?![a-z])"), "/hour"),
    (re.compile(r"(?<![A-Za-z])x\s*g(?![A-Za-z])"), "g0"),
]


def _normalise(text: str) -> str:
    out = text.strip().replace("μ", "µ")
    for pattern, replacement in _ALIASES:
        out = pattern.sub(replacement, out)
    return out


def to_unit(value: object, unit: str) -> float:
    """`value` ("5 uL/min", "2 mL", 4.5) expressed in `unit` ("uL/min", "uL", ...)."""
    if isinstance(value, bool):
        raise UnitError(f"expected a quantity in {unit}, got {value!r}")
    if isinstance(value, int | float):
        return float(value)
    if not isinstance(value, str) or not value.strip():
        raise UnitError(f"expected a quantity in {unit} such as '5 {unit}', got {value!r}")
    ureg = registry()
    try:
        quantity: pint.Quantity = ureg.Quantity(_normalise(value))
        target = ureg.Unit(_normalise(unit))
    except (pint.errors.PintError, AttributeError, TypeError, ValueError, SyntaxError) as exc:
        raise UnitError(f"cannot read {value!r} as a quantity ({exc})") from exc
    if isinstance(quantity, int | float) or quantity.dimensionless and not target.dimensionless:
        raise UnitError(f"{value!r} has no unit; write it as e.g. '{value} {unit}'")
    try:
        return float(quantity.to(target).magnitude)
    except pint.errors.DimensionalityError as exc:
        kind = unit_kind(unit)
        raise UnitError(f"{value!r} is not a {kind} (expected units like {unit})") from exc


def unit_kind(unit: str) -> str:
    """A word for the dimension of `unit`, for messages."""
    kinds = {
        "uL": "volume", "mL": "volume", "uL/min": "flow rate", "s": "duration",
        "min": "duration", "ms": "duration", "um": "length", "mm": "length",
        "kPa": "pressure", "%": "percentage", "1/mL": "concentration",
    }
    return kinds.get(unit, f"quantity in {unit}")
