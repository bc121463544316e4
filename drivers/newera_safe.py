"""New Era Safe mode from the host's side: the heartbeat that keeps a pump's watchdog fed, the
broadcast stop, and the blind stop of a safe state.

In Safe mode (`SAF<n>`, device_protocols.md section 1.1) a pump stops and raises `A?T` when no
valid packet reaches it for n seconds: if the controller dies (even by SIGKILL) the pumps stop
by themselves. While connected the driver keeps it alive: any traffic counts, and the
Heartbeat sends a status query whenever half the timeout passed without any.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

from drivers.newera_wire import safe_packet
from drivers.transport import SerialTransport

log = logging.getLogger(__name__)


class Heartbeat:
    """Calls `beat()` whenever `period_s` passes without `traffic()` being reported."""

    def __init__(self, name: str, beat: Callable[[], None]) -> None:
        self.name = name
        self._beat = beat
        self._traffic = threading.Event()
        self._closing = threading.Event()
        self._thread: threading.Thread | None = None
        self.period_s = 0.0

    def traffic(self) -> None:
        """A packet went out and was answered: the pump's watchdog was fed."""
        self._traffic.set()

    def start(self, period_s: float) -> None:
        """Beat every `period_s` of silence, on a daemon thread, until stop()."""
        self.stop()
        self.period_s = period_s
        self._closing.clear()
        self._thread = threading.Thread(target=self._loop, name=f"{self.name}-heartbeat",
                                        daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """No more beats (waits for the thread, unless called from it)."""
        self._closing.set()
        self._traffic.set()  # wakes the loop now instead of at the end of its period
        thread, self._thread = self._thread, None
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout=5)

    @property
    def alive(self) -> bool:
        """True while the heartbeat thread runs."""
        return self._thread is not None and self._thread.is_alive()

    def _loop(self) -> None:
        while not self._closing.is_set():
            if self._traffic.wait(self.period_s):
                self._traffic.clear()  # other traffic already kept the pump's watchdog fed
                continue
            if self._closing.is_set():
                return
            try:
                self._beat()
            except Exception as exc:  # noqa: BLE001 - the next command will see the fault
                log.warning("%s: heartbeat failed: %s", self.name, exc)


def emergency_stop_all(transport: SerialTransport, settle_s: float = 0.1) -> None:
    """Broadcast `*STP` to every New Era pump on the port, in Basic and in Safe framing.

    Sent twice (STP pauses a running pump, the second STP stops it; a pending alarm swallows
    one), at once, without waiting for the port's lock (a request stuck on a dead pump must
    not hold it up). The pumps answer together and their replies collide: they are discarded.
    """
    for _ in range(2):
        transport.write_urgent(b"*STP\r")
        transport.write_urgent(safe_packet(b"*STP"))
        time.sleep(settle_s)
    if transport.lock.acquire(timeout=settle_s):
        try:
            transport.flush_input()
        finally:
            transport.lock.release()
