"""Serve an emulated device on a wire: a TCP port (pyserial socket://) or a pseudo-terminal.

An emulator is anything with `connected() -> bytes` (greeting when a host opens the port),
`receive(data) -> bytes` (bytes in, reply bytes out) and `poll() -> bytes` (unsolicited
output driven by the clock), and optionally `finish() -> bytes` (output that takes long to
make, called after poll() without the lock). Calls into the emulator hold the bench lock, so
the device state is only touched by one thread at a time. Replies pass through the endpoint's
FaultInjector.
"""

from __future__ import annotations

import contextlib
import logging
import os
import select
import socket
import threading
import time
from typing import Protocol

from hardware_sim.faults import FaultInjector

log = logging.getLogger("hardware_sim.wire")
POLL_INTERVAL = 0.02


class Emulator(Protocol):
    """The byte-level face of an emulated device."""

    def connected(self) -> bytes: ...

    def receive(self, data: bytes) -> bytes: ...

    def poll(self) -> bytes: ...


class _Endpoint:
    """Common part: feed bytes to the emulator, shape and send its replies."""

    def __init__(self, name: str, emulator: Emulator, lock: threading.RLock) -> None:
        self.name = name
        self.emulator = emulator
        self.lock = lock
        self.faults = FaultInjector()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def _exchange(self, data: bytes) -> bytes:
        with self.lock:
            return self.emulator.receive(data)

    def _unsolicited(self) -> bytes:
        """The device's own output: poll() under the bench lock, then the emulator's finish()
        if it has one (slow work, e.g. painting a camera frame, done without the lock)."""
        with self.lock:
            out = self.emulator.poll()
        finish = getattr(self.emulator, "finish", None)
        return out + finish() if callable(finish) else out

    def _greeting(self) -> bytes:
        with self.lock:
            return self.emulator.connected()

    def _send(self, write: object, reply: bytes) -> None:
        pieces = self.faults.shape(reply)
        if pieces and self.faults.slow_seconds > 0:
            time.sleep(self.faults.slow_seconds)
        for index, piece in enumerate(pieces):
            if index:
                time.sleep(0.01)
            log.debug("%s: <- %r", self.name, piece)
            write(piece)  # type: ignore[operator]

    def start(self) -> None:
        self._thread = threading.Thread(target=self._serve, name=f"sim-{self.name}", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=2)

    def _serve(self) -> None:  # pragma: no cover - overridden
        raise NotImplementedError


class TcpEndpoint(_Endpoint):
    """One TCP listening port on 127.0.0.1; the newest connection owns the device."""

    def __init__(self, name: str, emulator: Emulator, lock: threading.RLock, port: int = 0) -> None:
        super().__init__(name, emulator, lock)
        self._server = socket.create_server(("127.0.0.1", port))
        self._server.settimeout(POLL_INTERVAL)
        self.port = self._server.getsockname()[1]
        self._client: socket.socket | None = None

    @property
    def url(self) -> str:
        """The pyserial URL a driver opens."""
        return f"socket://127.0.0.1:{self.port}"

    def _accept(self) -> None:
        try:
            conn, _ = self._server.accept()
        except (TimeoutError, OSError):
            return
        if self.faults.unplugged:
            conn.close()
            return
        if self._client is not None:
            self._client.close()
        conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self._client = conn
        self._send(conn.sendall, self._greeting())

    def _drop_client(self) -> None:
        if self._client is not None:
            with contextlib.suppress(OSError):
                self._client.close()
            self._client = None

    def _serve(self) -> None:
        while not self._stop.is_set():
            watched = [self._server] + ([self._client] if self._client is not None else [])
            try:
                ready, _, _ = select.select(watched, [], [], POLL_INTERVAL)
            except (OSError, ValueError):
                self._drop_client()
                continue
            if self._server in ready:
                self._accept()
            client = self._client
            if client is None:
                self._unsolicited()  # the device lives on without a host
                continue
            if self.faults.unplugged:
                self._drop_client()
                continue
            self._service(client, client in ready)
        self._drop_client()
        self._server.close()

    def _service(self, client: socket.socket, readable: bool) -> None:
        try:
            if readable:
                data = client.recv(65536)
                if not data:
                    self._drop_client()
                    return
                log.debug("%s: -> %r", self.name, data)
                self._send(client.sendall, self._exchange(data))
            self._send(client.sendall, self._unsolicited())
        except OSError:
            self._drop_client()


class PtyEndpoint(_Endpoint):
    """A pseudo-terminal: drivers open `path` like a real serial device (POSIX only).

    Unplugging closes the master, so the host sees EIO / SerialException as on a real USB
    unplug; re-plugging (the fault cleared) makes a new pty (a new /dev/pts/N) and moves the
    stable link to it, so a driver that reopens by the link name finds the device again.
    """

    def __init__(
        self, name: str, emulator: Emulator, lock: threading.RLock, link: str | None = None
    ) -> None:
        super().__init__(name, emulator, lock)
        self.link = link
        self._master: int | None = None
        self.path = ""
        self._plug()
        self._host_open = False

    def _plug(self) -> None:
        import pty
        import tty

        self._master, slave = pty.openpty()
        tty.setraw(slave)
        self.path = os.ttyname(slave)
        os.close(slave)  # keep only the master: POLLHUP then tells whether a host has it open
        if self.link:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self.link)
            os.symlink(self.path, self.link)

    def _unplug(self) -> None:
        if self._master is not None:
            with contextlib.suppress(OSError):
                os.close(self._master)
            self._master = None
        self._host_open = False

    @property
    def url(self) -> str:
        """The device path a driver opens (the stable link if one was made)."""
        return self.link or self.path

    def _serve(self) -> None:
        while not self._stop.is_set():
            if self.faults.unplugged:
                self._unplug()
            elif self._master is None:
                self._plug()
            if self._master is None:
                self._idle()
                continue
            poller = select.poll()
            poller.register(self._master, select.POLLIN)
            events = dict(poller.poll(POLL_INTERVAL * 1000)).get(self._master, 0)
            if events & select.POLLHUP:
                self._host_open = False
                self._idle()
                continue
            self._service(events)
        self._unplug()
        if self.link:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self.link)

    def _idle(self) -> None:
        self._unsolicited()  # the device lives on without a host
        time.sleep(POLL_INTERVAL)

    def _service(self, events: int) -> None:
        if not self._host_open:
            self._host_open = True
            self._send(self._write, self._greeting())
        if events & select.POLLIN and self._master is not None:
            try:
                data = os.read(self._master, 65536)
            except OSError:
                return
            log.debug("%s: -> %r", self.name, data)
            self._send(self._write, self._exchange(data))
        self._send(self._write, self._unsolicited())

    def _write(self, data: bytes) -> None:
        if self._master is not None:
            with contextlib.suppress(OSError):
                os.write(self._master, data)
