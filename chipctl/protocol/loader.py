"""Protocol files (YAML) to a Protocol. Loading is parsing only: it never executes code.

```yaml
schema_version: 1
name: Quickstart
parameters:
  sample: {description: sample name}          # no default: required at run time
  operator: {default: "", description: who ran it}
steps:
  - prime: {pump: buffer_pump, volume: 20 uL, rate: 50 uL/min}
  - sample: {pump: sample_pump, rate: 5 uL/min, volume: 25 uL}
  - incubate: 2 min
  - image: {zones: [CD63], channels: [{channel: AF647, exposure: 50 ms, power: 60 %}]}
  - prompt: "Store the chip of {sample} at 4 °C"
```
Every problem is collected (not just the first) and reported with file and line. Step kinds and
their fields are documented in protocols/README.md.
"""

from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

from chipctl.config.sourcefile import (
    LineDict,
    LineList,
    Problem,
    SourceError,
    parse_yaml,
    read_bounded,
)
from chipctl.protocol.fields import MAX_COUNT, Fields, StepError, StepErrors, combine, read_labels
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
from chipctl.protocol.params import check_placeholders, parse_parameters

SCHEMA_VERSION = 1
MAX_STEPS = 100_000  # steps once every repeat is unrolled: more is no plan a bench can run
MAX_LABEL = 200  # characters of a label or a name
MAX_EXPOSURES = 100  # exposures of one field in one channel (image: frames)
FLOW_ALIASES = ("sample", "block", "stain", "wash", "buffer")
TOP_LEVEL = ("schema_version", "name", "description", "parameters", "steps")
_FLOW_FIELDS = ("pump", "rate", "volume", "duration", "direction", "reagent", "labels")
FIELDS: dict[str, tuple[str, ...]] = {
    "prime": ("pump", "volume", "rate"),
    "flow": _FLOW_FIELDS,
    **{alias: _FLOW_FIELDS for alias in FLOW_ALIASES},
    "image": ("zones", "channels", "fields", "grid", "positions", "field_spacing", "autofocus",
              "frames"),
    "monitor": ("zone", "channel", "flow", "with", "incubate", "interval", "until_plateau"),
    "valve": ("valve", "port"),
    "repeat": ("times", "steps"),
}


def _channel(value: Any, line: int) -> ChannelSetting:
    if isinstance(value, str):
        return ChannelSetting(value)
    f = Fields("channel", value, line, ("channel", "exposure", "power"))
    setting = ChannelSetting(
        channel=f.text("channel"),
        exposure_ms=f.quantity("exposure", "ms", required=False, default=50.0) or 0.0,
        power_pct=f.quantity("power", "%", required=False, default=50.0) or 0.0,
    )
    f.check_unknown()
    return setting


def _prime(f: Fields) -> Step:
    return Prime(pump=f.text("pump"), volume_ul=f.quantity("volume", "uL") or 0.0,
                 rate_ul_min=_rate(f))


def _rate(f: Fields) -> float:
    rate = f.quantity("rate", "uL/min") or 0.0
    unreadable = [error for error in f.noted if error.key == "rate"]
    if unreadable:
        raise unreadable[-1]
    if rate <= 0:
        raise f.error("rate", "must be above 0 uL/min")
    return rate


def _flow(f: Fields, reagent: str = "") -> Flow:
    direction = f.text("direction", required=False, default="infuse")
    if direction not in ("infuse", "withdraw"):
        raise f.error("direction", f"infuse or withdraw, not {direction!r}")
    volume = f.quantity("volume", "uL", required=False)
    duration = f.quantity("duration", "s", required=False)
    if ("volume" in f.data) == ("duration" in f.data):
        raise StepError(f"{f.kind}: give either a volume or a duration (not both)", f.line)
    return Flow(pump=f.text("pump"), rate_ul_min=_rate(f), volume_ul=volume, duration_s=duration,
                direction=direction, reagent=f.text("reagent", False, reagent),  # type: ignore[arg-type]
                labels=read_labels(f))



