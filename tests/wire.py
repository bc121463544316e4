"""The byte-exchange helper of the driver tests, in the style of PyMeasure's
`expected_protocol`: exact bytes written, scripted replies, over a real SerialTransport.

A scripted port is loaded with (sent bytes, reply bytes) pairs and given to the transport as
the port it opens (SerialTransport's `open_port`; nothing is patched). Each write must equal
the next pair's sent bytes (else AssertionError); its reply is then readable. `initial` bytes
are waiting before the first write (a greeting, stale input). A reply of None means the
device stays silent (the driver must time out). Leaving `expected_protocol` asserts that every
pair was consumed, so a test fails if an expected exchange never happens.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator, Sequence

from drivers.transport import SerialTransport

Pair = tuple[bytes, bytes | None]


class ScriptedPort:
    """Enough of serial.SerialBase for SerialTransport, driven by a script of pairs."""

    def __init__(self, pairs: Sequence[Pair], initial: bytes = b"") -> None:
        self.pairs = list(pairs)
        self.index = 0
        self.output = bytes(initial)
        self.timeout: float | None = 0.1
        self.write_timeout: float | None = 1.0
        self.is_open = False

    def open(self) -> None:
        self.is_open = True

    def close(self) -> None:
        self.is_open = False

    @property
    def in_waiting(self) -> int:
        return len(self.output)

    def read(self, size: int = 1) -> bytes:
        if not self.output:
            time.sleep(min(self.timeout or 0.0, 0.01))
            return b""
        data, self.output = self.output[:size], self.output[size:]
        return data

    def write(self, data: bytes) -> int:
        assert self.index < len(self.pairs), f"unexpected write {data!r}: script exhausted"
        sent, reply = self.pairs[self.index]
        assert data == sent, f"exchange {self.index}: wrote {data!r}, expected {sent!r}"
        self.index += 1
        if reply is not None:
            self.output += reply
        return len(data)

    def flush(self) -> None:
        pass

    def reset_input_buffer(self) -> None:
        self.output = b""

    @property
    def pending(self) -> list[Pair]:
        """The exchanges not made (yet)."""
        return self.pairs[self.index:]


def twice(sent: bytes, reply: bytes) -> list[Pair]:
    """A query the driver confirms: it reads until two replies in a row agree (these links
    have no checksum)."""
    return [(sent, reply), (sent, reply)]


def scripted_transport(pairs: Sequence[Pair], initial: bytes = b"",
                       timeout: float = 0.05) -> tuple[SerialTransport, ScriptedPort]:
    """An open SerialTransport whose port plays `pairs`, and the port."""
    port = ScriptedPort(pairs, initial)
    transport = SerialTransport("scripted://", name="dev", timeout=timeout,
                                open_port=lambda url, **settings: port)
    return transport.open(), port


@contextlib.contextmanager
def expected_protocol(pairs: Sequence[Pair], initial: bytes = b"", timeout: float = 0.05,
                      exhaustive: bool = True) -> Iterator[SerialTransport]:
    """An open SerialTransport whose port plays `pairs`; asserts at the end that all were
    consumed (`exhaustive=False` for a script longer than a poll loop may need)."""
    transport, port = scripted_transport(pairs, initial, timeout)
    yield transport
    transport.close()
    if exhaustive:
        assert not port.pending, (
            f"only {port.index} of {len(port.pairs)} exchanges happened; "
            f"next expected: {port.pending[0][0]!r}")


__all__ = ["ScriptedPort", "expected_protocol", "scripted_transport", "twice"]
