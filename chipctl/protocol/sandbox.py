"""Run a Python scripted protocol in a child process, with a time and a memory limit, and get
back what it built as plain data (never objects): its recipe, the same step fields a protocol
file holds, which this process then parses itself like a file.

A script is code: inside the controller it could patch the validator out or leave a thread or
a process behind. In its own process (its own session, so whatever it starts is killed with
it) it can do neither to the controller; `validate` and `run` only ever see the steps parsed
here. `python -m chipctl.protocol.sandbox SCRIPT RESULT` is the child's side.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import os
import signal
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from chipctl.config.sourcefile import Problem, SourceError, clean_text, read_bounded
from chipctl.protocol.fields import MAX_COUNT, StepError
from chipctl.protocol.loader import _Parser
from chipctl.protocol.model import Parameter, Protocol, Repeat, Step

TIME_LIMIT_S = 30.0
MEMORY_LIMIT = 2 << 30  # address space of the child, bytes
MAX_RESULT = 4 << 20  # the recipe it may hand back, bytes


def run_script(path: str | Path, time_limit_s: float = TIME_LIMIT_S,
               memory_limit: int = MEMORY_LIMIT) -> Protocol:
    """The Protocol a script builds, run in a child process; SourceError for any problem."""
    name = str(path)
    text = read_bounded(path, "protocol script").decode("utf-8", "replace")
    with tempfile.TemporaryDirectory(prefix="chipctl-script-") as folder:
        result = Path(folder) / "result.json"
        outcome = _run_child(name, result, time_limit_s, memory_limit)
        if outcome:
            raise SourceError([Problem(name, 0, outcome)])
        try:
            data = json.loads(read_bounded(result, "script result", MAX_RESULT))
        except (SourceError, ValueError):
            raise SourceError([Problem(name, 0, "the script's process ended without handing "
                                       "back a protocol")]) from None
    if "problems" in data:
        raise SourceError([Problem(name, int(p[0]), clean_text(str(p[1])))
                           for p in data["problems"]])
    return _protocol(data, name, text)


def _limits(memory_limit: int, time_limit_s: float) -> None:  # pragma: no cover - in the child
    import resource

    resource.setrlimit(resource.RLIMIT_AS, (memory_limit, memory_limit))
    cpu = int(time_limit_s) + 1
    resource.setrlimit(resource.RLIMIT_CPU, (cpu, cpu))


def _run_child(path: str, result: Path, time_limit_s: float, memory_limit: int) -> str:
    """Run the child; '' when it finished, else why it did not. Its output goes to a file, not
    a pipe, so a process it left behind holding the pipe cannot keep this one waiting."""
    command = [sys.executable, "-m", "chipctl.protocol.child", path, str(result)]
    posix = os.name == "posix"
    with open(result.with_suffix(".err"), "w+b") as err:
        child = subprocess.Popen(  # noqa: S603 - our own interpreter and module
            command, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=err,
            start_new_session=posix, cwd=str(Path(path).resolve().parent),
            preexec_fn=(lambda: _limits(memory_limit, time_limit_s)) if posix else None)
        try:
            child.wait(timeout=time_limit_s)
        except subprocess.TimeoutExpired:
            return f"the script ran longer than {time_limit_s:g} s and was stopped"
        finally:
            _kill(child)  # and anything it started in its session
        err.seek(0)
        output = err.read(1 << 16)
    if child.returncode != 0:
        lines = output.decode("utf-8", "replace").strip().splitlines()[-1:]
        detail = "out of memory" if b"MemoryError" in output else (
            f"exit status {child.returncode}")
        return f"the script's process failed ({detail}{': ' + lines[0][:200] if lines else ''})"
    return ""


def _kill(child: subprocess.Popen[bytes]) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError, OSError):
        if os.name == "posix":
            os.killpg(child.pid, signal.SIGKILL)
        else:  # pragma: no cover
            child.kill()
    with contextlib.suppress(subprocess.TimeoutExpired):
        child.wait(timeout=5)


# -- the recipe, parsed here ---------------------------------------------------------------------
def _protocol(data: dict[str, Any], path: str, text: str) -> Protocol:
    try:
        parser = _Parser(path)
        steps = _steps(parser, data["steps"], "")
        params = tuple(_parameter(p) for p in data["parameters"])
        name, description = _text(data["name"]), _text(data["description"])
    except (KeyError, TypeError, ValueError, IndexError) as exc:
        raise SourceError([Problem(path, 0, f"the script handed back malformed steps ({exc})")]
                          ) from None
    except StepError as exc:
        raise SourceError([Problem(path, e.line, str(e)) for e in exc.errors]) from None
    if parser.problems:
        raise SourceError(parser.problems)
    return Protocol(name=name, steps=tuple(steps), description=description, parameters=params,
                    source=path, source_text=text,
                    sha256=hashlib.sha256(text.encode("utf-8")).hexdigest())


def _steps(parser: _Parser, items: list[Any], prefix: str) -> list[Step]:
    steps: list[Step] = []
    for index, item in enumerate(items, 1):
        number, line, label = f"{prefix}{index}", int(item["line"]), _text(item["label"])
        if "repeat" in item:
            times = item["repeat"]
            if not isinstance(times, int) or isinstance(times, bool) or not (
                    1 <= times <= MAX_COUNT):
                raise ValueError(f"repeat times {times!r}")
            inner = _steps(parser, item["steps"], f"{number}.")
            steps.append(Repeat(label=label, line=line, times=times, steps=tuple(inner)))
            continue
        step = parser.build(str(item["kind"]), item["value"], line, number)
        steps.append(dataclasses.replace(step, label=label, line=line))
    return steps


def _parameter(item: list[Any]) -> Parameter:
    name, default, description, line = item
    return Parameter(_text(name), None if default is None else _text(default),
                     _text(description), int(line))


def _text(value: Any) -> str:
    if not isinstance(value, str):
        raise ValueError(f"expected text, got {type(value).__name__}")
    return clean_text(value)
