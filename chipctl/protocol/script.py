"""Python scripted protocols: a small builder that makes the same typed, immutable steps as files.

```python
from chipctl.protocol.script import ProtocolBuilder

p = ProtocolBuilder("Rate sweep", description="Capture at three flow rates")
p.parameter("sample", description="sample name")            # required at run time
p.prime("buffer_pump", volume="20 uL", rate="50 uL/min")
for rate in ("2 uL/min", "5 uL/min", "10 uL/min"):
    p.sample("sample_pump", rate=rate, volume="10 uL")
    p.image(["CD63"], channels=[p.channel("AF647", exposure="50 ms", power="60 %")])
protocol = p.build()
```

Every method takes the same fields, with the same unit strings, as the YAML step of that name,
and goes through the same parser, so a script and a file mean exactly the same thing. Steps
remember the script line that made them, so validation names it. `load_script` runs a script
(that is the point of a script: unlike a protocol file it is code, and it is executed) in a
child process with a time and memory limit (chipctl.protocol.sandbox), gets back the builder's
recipe as plain data and parses it here; any error is "FILE:LINE: message", never a traceback.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import runpy
import sys
import traceback
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from chipctl.config.sourcefile import Problem, SourceError, clean_text
from chipctl.protocol.fields import StepError
from chipctl.protocol.loader import (
    MAX_STEPS,
    _Parser,
    check_placeholders,
    count_steps,
    load_protocol,
)
from chipctl.protocol.model import Parameter, Protocol, Repeat, Step
from chipctl.protocol.sandbox import run_script

_SKIP = {str(Path(__file__).resolve()), str(Path(contextlib.__file__).resolve())}
_RECIPES: dict[int, dict[str, Any]] = {}  # id(Protocol) -> the recipe that built it


def _caller() -> tuple[str, int]:
    """File and line of the first frame outside this module (the script's call)."""
    frame = sys._getframe(1)
    while frame is not None and str(Path(frame.f_code.co_filename).resolve()) in _SKIP:
        frame = frame.f_back  # type: ignore[assignment]
    if frame is None:
        return "<script>", 0
    return frame.f_code.co_filename, frame.f_lineno


class ProtocolBuilder:
    """Builds a Protocol step by step; `build()` returns it (immutable)."""

    def __init__(self, name: str, description: str = "") -> None:
        self.name, self.description = clean_text(str(name)), clean_text(str(description))
        self.source, _ = _caller()
        self._parser = _Parser(self.source)
        self._stack: list[list[Step]] = [[]]
        self._recipe: list[list[dict[str, Any]]] = [[]]
        self._prefixes: list[str] = [""]
        self._params: list[Parameter] = []

    # -- plumbing -----------------------------------------------------------------------------
    def _add(self, kind: str, value: Any, label: str | None) -> ProtocolBuilder:
        path, line = _caller()
        number = f"{self._prefixes[-1]}{len(self._stack[-1]) + 1}"
        try:
            step = self._parser.build(kind, value, line, number)
        except StepError as exc:
            raise SourceError([Problem(path, line, f"{kind}: {error}")
                               for error in exc.errors]) from None
        self._stack[-1].append(_labelled(step, label or f"{number}. {kind}", line))
        self._recipe[-1].append({"kind": kind, "value": value, "line": line,
                                 "label": label or f"{number}. {kind}"})
        return self

    @staticmethod
    def _fields(**values: Any) -> dict[str, Any]:
        return {key: value for key, value in values.items() if value is not None}

    # -- parameters ---------------------------------------------------------------------------
    def parameter(self, name: str, default: str | None = None, description: str = "") -> str:
        """Declare a run parameter; returns '{name}' for use in prompts and labels."""
        _, line = _caller()
        self._params.append(Parameter(name, default, description, line))
        return "{" + name + "}"

    @staticmethod
    def channel(channel: str, exposure: str = "50 ms", power: str = "50 %") -> dict[str, Any]:
        """One imaging channel: LED channel, exposure and power."""
        return {"channel": channel, "exposure": exposure, "power": power}

    # -- fluidics -----------------------------------------------------------------------------
    def prime(self, pump: str, volume: str, rate: str, label: str | None = None) -> ProtocolBuilder:
        """Fill the lines from `pump` up to the chip."""
        return self._add("prime", {"pump": pump, "volume": volume, "rate": rate}, label)

    def flow(self, pump: str, rate: str, volume: str | None = None, duration: str | None = None,
             direction: str = "infuse", reagent: str | None = None,
             label: str | None = None, kind: str = "flow",
             labels: dict[str, str] | None = None) -> ProtocolBuilder:
        """Pump by volume or for a duration (infuse or withdraw); a stain's `labels` say which
        marker's antibody carries which dye, e.g. {"CD63": "AF555"}."""
        fields = self._fields(pump=pump, rate=rate, volume=volume, duration=duration,
                              direction=direction, reagent=reagent, labels=labels)
        return self._add(kind, fields, label)

    def sample(self, pump: str, rate: str, volume: str | None = None,
               duration: str | None = None, label: str | None = None) -> ProtocolBuilder:
        """Flow the sample."""
        return self.flow(pump, rate, volume, duration, label=label, kind="sample")

    def block(self, pump: str, rate: str, volume: str | None = None,
              duration: str | None = None, label: str | None = None) -> ProtocolBuilder:
        """Flow blocking buffer."""
        return self.flow(pump, rate, volume, duration, label=label, kind="block")

    def stain(self, pump: str, rate: str, volume: str | None = None,
              duration: str | None = None, label: str | None = None,
              labels: dict[str, str] | None = None) -> ProtocolBuilder:
        """Flow the detection antibodies (`labels`: marker -> dye, e.g. {"CD63": "AF555"})."""
        return self.flow(pump, rate, volume, duration, label=label, kind="stain", labels=labels)

    def wash(self, pump: str, rate: str, volume: str | None = None,
             duration: str | None = None, label: str | None = None) -> ProtocolBuilder:
        """Flow wash buffer."""
        return self.flow(pump, rate, volume, duration, label=label, kind="wash")

    def valve(self, valve: str, port: int, label: str | None = None) -> ProtocolBuilder:
        """Turn a selector valve to a port."""
        return self._add("valve", {"valve": valve, "port": port}, label)

    def wait(self, duration: str, label: str | None = None) -> ProtocolBuilder:
        """Wait with the fluidics still."""
        return self._add("wait", {"duration": duration}, label)

    def incubate(self, duration: str, label: str | None = None) -> ProtocolBuilder:
        """Incubate (same as wait)."""
        return self._add("incubate", {"duration": duration}, label)

    # -- imaging and operator -----------------------------------------------------------------
    def image(self, zones: list[str] | str, channels: list[dict[str, Any] | str],
              fields: int | None = None, grid: tuple[int, int] | None = None,
              positions: list[tuple[str, str]] | None = None, field_spacing: str | None = None,
              autofocus: bool = False, label: str | None = None, frames: int | None = None
              ) -> ProtocolBuilder:
        """Image capture zones in channels; fields, a grid or positions per zone; `frames`
        exposures of each field and channel, summed and counted once."""
        value = self._fields(zones=list(zones) if not isinstance(zones, str) else zones,
                             channels=list(channels), fields=fields,
                             grid=list(grid) if grid else None,
                             positions=[list(p) for p in positions] if positions else None,
                             field_spacing=field_spacing, autofocus=autofocus, frames=frames)
        return self._add("image", value, label)

    def monitor(self, zone: str, channel: dict[str, Any] | str,
                flow: dict[str, Any] | None = None, interval: str = "30 s",
                until_plateau: bool | dict[str, Any] = False,
                alongside: list[dict[str, Any]] | None = None,
                label: str | None = None, incubate: str | None = None) -> ProtocolBuilder:
        """Count on `zone` while `flow` ({pump, rate, volume|duration}) runs, with the
        `alongside` flows ([{pump, rate}], the file's `with:`) running for as long; or, with
        `incubate` ("20 min") and no flow, while the fluid stands."""
        value: dict[str, Any] = {"zone": zone, "channel": channel, "interval": interval,
                                 "until_plateau": until_plateau}
        if flow is not None:
            value["flow"] = dict(flow)
        if incubate is not None:
            value["incubate"] = incubate
        if alongside:
            value["with"] = [dict(item) for item in alongside]
        return self._add("monitor", value, label)

    def prompt(self, message: str, label: str | None = None) -> ProtocolBuilder:
        """Ask the operator and wait for confirmation."""
        return self._add("prompt", {"message": message}, label)

    @contextlib.contextmanager
    def repeat(self, times: int, label: str | None = None) -> Iterator[ProtocolBuilder]:
        """Steps added inside `with p.repeat(3):` run three times."""
        _, line = _caller()
        number = f"{self._prefixes[-1]}{len(self._stack[-1]) + 1}"
        self._stack.append([])
        self._recipe.append([])
        self._prefixes.append(f"{number}.")
        try:
            yield self
        finally:
            inner = self._stack.pop()
            inner_recipe = self._recipe.pop()
            self._prefixes.pop()
        if not isinstance(times, int) or isinstance(times, bool) or times < 1:
            raise SourceError([Problem(self.source, line, f"repeat: times must be a whole "
                                       f"number >= 1, got {times!r}")])
        if not inner:
            raise SourceError([Problem(self.source, line, "repeat: no steps inside")])
        self._stack[-1].append(Repeat(label=label or f"{number}. repeat", line=line,
                                      times=times, steps=tuple(inner)))
        self._recipe[-1].append({"repeat": times, "label": label or f"{number}. repeat",
                                 "line": line, "steps": inner_recipe})

    # -- result -------------------------------------------------------------------------------
    def build(self) -> Protocol:
        """The finished protocol; SourceError if a prompt names an undeclared parameter."""
        steps = self._stack[0]
        params = tuple(self._params)
        problems = [Problem(self.source, step.line, f"{step.label}: {message}")
                    for step, message in check_placeholders(steps, params)]
        if not steps:
            problems.append(Problem(self.source, 0, "the protocol has no steps"))
        if count_steps(steps) > MAX_STEPS:
            problems.append(Problem(self.source, 0, f"{count_steps(steps):,} steps once every "
                                    f"repeat is unrolled; at most {MAX_STEPS:,}"))
        if problems:
            raise SourceError(problems)
        text = _read_text(self.source)
        protocol = Protocol(name=self.name, steps=tuple(steps), description=self.description,
                            parameters=params, source=self.source, source_text=text,
                            sha256=hashlib.sha256(text.encode("utf-8")).hexdigest())
        _RECIPES[id(protocol)] = self.recipe()
        return protocol

    def recipe(self) -> dict[str, Any]:
        """What was built, as plain data: name, description, parameters and the step fields
        (as a protocol file holds them) with their lines and labels."""
        return {"name": self.name, "description": self.description,
                "parameters": [[p.name, p.default, p.description, p.line] for p in self._params],
                "steps": self._recipe[0]}


def _labelled(step: Step, label: str, line: int) -> Step:
    return dataclasses.replace(step, label=label, line=line)


def _read_text(path: str) -> str:
    try:
        return Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return ""


def _script_line(exc: BaseException, path: str) -> int:
    """The deepest line of `path` in the exception's traceback (0 if none)."""
    target = str(Path(path).resolve())
    line = 0
    for frame in traceback.extract_tb(exc.__traceback__):
        if str(Path(frame.filename).resolve()) == target:
            line = frame.lineno or 0
    return line


def execute_script(path: str | Path) -> dict[str, Any]:
    """Run a Python scripted protocol here and return the recipe of the protocol it defines as
    `protocol`. This executes the script: only the sandbox's child process calls it. Any error
    in the script becomes a SourceError naming its file and line."""
    name = str(path)
    if not Path(path).is_file():
        raise SourceError([Problem(name, 0, "cannot read protocol script: no such file")])
    try:
        namespace = runpy.run_path(name, run_name="__chipctl_protocol__")
    except SourceError:
        raise
    except SyntaxError as exc:
        raise SourceError([Problem(name, exc.lineno or 0, f"syntax error: {exc.msg}")]) from None
    except SystemExit as exc:
        raise SourceError([Problem(name, 0, f"the script exited ({exc.code})")]) from None
    except Exception as exc:  # noqa: BLE001 - any error in user code is reported, not raised
        message = f"{type(exc).__name__}: {exc}"
        raise SourceError([Problem(name, _script_line(exc, name), message)]) from None
    result = namespace.get("protocol")
    if isinstance(result, ProtocolBuilder):
        result.build()
        return result.recipe()
    if not isinstance(result, Protocol) or id(result) not in _RECIPES:
        raise SourceError([Problem(name, 1, "a protocol script must set `protocol = "
                                   "builder.build()` (a ProtocolBuilder's protocol)")])
    return _RECIPES[id(result)]


def load_script(path: str | Path) -> Protocol:
    """Run a Python scripted protocol in a child process (time and memory limited) and return
    the Protocol it defines as `protocol`, parsed here from the plain data it hands back."""
    name = str(path)
    if not Path(path).is_file():
        raise SourceError([Problem(name, 0, "cannot read protocol script: no such file")])
    return run_script(path)


def load_any(path: str | Path) -> Protocol:
    """A protocol file (.yaml, parsed only) or a Python scripted protocol (.py, executed)."""
    if str(path).endswith(".py"):
        return load_script(path)
    return load_protocol(path)
