"""Transport additions used by the camera: draining stale socket input, exact binary reads."""

from __future__ import annotations

import threading

import pytest
from scope_support import served

from drivers.errors import DeviceTimeout
from drivers.transport import SerialTransport


class Chatty:
    """Answers PING with PONG after (optionally) spewing unsolicited junk and a blob."""

    def __init__(self) -> None:
        self.junk = b""

    def connected(self) -> bytes:
        return b""

    def receive(self, data: bytes) -> bytes:
        if data == b"BLOB\r":
            return b"HDR\n" + bytes(range(256)) * 400
        return b"PONG\n"

    def poll(self) -> bytes:
        out, self.junk = self.junk, b""
        return out


def test_flush_drains_all_stale_socket_input_and_read_exact_gets_a_blob() -> None:
    device = Chatty()
    with served(device, threading.RLock()) as url, SerialTransport(url, timeout=1.0) as link:
        device.junk = b"stale line\n" * 500
        link.read_frame(b"\n", 1.0)  # the junk has started to arrive
        assert link.request(b"PING\r", b"\n") == b"PONG\n"  # the rest was flushed
        assert link.request(b"BLOB\r", b"\n") == b"HDR\n"
        blob = link.read_exact(256 * 400, 2.0)
        assert blob == bytes(range(256)) * 400
        with pytest.raises(DeviceTimeout):
            link.read_exact(10, 0.1)
