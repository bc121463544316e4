"""Read YAML data files (bench files, protocol files) keeping the line of every value.

Loading never executes code (yaml.SafeLoader). Mappings and lists come back as LineDict /
LineList, which remember the 1-based line of each key or item, so any later check can name the
file and the line it is about. Problems are raised as SourceError, whose str() is
"FILE:LINE: message" — what the command line prints.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml


@dataclass(frozen=True)
class Problem:
    """One thing wrong with a file, at a line (0 = the file as a whole)."""

    path: str
    line: int
    message: str

    def __str__(self) -> str:
        where = f"{self.path}:{self.line}" if self.line else self.path
        return f"{where}: {self.message}"


class SourceError(Exception):
    """One or more problems with an input file; str() lists them one per line."""

    def __init__(self, problems: Iterable[Problem]) -> None:
        self.problems = list(problems)
        super().__init__("\n".join(str(p) for p in self.problems))


class LineDict(dict):
    """A mapping that remembers its own line and the line of each key."""

    line: int = 0
    lines: dict[Any, int]


class LineList(list):
    """A list that remembers its own line and the line of each item."""

    line: int = 0
    lines: list[int]


class _LineLoader(yaml.SafeLoader):
    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> LineDict:
        mapping = LineDict(super().construct_mapping(node, deep=True))
        mapping.line = node.start_mark.line + 1
        mapping.lines = {}
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=True)
            mapping.lines[key] = key_node.start_mark.line + 1
        return mapping

    def construct_sequence(self, node: yaml.SequenceNode, deep: bool = False) -> LineList:
        items = LineList(super().construct_sequence(node, deep=True))
        items.line = node.start_mark.line + 1
        items.lines = [child.start_mark.line + 1 for child in node.value]
        return items


_LineLoader.add_constructor(
    yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _LineLoader.construct_mapping
)
_LineLoader.add_constructor(
    yaml.resolver.BaseResolver.DEFAULT_SEQUENCE_TAG, _LineLoader.construct_sequence
)


def load_yaml(path: str | Path, what: str = "file") -> Any:
    """Parse a YAML file safely; any read or syntax problem becomes a SourceError."""
    name = str(path)
    try:
        raw = Path(path).read_bytes()
    except OSError as exc:
        raise SourceError([Problem(name, 0, f"cannot read {what}: {exc.strerror or exc}")]) from exc
    return parse_yaml(raw, name, what)


def parse_yaml(raw: bytes | str, name: str, what: str = "file") -> Any:
    """Parse YAML text (bytes are decoded as UTF-8) with line tracking."""
    if isinstance(raw, bytes):
        if b"\x00" in raw:
            raise SourceError([Problem(name, 0, f"not a YAML {what}: it contains binary data")])
        try:
            raw = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise SourceError(
                [Problem(name, 0, f"not a YAML {what}: not UTF-8 text (byte {exc.start})")]
            ) from exc
    try:
        data = yaml.load(raw, Loader=_LineLoader)  # noqa: S506 - a SafeLoader subclass
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark else 0
        detail = exc.problem or str(exc)
        raise SourceError([Problem(name, line, f"YAML syntax error: {detail}")]) from exc
    except yaml.YAMLError as exc:
        raise SourceError([Problem(name, 0, f"YAML error: {exc}")]) from exc
    if data is None:
        raise SourceError([Problem(name, 0, f"the {what} is empty")])
    return data


def line_of(data: Any, loc: Sequence[Any]) -> int:
    """The line of the value at `loc` (keys and indexes), or of its nearest known parent."""
    line = getattr(data, "line", 0)
    node = data
    for key in loc:
        if isinstance(node, LineDict) and key in node:
            line = node.lines.get(key, line)
            node = node[key]
        elif isinstance(node, LineList) and isinstance(key, int) and 0 <= key < len(node):
            line = node.lines[key]
            node = node[key]
        else:
            break
    return line
