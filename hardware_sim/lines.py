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
