"""Typed access to the fields of one step in a protocol file, with the line of each field.

A builder asks for each field it knows (`quantity`, `text`, `integer`, ...); anything the file
holds that nobody asked for is reported as an unknown field. A field that cannot be read is
noted and a default used, so that one pass finds every such field of a step; `check_unknown()`
(or a builder's own fatal StepError) then raises them all as StepErrors, each with its line.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Iterable
from typing import Any

from chipctl.config.sourcefile import LineDict, clean_text
from chipctl.config.units import UnitError, to_unit

# What a protocol may ask of a bench, per unit (inclusive): beyond these a value is a typo or
# an attack, never a plan (a week of waiting, a litre of sample, a 10 cm field offset).
WEEK_S = 7 * 24 * 3600.0
RANGES: dict[str, tuple[float, float]] = {
    "uL/min": (1e-4, 1e5),  # 0.1 nL/min .. 100 mL/min
    "uL": (0.0, 1e6),  # .. 1 L
    "s": (0.0, WEEK_S),
    "ms": (0.0, 1e6),  # .. 1000 s of exposure
    "%": (0.0, 100.0),
    "um": (0.0, 1e5),  # .. 10 cm: more than any stage travels
}
MAX_COUNT = 10_000  # fields per zone, repeats, grid rows x columns, positions
MAX_LABELS = 32  # markers of one detection cocktail


class StepError(Exception):
    """One problem with one step, at a line (0: the step's own line), about field `key`."""

    def __init__(self, message: str, line: int = 0, key: str | None = None) -> None:
        super().__init__(message)
        self.line = line
        self.key = key

    @property
    def errors(self) -> list[StepError]:
        """Every problem this exception stands for."""
        return [self]


class StepErrors(StepError):
    """Several problems with one step."""

    def __init__(self, errors: list[StepError]) -> None:
        super().__init__(str(errors[0]), errors[0].line, errors[0].key)
        self._errors = errors

    @property
    def errors(self) -> list[StepError]:
        """Every problem, in the order found."""
        return list(self._errors)


def combine(fields: Fields | None, exc: StepError) -> StepErrors:
    """The problems noted while reading `fields`, then those of `exc` about other fields."""
    noted = list(fields.noted) if fields is not None else []
    keys = {error.key for error in noted if error.key}
    return StepErrors(noted + [e for e in exc.errors if e.key is None or e.key not in keys])


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


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
        self.noted: list[StepError] = []
        if allowed is not None:
            self._refuse_unknown(set(allowed) | {"label"})

    def _refuse_unknown(self, allowed: set[str]) -> None:
        for key in self.data:
            if key not in allowed:
                close = difflib.get_close_matches(str(key), sorted(allowed), n=1)
                hint = (f"; did you mean '{close[0]}'?" if close else
                        f"; known fields: {', '.join(sorted(allowed - {'label'}))}")
                raise StepError(f"{self.kind}: unknown field '{key}'{hint}", self.line_of(key),
                                key)

    def line_of(self, key: str) -> int:
        """The line of field `key` (the step's line if unknown)."""
        if isinstance(self.data, LineDict):
            return self.data.lines.get(key, self.line)
        return self.line

    def error(self, key: str, message: str) -> StepError:
        """A StepError about field `key`, at its line."""
        return StepError(f"{self.kind}.{key}: {message}", self.line_of(key), key)

    def raw(self, key: str, required: bool = True) -> Any:
        """The value as written, or None when absent and not required."""
        self.used.add(key)
        if key not in self.data or self.data[key] is None:
            if required:
                raise StepError(f"{self.kind}: missing field '{key}'", self.line, key)
            return None
        return self.data[key]

    def entries(self, key: str, what: str) -> list[Any]:
        """An optional list field: its items ([] when absent); an empty or non-list value is
        refused with `what` (what the field should be, with an example)."""
        value = self.raw(key, required=False)
        if value is None:
            return []
        if not isinstance(value, list) or not value:
            raise self.error(key, what)
        return value

    def _noting(self, read: Callable[[], Any], default: Any) -> Any:
        try:
            return read()
        except StepError as exc:
            self.noted.append(exc)
            return default

    def quantity(self, key: str, unit: str, required: bool = True,
                 default: float | None = None,
                 limits: tuple[float, float] | None = None) -> float | None:
        """A non-negative quantity written with its unit, in `unit`, within `limits` (by
        default RANGES[unit]); noted if unreadable or out of range."""
        def read() -> float | None:
            value = self.raw(key, required)
            return default if value is None else self.convert(key, value, unit, limits)
        return self._noting(read, default)

    def convert(self, key: str, value: Any, unit: str,
                limits: tuple[float, float] | None = None) -> float:
        """`value` (a string with a unit) in `unit`, finite and within `limits` (by default
        RANGES[unit]); bare numbers are refused."""
        if _is_number(value):
            raise self.error(key, f"write the unit, e.g. '{value} {unit}'")
        try:
            result = to_unit(value, unit)
        except UnitError as exc:
            raise self.error(key, str(exc)) from exc
        if result < 0:
            raise self.error(key, "must not be negative")
        low, high = limits or RANGES.get(unit, (0.0, float("inf")))
        if not low <= result <= high:
            raise self.error(key, f"{result:g} {unit} is outside {low:g}..{high:g} {unit}")
        return result

    def text(self, key: str, required: bool = True, default: str = "") -> str:
        """A name or message (noted if missing or not text)."""
        def read() -> str:
            value = self.raw(key, required)
            if value is None:
                return default
            if not isinstance(value, str | int) or isinstance(value, bool):
                raise self.error(key, f"expected a name, got {_short(value)}")
            return clean_text(str(value))
        return self._noting(read, default)

    def integer(self, key: str, default: int, minimum: int = 1,
                maximum: int = MAX_COUNT) -> int:
        """A whole number in minimum..maximum (noted if not)."""
        def read() -> int:
            value = self.raw(key, required=False)
            if value is None:
                return default
            if (not isinstance(value, int) or isinstance(value, bool)
                    or not minimum <= value <= maximum):
                raise self.error(key, f"expected a whole number {minimum}..{maximum}, "
                                 f"got {_short(value)}")
            return value
        return self._noting(read, default)

    def flag(self, key: str, default: bool = False) -> bool:
        """true or false (noted if not)."""
        def read() -> bool:
            value = self.raw(key, required=False)
            if value is None:
                return default
            if not isinstance(value, bool):
                raise self.error(key, f"expected true or false, got {value!r}")
            return value
        return self._noting(read, default)

    def check_unknown(self) -> None:
        """Raise everything noted, and refuse fields no builder asked for (a typo must not be
        silently ignored)."""
        problems = list(self.noted)
        known = ", ".join(sorted(k for k in self.used if k != "label"))
        problems += [StepError(f"{self.kind}: unknown field '{key}'"
                               + (f"; known fields: {known}" if known else ""),
                               self.line_of(key), key)
                     for key in self.data if key not in self.used]
        if problems:
            raise StepErrors(problems)


def read_labels(f: Fields) -> tuple[tuple[str, str], ...]:
    """`labels: {CD9: AF488, CD63: AF555}`: which marker's detection antibody carries which
    dye (the channel that images it); one dye per marker and one marker per dye."""
    value = f.raw("labels", required=False)
    if value is None:
        return ()
    example = "e.g. {CD9: AF488, CD63: AF555, CD81: AF647}"
    if not isinstance(value, dict) or not value:
        raise f.error("labels", f"a mapping of marker to dye, {example}")
    if len(value) > MAX_LABELS:
        raise f.error("labels", f"{len(value)} markers; at most {MAX_LABELS}")
    pairs: list[tuple[str, str]] = []
    for marker, dye in value.items():
        if not all(isinstance(v, str | int) and not isinstance(v, bool) and str(v).strip()
                   for v in (marker, dye)):
            raise f.error("labels", f"marker and dye are names, {example}; got "
                          f"{marker!r}: {dye!r}"[:200])
        pairs.append((clean_text(str(marker)), clean_text(str(dye))))
    dyes = [d for _, d in pairs]
    twice = sorted({d for d in dyes if dyes.count(d) > 1})
    if twice:
        raise f.error("labels", f"dye {', '.join(twice)} carries more than one marker: a channel "
                      "could not tell them apart")
    return tuple(pairs)
