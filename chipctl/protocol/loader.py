"""Protocol files (YAML) to a Protocol. Loading is parsing only: it never executes code.

```yaml
schema_version: 1
name: Quickstart
steps:
  - prime: {pump: buffer_pump, volume: 20 uL, rate: 50 uL/min}
  - flow:  {pump: sample_pump, rate: 5 uL/min, volume: 25 uL}
  - wait: 2 min
  - image: {zones: [CD63], channels: [{channel: AF647, exposure: 50 ms, power: 60 %}]}
```
Every problem is collected (not just the first) and reported with file and line.
"""

from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

from chipctl.protocol.model import (
    ChannelSetting,
    Flow,
    Image,
    Monitor,
    Prime,
    Prompt,
    Protocol,
    Repeat,
    Step,
    Valve,
    Wait,
)
from chipctl.sourcefile import LineDict, Problem, SourceError, parse_yaml
from chipctl.units import UnitError, to_unit

SCHEMA_VERSION = 1
FLOW_ALIASES = ("sample", "block", "stain", "wash", "buffer")


class _StepError(Exception):
    def __init__(self, message: str, line: int = 0) -> None:
        super().__init__(message)
        self.line = line


class _Fields:
    """Typed access to one step's fields, remembering which were used."""

    def __init__(self, kind: str, data: Any, line: int) -> None:
        if not isinstance(data, dict):
            raise _StepError(f"{kind}: expected a mapping of fields, got {data!r}", line)
        self.kind, self.data, self.line = kind, data, line
        self.used: set[str] = {"label"}

    def line_of(self, key: str) -> int:
        lines = getattr(self.data, "lines", {})
        return lines.get(key, self.line) if isinstance(self.data, LineDict) else self.line

    def raw(self, key: str, required: bool = True) -> Any:
        self.used.add(key)
        if key not in self.data:
            if required:
                raise _StepError(f"{self.kind}: missing field '{key}'", self.line)
            return None
        return self.data[key]

    def quantity(self, key: str, unit: str, required: bool = True) -> float | None:
        value = self.raw(key, required)
        if value is None:
            return None
        if isinstance(value, int | float) and not isinstance(value, bool):
            raise _StepError(f"{self.kind}.{key}: write the unit, e.g. '{value} {unit}'",
                             self.line_of(key))
        try:
            result = to_unit(value, unit)
        except UnitError as exc:
            raise _StepError(f"{self.kind}.{key}: {exc}", self.line_of(key)) from exc
        if result < 0:
            raise _StepError(f"{self.kind}.{key}: must not be negative", self.line_of(key))
        return result

    def text(self, key: str, required: bool = True, default: str = "") -> str:
        value = self.raw(key, required)
        if value is None:
            return default
        if not isinstance(value, str | int) or isinstance(value, bool):
            raise _StepError(f"{self.kind}.{key}: expected a name, got {value!r}", self.line_of(key))
        return str(value)

    def integer(self, key: str, default: int, minimum: int = 1) -> int:
        value = self.raw(key, required=False)
        if value is None:
            return default
        if not isinstance(value, int) or isinstance(value, bool) or value < minimum:
            raise _StepError(
                f"{self.kind}.{key}: expected a whole number >= {minimum}, got {value!r}",
                self.line_of(key),
            )
        return value

    def flag(self, key: str, default: bool = False) -> bool:
        value = self.raw(key, required=False)
        if value is None:
            return default
        if not isinstance(value, bool):
            raise _StepError(f"{self.kind}.{key}: expected true or false", self.line_of(key))
        return value

    def check_unknown(self) -> None:
        extra = [key for key in self.data if key not in self.used]
        if extra:
            key = extra[0]
            raise _StepError(f"{self.kind}: unknown field '{key}'", self.line_of(key))


def _channel(value: Any, line: int) -> ChannelSetting:
    if isinstance(value, str):
        return ChannelSetting(value)
    fields = _Fields("channel", value, getattr(value, "line", line))
    setting = ChannelSetting(
        channel=fields.text("channel"),
        exposure_ms=fields.quantity("exposure", "ms", required=False) or 50.0,
        power_pct=fields.quantity("power", "%", required=False) or 50.0,
    )
    fields.check_unknown()
    return setting


def _prime(f: _Fields) -> Step:
    return Prime(pump=f.text("pump"), volume_ul=f.quantity("volume", "uL") or 0.0,
                 rate_ul_min=f.quantity("rate", "uL/min") or 0.0)


def _flow(f: _Fields, reagent: str = "") -> Flow:
    direction = f.text("direction", required=False, default="infuse")
    if direction not in ("infuse", "withdraw"):
        raise _StepError(f"{f.kind}.direction: infuse or withdraw, not {direction!r}",
                         f.line_of("direction"))
    volume = f.quantity("volume", "uL", required=False)
    duration = f.quantity("duration", "s", required=False)
    if (volume is None) == (duration is None):
        raise _StepError(f"{f.kind}: give either a volume or a duration", f.line)
    rate = f.quantity("rate", "uL/min") or 0.0
    if rate <= 0:
        raise _StepError(f"{f.kind}.rate: must be above 0 uL/min", f.line_of("rate"))
    return Flow(pump=f.text("pump"), rate_ul_min=rate, volume_ul=volume, duration_s=duration,
                direction=direction, reagent=f.text("reagent", False, reagent))  # type: ignore[arg-type]


def _channels(f: _Fields) -> tuple[ChannelSetting, ...]:
    value = f.raw("channels")
    if not isinstance(value, list) or not value:
        raise _StepError(f"{f.kind}.channels: a list of channels", f.line_of("channels"))
    lines = getattr(value, "lines", [f.line] * len(value))
    return tuple(_channel(item, line) for item, line in zip(value, lines, strict=True))