def _channels(f: Fields) -> tuple[ChannelSetting, ...]:
    value = f.raw("channels")
    if not isinstance(value, list) or not value:
        raise f.error("channels", "a list of channels, e.g. "
                      "[{channel: AF647, exposure: 50 ms, power: 60 %}]")
    lines = getattr(value, "lines", [f.line] * len(value))
    return tuple(_channel(item, line) for item, line in zip(value, lines, strict=True))


def _grid(f: Fields) -> tuple[int, int] | None:
    value = f.raw("grid", required=False)
    if value is None:
        return None
    if (not isinstance(value, list) or len(value) != 2
            or not all(isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in value)):
        raise f.error("grid", f"[rows, columns] as two whole numbers, got {value!r}"[:200])
    if value[0] * value[1] > MAX_COUNT:
        raise f.error("grid", f"{value[0]} x {value[1]} fields per zone; at most {MAX_COUNT}")
    return int(value[0]), int(value[1])


def _positions(f: Fields) -> tuple[tuple[float, float], ...]:
    value = f.entries("positions", "a list of [x, y] offsets from the zone centre, "
                      "e.g. [[0 um, 0 um], [200 um, 0 um]]")
    if len(value) > MAX_COUNT:
        raise f.error("positions", f"{len(value)} positions; at most {MAX_COUNT}")
    out = []
    for item in value:
        if not isinstance(item, list) or len(item) != 2:
            raise f.error("positions", f"each position is [x, y], got {item!r}"[:200])
        out.append(tuple(_signed_um(f, "positions", v) for v in item))
    return tuple(out)  # type: ignore[arg-type]


def _signed_um(f: Fields, key: str, value: Any) -> float:
    if isinstance(value, str) and value.strip().startswith("-"):
        return -f.convert(key, value.strip()[1:], "um")
    return f.convert(key, value, "um")


def _image(f: Fields) -> Step:
    zones = f.raw("zones")
    if isinstance(zones, str):
        zones = [zones]
    if not isinstance(zones, list) or not zones or not all(isinstance(z, str) for z in zones):
        raise f.error("zones", "a list of capture zone names, e.g. [CD9, CD63]")
    grid, positions = _grid(f), _positions(f)
    if "fields" in f.data and (grid or positions) or grid and positions:
        raise StepError("image: give only one of fields, grid and positions", f.line)
    return Image(zones=tuple(zones), channels=_channels(f),
                 fields_per_zone=f.integer("fields", 1), grid=grid, positions=positions,
                 field_spacing_um=f.quantity("field_spacing", "um", False, 350.0) or 0.0,
                 autofocus=f.flag("autofocus"),
                 exposures=f.integer("frames", 1, maximum=MAX_EXPOSURES))


def _plateau(f: Fields) -> dict[str, Any]:
    value = f.raw("until_plateau", required=False)
    if value is None or isinstance(value, bool):
        return {"until_plateau": bool(value)}
    p = Fields("monitor.until_plateau", value, f.line_of("until_plateau"))
    options = {"until_plateau": True, "plateau_points": p.integer("points", 4, minimum=2),
               "plateau_tolerance_pct": p.quantity("tolerance", "%", False, 5.0),
               "plateau_min_count": p.integer("min_count", 10, minimum=0, maximum=10**9)}
    p.check_unknown()
    return options


def _monitor(f: Fields) -> Step:
    interval = f.quantity("interval", "s", False, 30.0) or 0.0
    if interval <= 0:
        raise f.error("interval", "must be above 0 s")
    channel = _channel(f.raw("channel"), f.line_of("channel"))
    if "incubate" in f.data:
        return _incubating_monitor(f, channel, interval)
    flow_data = f.raw("flow")
    flow_fields = Fields("monitor.flow", flow_data, f.line_of("flow"), _FLOW_FIELDS)
    flow = _flow(flow_fields, reagent="sample")
    flow_fields.check_unknown()
    return Monitor(zone=f.text("zone"), channel=channel, flow=flow, interval_s=interval,
                   alongside=_alongside(f, flow), **_plateau(f))


