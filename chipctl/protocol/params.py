"""Run parameters declared in a protocol (sample name, dilution, operator) and the {name}
placeholders that prompts and labels use to show them.

```yaml
parameters:
  sample: {description: sample name}            # no default: required when the run starts
  dilution: {default: "1:10"}
  operator: ""                                  # shorthand for {default: ""}
```
"""

from __future__ import annotations

import re
import string

from chipctl.config.sourcefile import LineDict, Problem
from chipctl.protocol.fields import Fields, StepError
from chipctl.protocol.model import Parameter, Prompt, Repeat, Step


def parse_parameters(data: LineDict, problems: list[Problem], path: str) -> tuple[Parameter, ...]:
    """The file's `parameters:` declarations; problems are appended to `problems`."""
    value = data.get("parameters")
    if value is None:
        return ()
    if not isinstance(value, LineDict):
        problems.append(Problem(path, data.lines["parameters"], "parameters: a mapping of "
                                "name: {default: ..., description: ...}"))
        return ()
    params = []
    for name, spec in value.items():
        line = value.lines.get(name, value.line)
        if not isinstance(spec, dict):  # shorthand  name: default
            params.append(Parameter(str(name), None if spec is None else str(spec), "", line))
            continue
        try:
            f = Fields(f"parameters.{name}", spec, line)
            default = f.raw("default", required=False)
            param = Parameter(str(name), None if default is None else str(default),
                              f.text("description", required=False), line)
            f.check_unknown()
        except StepError as exc:
            problems += [Problem(path, e.line or line, str(e)) for e in exc.errors]
            continue
        params.append(param)
    return tuple(params)


_FIELD = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,63}")
_PLAIN = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]{0,63})\}")


def placeholders(text: str) -> set[str]:
    """The {name} placeholders of `text`; ValueError for anything but a plain `{name}` (no
    format spec, conversion, index or attribute: `{sample:>200000000}` would write 200 MB)."""
    names = set()
    for _, name, spec, conversion in string.Formatter().parse(text):
        if name is None:
            continue
        if not _FIELD.fullmatch(name) or spec or conversion:
            shown = "{" + name + (f"!{conversion}" if conversion else "") + (
                f":{spec}" if spec else "") + "}"
            raise ValueError(f"{shown[:40]!r} is not a plain {{name}} placeholder")
        names.add(name)
    return names


def fill(text: str, values: dict[str, str]) -> str:
    """`text` with each plain {name} replaced by its value ({{ and }} for braces); unknown
    names stay as written. Never a format spec: see placeholders()."""
    def one(match: re.Match[str]) -> str:
        return values.get(match.group(1), match.group(0))
    parts = text.split("{{")
    return "{".join(_PLAIN.sub(one, part).replace("}}", "}") for part in parts)


def check_placeholders(steps: list[Step], params: tuple[Parameter, ...]) -> list[tuple[Step, str]]:
    """Steps whose prompt or label names an undeclared {parameter}, or has a placeholder that
    is not a plain {name}, with the message."""
    declared = {p.name for p in params}
    out = []
    for step in _all_steps(steps):
        texts = [step.label] + ([step.message] if isinstance(step, Prompt) else [])
        for text in texts:
            try:
                names = placeholders(text)
            except ValueError as exc:
                out.append((step, f"cannot read the text {text[:60]!r}: {exc} "
                            "(write {{ for {)"))
                continue
            for name in sorted(names - declared):
                out.append((step, f"'{{{name}}}' is not a declared parameter"
                            + (f" (declared: {', '.join(sorted(declared))})" if declared else "")))
    return out


def _all_steps(steps: list[Step] | tuple[Step, ...]) -> list[Step]:
    out: list[Step] = []
    for step in steps:
        out.append(step)
        if isinstance(step, Repeat):
            out.extend(_all_steps(step.steps))
    return out
