"""Read YAML data files (bench files, protocol files) keeping the line of every value.

Loading never executes code (yaml.SafeLoader). Mappings and lists come back as LineDict /
LineList, which remember the 1-based line of each key or item, so any later check can name the
file and the line it is about. Problems are raised as SourceError, whose str() is
"FILE:LINE: message" — what the command line prints.

A file is data from anyone, so it is bounded before it is believed: only a regular file (a
FIFO would hang the reader), at most MAX_BYTES, nesting at most MAX_DEPTH deep, aliases that
expand to at most MAX_NODES values (a "billion laughs" file is a few hundred bytes), no key
twice in one mapping (both lines are named), and every string cleaned by clean_text (no lone
surrogates, no control characters) before it reaches an index, a terminal or a file name.
"""

from __future__ import annotations

import os
import stat
import unicodedata
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

MAX_BYTES = 1 << 20  # 1 MiB: the largest protocol in the library is a few kB
MAX_DEPTH = 32
MAX_NODES = 100_000
_INVISIBLE = {chr(c) for c in (*range(0x202A, 0x202F), *range(0x2066, 0x206A), 0xFEFF)}


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


def clean_text(text: str, *, newlines: bool = True) -> str:
    """`text` safe to store, print and put in a file name: surrogate pairs joined and lone
    surrogates replaced (U+FFFD), NFC, control and bidi-override characters dropped (tabs, and
    newlines when `newlines`, kept; otherwise a newline becomes a space)."""
    if any("\ud800" <= ch <= "\udfff" for ch in text):
        text = text.encode("utf-16", "surrogatepass").decode("utf-16", "replace")
    text = unicodedata.normalize("NFC", text)
    out = []
    for ch in text:
        if ch in "\n\u2028\u2029":
            out.append("\n" if newlines and ch == "\n" else " ")
        elif ch == "\t" or not (unicodedata.category(ch) == "Cc" or ch in _INVISIBLE):
            out.append(ch)
    return "".join(out)


class _Refused(yaml.MarkedYAMLError):
    """A well-formed YAML file that chipctl will not read (duplicate key, bomb, nesting)."""


class _LineLoader(yaml.SafeLoader):
    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self._depth = 0

    def compose_node(self, parent: Any, index: Any) -> Any:
        self._depth += 1
        try:
            if self._depth > MAX_DEPTH:
                raise _Refused(None, None, f"nested deeper than {MAX_DEPTH} levels",
                               self.peek_event().start_mark)
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1

    def compose_document(self) -> Any:
        node = super().compose_document()
        if node is not None:
            _expanded_size(node, {}, set())
        return node

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> LineDict:
        _refuse_duplicates(self, node)
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

    def construct_clean_str(self, node: yaml.ScalarNode) -> str:
        return clean_text(str(self.construct_scalar(node)))


def _refuse_duplicates(loader: yaml.SafeLoader, node: yaml.MappingNode) -> None:
    """A key twice in one mapping (a second `pump:` or `steps:` silently won) is refused, with
    both lines. Keys merged in with `<<` may be overridden, as YAML says."""
    first: dict[Any, int] = {}
    for key_node, _ in node.value:
        if key_node.tag == "tag:yaml.org,2002:merge" or not isinstance(key_node, yaml.ScalarNode):
            continue
        key = loader.construct_object(key_node)
        line = key_node.start_mark.line + 1
        if key in first:
            where = f"on line {line}" if first[key] == line else f"lines {first[key]} and {line}"
            raise _Refused(None, None, f"'{key}' is given twice ({where}); keep one",
                           key_node.start_mark)
        first[key] = line


def _expanded_size(node: yaml.Node, sizes: dict[int, int], open_nodes: set[int]) -> int:
    """Values in `node` with every alias expanded (memoised; at most MAX_NODES)."""
    key = id(node)
    if key in sizes:
        return sizes[key]
    if key in open_nodes:
        raise _Refused(None, None, "an alias refers to the value that contains it",
                       node.start_mark)
    open_nodes.add(key)
    size = 1
    if isinstance(node, yaml.SequenceNode):
        size += sum(_expanded_size(child, sizes, open_nodes) for child in node.value)
    elif isinstance(node, yaml.MappingNode):
        size += sum(_expanded_size(k, sizes, open_nodes) + _expanded_size(v, sizes, open_nodes)
                    for k, v in node.value)
    open_nodes.discard(key)
    if size > MAX_NODES:
        raise _Refused(None, None, f"more than {MAX_NODES:,} values once its aliases are "
                       "expanded (an alias bomb?)", node.start_mark)
    sizes[key] = size
    return size


_LineLoader.add_constructor(
    yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _LineLoader.construct_mapping
)
_LineLoader.add_constructor(
    yaml.resolver.BaseResolver.DEFAULT_SEQUENCE_TAG, _LineLoader.construct_sequence
)
_LineLoader.add_constructor("tag:yaml.org,2002:str", _LineLoader.construct_clean_str)


def read_bounded(path: str | Path, what: str = "file", limit: int = MAX_BYTES) -> bytes:
    """The bytes of a regular file of at most `limit` bytes; SourceError otherwise (a FIFO, a
    device or a directory is refused before it is opened)."""
    name = str(path)
    try:
        info = os.stat(path)
        if not stat.S_ISREG(info.st_mode):
            kind = "it is a directory" if stat.S_ISDIR(info.st_mode) else "not a regular file"
            raise SourceError([Problem(name, 0, f"cannot read {what}: {kind}")])
        with open(path, "rb") as handle:
            raw = handle.read(limit + 1)
    except OSError as exc:
        raise SourceError([Problem(name, 0, f"cannot read {what}: {exc.strerror or exc}")]) from exc
    if len(raw) > limit:
        raise SourceError([Problem(name, 0, f"the {what} is larger than {limit // 1024} KiB")])
    return raw


def load_yaml(path: str | Path, what: str = "file") -> Any:
    """Parse a YAML file safely; any read or syntax problem becomes a SourceError."""
    return parse_yaml(read_bounded(path, what), str(path), what)


def parse_yaml(raw: bytes | str, name: str, what: str = "file") -> Any:
    """Parse YAML text (bytes are decoded as UTF-8) with line tracking."""
    if len(raw) > MAX_BYTES:
        raise SourceError([Problem(name, 0, f"the {what} is larger than {MAX_BYTES // 1024} KiB")])
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
    except _Refused as exc:
        line = exc.problem_mark.line + 1 if exc.problem_mark else 0
        raise SourceError([Problem(name, line, str(exc.problem))]) from None
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark else 0
        detail = exc.problem or str(exc)
        raise SourceError([Problem(name, line, f"YAML syntax error: {detail}")]) from exc
    except yaml.YAMLError as exc:
        raise SourceError([Problem(name, 0, f"YAML error: {exc}")]) from exc
    except RecursionError:
        raise SourceError([Problem(name, 0, f"the {what} is nested too deeply")]) from None
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
