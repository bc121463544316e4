"""Numbers and labels for people: thousands separated, three significant digits, powers of ten
written as "1.23 × 10⁷" (never "6e+03"), intervals as "a – b", and a protocol's "{sample}"
placeholders filled with the run's values."""

from __future__ import annotations

import math
import re
from typing import Any

_SUPERSCRIPT = str.maketrans("-0123456789", "⁻⁰¹²³⁴⁵⁶⁷⁸⁹")
_PLACEHOLDER = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)\}")


def number(value: Any, digits: int = 3) -> str:
    """A number for people ("–" for none)."""
    if value is None or value == "":
        return "–"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return f"{value:,}"
    if not isinstance(value, float):
        return str(value)
    if math.isnan(value):
        return "–"
    if math.isinf(value):
        return "∞" if value > 0 else "−∞"
    if value == 0:
        return "0"
    exponent = math.floor(math.log10(abs(value)))
    if exponent >= 6 or exponent < -3:
        mantissa = value / 10**exponent
        if round(abs(mantissa), digits - 1) >= 10:
            mantissa, exponent = mantissa / 10, exponent + 1
        return f"{mantissa:.{digits - 1}f} × 10{str(exponent).translate(_SUPERSCRIPT)}"
    decimals = max(digits - 1 - exponent, 0)
    return f"{round(value, decimals):,.{decimals}f}"


def percent(value: float | None, digits: int = 0) -> str:
    """A fraction as a percentage."""
    if value is None or not math.isfinite(value):
        return "–"
    return f"{100 * value:.{digits}f} %"


def interval(low: float | None, high: float | None) -> str:
    """A 95 % interval."""
    return f"{number(low)} – {number(high)}"


def filled(text: str, params: dict[str, Any]) -> str:
    """``text`` with each "{name}" replaced by the run's parameter (left out if not given)."""
    return _PLACEHOLDER.sub(lambda m: str(params.get(m.group(1), "")) or "", text).strip()