def _incubating_monitor(f: Fields, channel: ChannelSetting, interval: float) -> Step:
    """A monitor with nothing flowing: `incubate: 20 min` instead of `flow:`."""
    for key in ("flow", "with"):
        if key in f.data:
            raise f.error(key, "a monitor either flows or incubates: give 'flow' (and "
                          "'with') or 'incubate', not both")
    duration = f.quantity("incubate", "s") or 0.0
    if duration <= 0:
        raise f.error("incubate", "must be above 0 s, e.g. 'incubate: 20 min'")
    return Monitor(zone=f.text("zone"), channel=channel, interval_s=interval,
                   incubate_s=duration, **_plateau(f))


def _alongside(f: Fields, main: Flow) -> tuple[Flow, ...]:
    """Flows that run with the main one: [{pump, rate, reagent?}], for its whole duration."""
    flows = []
    for item in f.entries("with", "a list of flows to run alongside, e.g. "
                          "[{pump: stain_pump, rate: 0.5 uL/min}]"):
        g = Fields("monitor.with", item, f.line_of("with"), ("pump", "rate", "reagent", "labels"))
        pump = g.text("pump")
        if pump == main.pump:
            raise g.error("pump", f"{pump} already drives the main flow")
        flows.append(Flow(pump=pump, rate_ul_min=_rate(g), duration_s=main.planned_duration_s,
                          reagent=g.text("reagent", False, ""), labels=read_labels(g)))
        g.check_unknown()
    return tuple(flows)


def _wait(value: Any, line: int, kind: str) -> Step:
    data = value if isinstance(value, dict) else {"duration": value}
    f = Fields(kind, data, line, ("duration",))
    step = Wait(duration_s=f.quantity("duration", "s") or 0.0)
    f.check_unknown()
    return step


def _prompt(value: Any, line: int) -> Step:
    if isinstance(value, str):
        return Prompt(message=value)
    f = Fields("prompt", value, line)
    step = Prompt(message=f.text("message"))
    f.check_unknown()
    return step


BUILDERS: dict[str, Callable[[Fields], Step]] = {
    "prime": _prime,
    "flow": _flow,
    "image": _image,
    "monitor": _monitor,
    "valve": lambda f: Valve(valve=f.text("valve"), port=f.integer("port", 1, maximum=99)),
}
KNOWN_STEPS = sorted([*BUILDERS, *FLOW_ALIASES, "wait", "incubate", "prompt", "repeat"])


