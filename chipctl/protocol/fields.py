"""Typed access to the fields of one step in a protocol file, with the line of each field.

A builder asks for each field it knows (`quantity`, `text`, `integer`, ...); anything the file
holds that nobody asked for is reported as an unknown field. Problems raise StepError with the
line of the offending field.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable
from typing import Any

from chipctl.sourcefile import LineDict
from chipctl.units import UnitError, to_unit


class StepError(Exception):
    """One problem with one step, at a line (0: the step's own line)."""

    def __init__(self, message: str, line: int = 0) -> None:
        super().__init__(message)
        self.line = line


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


class Fields:
    """The fields of one step (a mapping from the file), remembering which were used."""

    def __init__(self, kind: str, data: Any, line: int,
                 allowed: Iterable[str] | None = None) -> None:
        if not isinstance(data, dict):
            raise StepError(f"{kind}: expected a mapping of fields such as "
                            f"'{{pump: ..., rate: ...}}', got {data!r}", line)
        self.kind, self.data = kind, data
        self.line = getattr(data, "line", 0) or line
        self.used: set[str] = {"label"}
        if allowed is not None:
            self._refuse_unknown(set(allowed) | {"label"})

    def _refuse_unknown(self, allowed: set[str]) -> None:
        for key in self.data:
            if key not in allowed:
                close = difflib.get_close_matches(str(key), sorted(allowed), n=1)
                hint = (f"; did you mean '{close[0]}'?" if close else
                        f"; known fields: {', '.join(sorted(allowed - {'label'}))}")
                raise StepError(f"{self.kind}: unknown field '{key}'{hint}", self.line_of(key))

    def line_of(self, key: str) -> int:
        """The line of field `key` (the step's line if unknown)."""
        if isinstance(self.data, LineDict):
            return self.data.lines.get(key, self.line)
        return self.line

    def error(self, key: str, message: str) -> StepError:
        """A StepError about field `key`, at its line."""
        return StepError(f"{self.kind}.{key}: {message}", self.line_of(key))

    def raw(self, key: str, required: bool = True) -> Any:
        """The value as written, or None when absent and not required."""
        self.used.add(key)
        if key not in self.data or self.data[key] is None:
            if required:
                raise StepError(f"{self.kind}: missing field '{key}'", self.line)
            return None
        return self.data[key]

    def quantity(self, key: str, unit: str, required: bool = True,
                 default: float | None = None) -> float | None:
        """A non-negative quantity written with its unit, in `unit`."""
        value = self.raw(key, required)
        if value is None:
            return default
        return self.convert(key, value, unit)

    def convert(self, key: str, value: Any, unit: str) -> float:
        """`value` (a string with a unit) in `unit`; bare numbers are refused."""
        if _is_number(value):
            raise self.error(key, f"write the unit, e.g. '{value} {unit}'")
        try:
            result = to_unit(value, unit)
        except UnitError as exc:
            raise self.error(key, str(exc)) from exc
        if result < 0:
            raise self.error(key, "must not be negative")
        return result

    def text(self, key: str, required: bool = True, default: str = "") -> str:
        """A name or message."""
        value = self.raw(key, required)
        if value is None:
            return default
        if not isinstance(value, str | int) or isinstance(value, bool):
            raise self.error(key, f"expected a name, got {value!r}")
        return str(value)

    def integer(self, key: str, default: int, minimum: int = 1) -> int:
        """A whole number >= minimum."""
        value = self.raw(key, required=False)
        if value is None:
            return default
        if not isinstance(value, int) or isinstance(value, bool) or value < minimum:
            raise self.error(key, f"expected a whole number >= {minimum}, got {value!r}")
        return value

    def flag(self, key: str, default: bool = False) -> bool:
        """true or false."""
        value = self.raw(key, required=False)
        if value is None:
            return default
        if not isinstance(value, bool):
            raise self.error(key, f"expected true or false, got {value!r}")
        return value

    def check_unknown(self, known_hint: str = "") -> None:
        """Refuse fields no builder asked for (a typo must not be silently ignored)."""
        extra = [key for key in self.data if key not in self.used]
        if extra:
            key = extra[0]
            known = ", ".join(sorted(k for k in self.used if k != "label"))
            raise StepError(f"{self.kind}: unknown field '{key}'"
                            + (f"; known fields: {known}" if known else ""), self.line_of(key))
