"""Serial transport: one owner and one lock per port, finite timeouts, framing by delimiter.

Any pyserial URL works: a port name (/dev/ttyUSB0, COM3), a pseudo-terminal path, or
`socket://127.0.0.1:PORT` for the simulator. Raw traffic is logged on `drivers.wire` at DEBUG.
What opens the port is given (`open_port`, pyserial's serial_for_url unless a test scripts one).
"""

from __future__ import annotations

import contextlib
import logging
import re
import threading
import time
from collections.abc import Callable
from types import TracebackType

import serial

from drivers.errors import DeviceDisconnected, DeviceTimeout, GarbledReply

wire_log = logging.getLogger("drivers.wire")
FLUSH_LIMIT_S = 0.2  # a device that never stops talking cannot hold up a request longer
FLUSH_CHUNK = 1 << 16
MAX_FRAME = 1 << 16  # a text reply longer than this without its end is noise, not a reply

Framing = bytes | re.Pattern[bytes] | Callable[[bytes], int | None]
"""How a reply ends: a terminator, a regex whose match ends the frame, or a function that
returns the frame's end index in the buffer (None while incomplete)."""


def _frame_end(buffer: bytes, until: Framing) -> int | None:
    if isinstance(until, bytes):
        index = buffer.find(until)
        return None if index < 0 else index + len(until)
    if isinstance(until, re.Pattern):
        match = until.search(buffer)
        return None if match is None else match.end()
    return until(buffer)