class _Parser:
    """Collects every problem of one file while building its steps."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.problems: list[Problem] = []

    def problem(self, line: int, message: str) -> None:
        self.problems.append(Problem(self.path, line, message))

    def build(self, kind: str, value: Any, line: int, number: str) -> Step:
        if kind in ("wait", "incubate"):
            return _wait(value, line, kind)
        if kind == "prompt":
            return _prompt(value, line)
        if kind not in FIELDS:
            raise StepError(f"unknown step '{kind}'; known steps: {', '.join(KNOWN_STEPS)}", line)
        f = Fields(kind, value, line, FIELDS[kind])
        try:
            if kind == "repeat":
                inner = self.steps(f.raw("steps"), f.line_of("steps"), f"{number}.")
                step: Step = Repeat(times=f.integer("times", 1), steps=tuple(inner))
            elif kind in FLOW_ALIASES:
                step = _flow(f, reagent=kind)
            else:
                step = BUILDERS[kind](f)
            f.check_unknown()
        except StepErrors:
            raise
        except StepError as exc:
            raise combine(f, exc) from None
        return step

    def steps(self, items: Any, line: int, prefix: str = "") -> list[Step]:
        if not isinstance(items, LineList) or not items:
            self.problem(line, "steps: a non-empty list of steps")
            return []
        steps: list[Step] = []
        for index, (item, item_line) in enumerate(zip(items, items.lines, strict=True), 1):
            number = f"{prefix}{index}"
            keys = [k for k in item if k != "label"] if isinstance(item, dict) else []
            if len(keys) != 1:
                self.problem(item_line, f"step {number}: write one step per item, "
                             "e.g. '- flow: {pump: ..., rate: ..., volume: ...}'")
                continue
            kind = keys[0]
            try:
                step = self.build(str(kind), item[kind], item.lines.get(kind, item_line), number)
            except StepError as exc:
                for error in sorted(exc.errors, key=lambda e: e.line):
                    self.problem(error.line or item_line, f"step {number} ({kind}): {error}")
                continue
            label = item.get("label")
            label = str(label) if label not in (None, "") else f"{number}. {kind}"
            if len(label) > MAX_LABEL:
                self.problem(item.lines.get("label", item_line),
                             f"step {number} ({kind}): label longer than {MAX_LABEL} characters")
                continue
            steps.append(dataclasses.replace(step, label=label, line=item_line))
        return steps


def _header(data: LineDict, parser: _Parser) -> None:
    version = data.get("schema_version", SCHEMA_VERSION)
    if version != SCHEMA_VERSION:
        parser.problem(data.lines.get("schema_version", 1),
                       f"schema_version {version!r} is not supported (this chipctl reads "
                       f"{SCHEMA_VERSION})")
    for key in ("name", "description"):
        if key in data and not isinstance(data[key], str | int | float):
            parser.problem(data.lines[key], f"{key}: expected text, got {data[key]!r}"[:200])
    if len(str(data.get("name", ""))) > MAX_LABEL:
        parser.problem(data.lines["name"], f"name: longer than {MAX_LABEL} characters")
    for key in data:
        if key not in TOP_LEVEL:
            parser.problem(data.lines[key], f"unknown top-level field '{key}'; known fields: "
                           f"{', '.join(TOP_LEVEL)}")


def _whole_file_line(raw: bytes | str) -> int:
    """The line a whole-file problem is about: the first binary or non-UTF-8 byte, else 1."""
    if isinstance(raw, str):
        return 1
    bad = raw.find(b"\x00")
    if bad < 0:
        try:
            raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            bad = exc.start
    return raw[:bad].count(b"\n") + 1 if bad > 0 else 1


def _parse_yaml(raw: bytes | str, path: str) -> Any:
    """parse_yaml, with whole-file problems (empty, binary, not UTF-8) placed on a line."""
    try:
        return parse_yaml(raw, path, "protocol file")
    except SourceError as exc:
        line = _whole_file_line(raw)
        raise SourceError([Problem(p.path, p.line or line, p.message)
                           for p in exc.problems]) from None


def parse_protocol(raw: bytes | str, path: str) -> Protocol:
    """Parse protocol text; raise SourceError listing every problem."""
    data = _parse_yaml(raw, path)
    if not isinstance(data, LineDict):
        raise SourceError([Problem(path, getattr(data, "line", 1),
                                   "a protocol file is a mapping with 'name' and 'steps'")])
    parser = _Parser(path)
    _header(data, parser)
    params = parse_parameters(data, parser.problems, path)
    steps = parser.steps(data.get("steps"), data.lines.get("steps", data.line))
    for step, message in check_placeholders(steps, params):
        parser.problem(step.line, f"{step.label}: {message}")
    unrolled = count_steps(steps)
    if unrolled > MAX_STEPS:
        parser.problem(data.lines.get("steps", 1), f"steps: {unrolled:,} steps once every "
                       f"repeat is unrolled; at most {MAX_STEPS:,}")
    text = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else raw
    protocol = Protocol(
        name=str(data.get("name", Path(path).stem)),
        steps=tuple(steps),
        description=str(data.get("description", "")),
        parameters=params,
        source=path,
        source_text=text,
        sha256=hashlib.sha256(text.encode("utf-8")).hexdigest(),
    )
    if parser.problems:
        raise ProtocolErrors(parser.problems, protocol)
    return protocol


def count_steps(steps: list[Step] | tuple[Step, ...]) -> int:
    """Steps once every repeat is unrolled, counted without unrolling them."""
    return sum(step.times * count_steps(step.steps) if isinstance(step, Repeat) else 1
               for step in steps)


class ProtocolErrors(SourceError):
    """Problems in a protocol file; `partial` holds the steps that could be read, so that a
    validation can also check them against a bench and report everything at once."""

    def __init__(self, problems: list[Problem], partial: Protocol) -> None:
        super().__init__(problems)
        self.partial = partial


def load_protocol(path: str | Path) -> Protocol:
    """Read and parse a protocol file (YAML). This never executes code: see script.py for
    Python scripted protocols. Only a regular file of at most 1 MiB is read."""
    return parse_protocol(read_bounded(path, "protocol"), str(path))
