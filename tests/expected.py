"""pymeasure-style `expected_protocol` for driver tests: exact bytes written, scripted replies.

A fake pyserial port is loaded with (sent bytes, reply bytes) pairs. Each write must equal the
next pair's sent bytes (else AssertionError); its reply is then readable. Leaving the context
asserts that every pair was consumed, so a test fails if an expected exchange never happens.
A reply of None means the device stays silent (the driver must time out).
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator, Sequence

import serial

from drivers import transport as transport_module
from drivers.transport import SerialTransport

Pair = tuple[bytes, bytes | None]


class ScriptedPort:
    """Enough of serial.SerialBase for SerialTransport, driven by a script of pairs."""

    def __init__(self, pairs: Sequence[Pair]) -> None:
        self.pairs = list(pairs)
        self.index = 0
        self.output = b""
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


@contextlib.contextmanager
def expected_protocol(pairs: Sequence[Pair], timeout: float = 0.05) -> Iterator[SerialTransport]:
    """An open SerialTransport whose port plays `pairs`; asserts all were consumed at the end."""
    port = ScriptedPort(pairs)
    original = transport_module.serial.serial_for_url

    def fake_for_url(url: str, *args: object, **kwargs: object) -> ScriptedPort:
        return port

    transport_module.serial.serial_for_url = fake_for_url  # type: ignore[assignment]
    try:
        transport = SerialTransport("loop://scripted", name="scripted", timeout=timeout).open()
    finally:
        transport_module.serial.serial_for_url = original
    yield transport
    transport.close()
    assert port.index == len(port.pairs), (
        f"only {port.index} of {len(port.pairs)} exchanges happened; "
        f"next expected: {port.pairs[port.index][0]!r}"
    )


__all__ = ["expected_protocol", "ScriptedPort", "serial"]
