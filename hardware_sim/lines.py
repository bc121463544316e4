"""Line assembly for text-protocol emulators: bytes in, complete command lines out."""

from __future__ import annotations

import re

_EOL = re.compile(rb"\r\n|\r|\n")


class LineBuffer:
    """Collects bytes and yields complete lines; CR, LF and CRLF all end a line."""

    def __init__(self, limit: int = 4096) -> None:
        self._buffer = b""
        self._limit = limit

    def feed(self, data: bytes) -> list[str]:
        """Add bytes; return the complete lines (decoded, without terminators)."""
        self._buffer += data
        parts = _EOL.split(self._buffer)
        self._buffer = parts.pop()
        if len(self._buffer) > self._limit:
            self._buffer = b""
        return [p.decode("ascii", "replace") for p in parts if p]

    def clear(self) -> None:
        """Forget any partial line."""
        self._buffer = b""


class LineEmulator:
    """The face a line-protocol controller with moving parts shows the port: opening the port
    forgets a partial line; a locked-up unit says nothing; otherwise the motion is run to the
    clock before command lines are answered (`_answer`) or a poll reports what fell due
    (`_due`). Subclasses set `locked_up` and `_lines` (a LineBuffer)."""

    locked_up: bool
    _lines: LineBuffer

    def connected(self) -> bytes:
        """No greeting."""
        self._lines.clear()
        return b""

    def receive(self, data: bytes) -> bytes:
        """Command lines in, reply lines out."""
        if self.locked_up:
            return b""
        return self._answer(self._lines.feed(data))

    def poll(self) -> bytes:
        """What fell due since the last look (the end of a move)."""
        if self.locked_up:
            return b""
        return self._due()

    def _answer(self, lines: list[str]) -> bytes:
        raise NotImplementedError

    def _due(self) -> bytes:
        raise NotImplementedError