class SerialTransport:
    """A serial link to one port, shared by every device behind it (one lock per port)."""

    def __init__(
        self,
        url: str,
        *,
        name: str | None = None,
        baudrate: int = 9600,
        timeout: float = 0.5,
        bytesize: int = serial.EIGHTBITS,
        parity: str = serial.PARITY_NONE,
        stopbits: float = serial.STOPBITS_ONE,
        open_port: Callable[..., serial.SerialBase] = serial.serial_for_url,
    ) -> None:
        self.url = url
        self._open_port = open_port
        self.name = name or url
        self.timeout = timeout
        self.lock = threading.RLock()
        self._settings = {
            "baudrate": baudrate,
            "bytesize": bytesize,
            "parity": parity,
            "stopbits": stopbits,
        }
        self._port: serial.SerialBase | None = None
        self._pending = b""

    # -- life cycle -------------------------------------------------------------------------
    def open(self) -> SerialTransport:
        """Open the port (exclusively where the OS supports it)."""
        with self.lock:
            if self._port is not None:
                return self
            try:
                port = self._open_port(self.url, do_not_open=True, **self._settings)
                port.timeout = self.timeout
                port.write_timeout = max(self.timeout, 1.0)
                if hasattr(port, "exclusive") and not self.url.startswith(("socket:", "loop:")):
                    port.exclusive = True
                port.open()
            except (serial.SerialException, OSError, ValueError) as exc:
                raise DeviceDisconnected(self.name, f"cannot open its port {self.url}: "
                                         f"{_reason(exc, self.url)}") from exc
            self._port = port
            self._pending = b""
            wire_log.debug("%s: opened %s", self.name, self.url)
            return self

    def close(self) -> None:
        """Close the port; safe to call twice."""
        with self.lock:
            port, self._port = self._port, None
            if port is not None:
                with contextlib.suppress(serial.SerialException, OSError):
                    port.close()
                wire_log.debug("%s: closed", self.name)

    @property
    def is_open(self) -> bool:
        """True while the port is open."""
        return self._port is not None

    def __enter__(self) -> SerialTransport:
        return self.open()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    # -- traffic ----------------------------------------------------------------------------
    def _require_port(self) -> serial.SerialBase:
        if self._port is None:
            raise DeviceDisconnected(self.name, "its port is not open (lost earlier?)")
        return self._port

    def flush_input(self) -> bytes:
        """Discard (and return) stale input: unsolicited prompts, late replies, noise."""
        with self.lock:
            port = self._require_port()
            stale = self._pending
            self._pending = b""
            deadline = time.monotonic() + FLUSH_LIMIT_S
            try:
                # socket:// reports in_waiting as 0 or 1, so drain until nothing is left.
                port.timeout = 0
                while time.monotonic() < deadline and port.in_waiting:
                    stale += port.read(FLUSH_CHUNK)
            except (serial.SerialException, OSError) as exc:
                self._lost(exc)
            if stale:
                wire_log.debug("%s: flushed %r", self.name, stale[:200])
            return stale

    def write(self, data: bytes) -> None:
        """Write bytes to the device."""
        with self.lock:
            try:
                self._put(data)
            except (serial.SerialException, OSError) as exc:
                self._lost(exc)

    def write_urgent(self, data: bytes) -> None:
        """Write without waiting for the port's lock: the off command of a safe state must not
        queue behind a request stuck waiting for its reply. (A short write is one system call,
        so it cannot split another command's bytes; its reply may confuse that request, which
        then retries.)"""
        try:
            self._put(data, " (urgent)")
        except (serial.SerialException, OSError) as exc:
            raise DeviceDisconnected(self.name, f"link lost: {_reason(exc, self.url)}") from exc

    def read_frame(self, until: Framing, timeout: float | None = None) -> bytes:
        """Read one frame ending as `until` says; raise DeviceTimeout after `timeout` seconds."""
        with self.lock:
            port = self._require_port()
            started = time.monotonic()
            deadline = started + (self.timeout if timeout is None else timeout)
            buffer = self._pending
            while True:
                end = _frame_end(buffer, until)
                if end is not None:
                    frame, self._pending = buffer[:end], buffer[end:]
                    wire_log.debug("%s: <- %r", self.name, frame)
                    return frame
                remaining = deadline - time.monotonic()
                if remaining <= 0 or len(buffer) > MAX_FRAME:
                    self._pending = b""
                    wire_log.debug("%s: no frame end, partial %r", self.name, buffer[:200])
                    if remaining > 0:
                        raise GarbledReply(self.name, f"{len(buffer)} bytes without a reply's "
                                           "end", buffer[:200])
                    raise DeviceTimeout(self.name, "no complete reply within "
                                        f"{deadline - started:.3g} s", buffer)
                buffer += self._read_some(port, remaining)

    def read_exact(self, size: int, timeout: float | None = None) -> bytes:
        """Read exactly `size` bytes (a binary payload); DeviceTimeout if they do not arrive."""
        with self.lock:
            port = self._require_port()
            deadline = time.monotonic() + (self.timeout if timeout is None else timeout)
            data = bytearray(self._pending[:size])
            self._pending = self._pending[size:]
            while len(data) < size:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    wire_log.debug("%s: timeout after %d of %d bytes", self.name, len(data), size)
                    raise DeviceTimeout(self.name, f"{len(data)} of {size} bytes within timeout")
                try:
                    port.timeout = min(remaining, 0.25)
                    data += port.read(size - len(data))
                except (serial.SerialException, OSError) as exc:
                    self._lost(exc)
            wire_log.debug("%s: <- %d bytes", self.name, size)
            return bytes(data)

    def request(self, data: bytes, until: Framing, timeout: float | None = None) -> bytes:
        """Flush stale input, send `data`, and read one framed reply."""
        with self.lock:
            self.flush_input()
            self.write(data)
            return self.read_frame(until, timeout)

    def _read_some(self, port: serial.SerialBase, remaining: float) -> bytes:
        try:
            port.timeout = min(remaining, 0.05)
            waiting = port.in_waiting
            return port.read(max(1, waiting))
        except (serial.SerialException, OSError) as exc:
            self._lost(exc)
        return b""  # pragma: no cover - _lost always raises

    def _put(self, data: bytes, note: str = "") -> None:
        """Write and flush `data` (logged on drivers.wire with `note`)."""
        port = self._require_port()
        wire_log.debug("%s: -> %r%s", self.name, data, note)
        port.write(data)
        port.flush()

    def _lost(self, exc: BaseException) -> None:
        wire_log.debug("%s: link lost: %s", self.name, exc)
        self.close()
        raise DeviceDisconnected(self.name, f"link lost: {_reason(exc, self.url)}") from exc


def _reason(exc: BaseException, url: str) -> str:
    """What went wrong, without the port's URL (the error names the device)."""
    text = str(getattr(exc, "strerror", None) or exc).replace(url, "").replace("''", "")
    text = re.sub(r"(?i)^(\[Errno \d+\] )?could not open port\s*:?\s*", "", text.strip())
    return text.strip(" :") or type(exc).__name__