def _image(f: _Fields) -> Step:
    zones = f.raw("zones")
    if isinstance(zones, str):
        zones = [zones]
    if not isinstance(zones, list) or not zones or not all(isinstance(z, str) for z in zones):
        raise _StepError("image.zones: a list of capture zone names", f.line_of("zones"))
    return Image(zones=tuple(zones), channels=_channels(f),
                 fields_per_zone=f.integer("fields", 1),
                 field_spacing_um=f.quantity("field_spacing", "um", required=False) or 300.0,
                 autofocus=f.flag("autofocus"))


def _monitor(f: _Fields) -> Step:
    flow_data = f.raw("flow")
    flow = _flow(_Fields("monitor.flow", flow_data, getattr(flow_data, "line", f.line)))
    return Monitor(zone=f.text("zone"), channel=_channel(f.raw("channel"), f.line_of("channel")),
                   flow=flow, interval_s=f.quantity("interval", "s", required=False) or 30.0,
                   until_plateau=f.flag("until_plateau"))


def _wait(value: Any, line: int) -> Step:
    data = value if isinstance(value, dict) else {"duration": value}
    f = _Fields("wait", data, line)
    step = Wait(duration_s=f.quantity("duration", "s") or 0.0)
    f.check_unknown()
    return step


BUILDERS: dict[str, Callable[[_Fields], Step]] = {
    "prime": _prime,
    "flow": _flow,
    "image": _image,
    "monitor": _monitor,
    "valve": lambda f: Valve(valve=f.text("valve"), port=f.integer("port", 1)),
    "prompt": lambda f: Prompt(message=f.text("message")),
}


def _build(kind: str, value: Any, line: int, problems: list[Problem], path: str) -> Step:
    if kind in ("wait", "incubate"):
        return _wait(value, line)
    if kind == "prompt" and isinstance(value, str):
        return Prompt(message=value)
    if kind == "repeat":
        f = _Fields("repeat", value, line)
        inner = _steps(f.raw("steps"), path, problems, f.line_of("steps"))
        return Repeat(times=f.integer("times", 1), steps=tuple(inner))
    if kind in FLOW_ALIASES:
        f = _Fields(kind, value, line)
        step: Step = _flow(f, reagent=kind)
    elif kind in BUILDERS:
        f = _Fields(kind, value, line)
        step = BUILDERS[kind](f)
    else:
        known = ", ".join(sorted([*BUILDERS, *FLOW_ALIASES, "wait", "incubate", "repeat"]))
        raise _StepError(f"unknown step '{kind}'; known steps: {known}", line)
    f.check_unknown()
    return step


def _steps(items: Any, path: str, problems: list[Problem], line: int) -> list[Step]:
    if not isinstance(items, list) or not items:
        problems.append(Problem(path, line, "steps: a non-empty list of steps"))
        return []
    steps: list[Step] = []
    for number, (item, item_line) in enumerate(zip(items, items.lines, strict=True), 1):
        if not isinstance(item, dict) or len([k for k in item if k != "label"]) != 1:
            problems.append(Problem(path, item_line, f"step {number}: write one step per item, "
                                    "e.g. '- flow: {pump: ..., rate: ..., volume: ...}'"))
            continue
        kind = next(k for k in item if k != "label")
        try:
            step = _build(str(kind), item[kind], item.lines.get(kind, item_line), problems, path)
        except _StepError as exc:
            problems.append(Problem(path, exc.line or item_line, f"step {number}: {exc}"))
            continue
        label = str(item.get("label", ""))
        steps.append(_relabel(step, label or f"{number}. {kind}", item_line))
    return steps


def _relabel(step: Step, label: str, line: int) -> Step:
    return dataclasses.replace(step, label=label, line=line)


def _header(data: Any, path: str, problems: list[Problem]) -> None:
    version = data.get("schema_version", SCHEMA_VERSION)
    if version != SCHEMA_VERSION:
        problems.append(Problem(path, data.lines.get("schema_version", 1),
                                f"schema_version {version!r} is not supported (use 1)"))
    known = {"schema_version", "name", "description", "parameters", "steps"}
    for key in data:
        if key not in known:
            problems.append(Problem(path, data.lines[key], f"unknown top-level field '{key}'"))


def parse_protocol(raw: bytes | str, path: str) -> Protocol:
    """Parse protocol text; raise SourceError listing every problem."""
    data = parse_yaml(raw, path, "protocol file")
    if not isinstance(data, LineDict):
        raise SourceError([Problem(path, getattr(data, "line", 1),
                                   "a protocol file is a mapping with 'name' and 'steps'")])
    problems: list[Problem] = []
    _header(data, path, problems)
    steps = _steps(data.get("steps"), path, problems, data.lines.get("steps", data.line))
    if problems:
        raise SourceError(problems)
    text = raw.decode("utf-8") if isinstance(raw, bytes) else raw
    params = data.get("parameters") or {}
    return Protocol(
        name=str(data.get("name", Path(path).stem)),
        steps=tuple(steps),
        description=str(data.get("description", "")),
        parameters=tuple((str(k), str(v)) for k, v in dict(params).items()),
        source=path,
        source_text=text,
        sha256=hashlib.sha256(text.encode("utf-8")).hexdigest(),
    )


def load_protocol(path: str | Path) -> Protocol:
    """Read and parse a protocol file."""
    name = str(path)
    try:
        raw = Path(path).read_bytes()
    except OSError as exc:
        raise SourceError([Problem(name, 0, f"cannot read protocol: {exc.strerror or exc}")]) from exc
    return parse_protocol(raw, name)
