"""The one place where threads are crossed: chipctl's worker threads to the Qt thread.

chipctl emits psygnal signals on the run's worker thread. Worker threads never touch Qt: they
post to a `Mailbox` (a thread-safe queue) that a QTimer drains on the Qt thread, where `RunBridge`
re-emits each event as a Qt signal. (Emitting Qt signals from Python threads can deadlock
PySide6 against the GIL while the Qt thread connects or disconnects signals.)
Frames are not pushed through signals: they land in a `FrameSlot` (latest frame wins) that the
live view pulls at display rate. Manual device actions run on a small thread pool
(`DeviceCalls`) and report back through Qt signals, so no click ever waits on a serial reply;
the emergency stop runs on a thread of its own (`EmergencyStopper`) and so never waits for the
run's worker thread, a device call in flight, or the Qt event loop.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

from PySide6.QtCore import QObject, QTimer, Signal

from gui.core import ManualRefused
from gui.frames import FrameSlot

if TYPE_CHECKING:
    from gui.core import RunEvents


def describe_error(exc: BaseException) -> str:
    """An exception as an operator reads it: its kind, then the device's own message."""
    kind = type(exc).__name__
    text = str(exc) or kind
    if isinstance(exc, ManualRefused):  # the core's own words: which limit, nothing was sent
        return f"refused: {text}"
    return text if kind in ("Exception", "RuntimeError") else f"{kind}: {text}"


class Mailbox(QObject):
    """Calls posted from any thread, run on the Qt thread by a timer (in order)."""

    def __init__(self, interval_ms: int = 10, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._queue: queue.SimpleQueue[tuple[Callable[..., Any], tuple[Any, ...]]] = (
            queue.SimpleQueue())
        self._timer = QTimer(self)
        self._timer.setInterval(interval_ms)
        self._timer.timeout.connect(self.drain)
        self._timer.start()

    def post(self, call: Callable[..., Any], *args: Any) -> None:
        """Queue `call(*args)` for the Qt thread; safe from any thread, touches no Qt object."""
        self._queue.put((call, args))

    def drain(self, limit: int = 1000) -> None:
        """Run what was posted (at most `limit` calls, so the event loop keeps turning)."""
        for _ in range(limit):
            try:
                call, args = self._queue.get_nowait()
            except queue.Empty:
                return
            call(*args)


class RunBridge(QObject):
    """Re-emits one run's events on the Qt thread; frames go to the frame slot."""

    stateChanged = Signal(str, str)  # state, reason
    stepStarted = Signal(int, int, str)  # index, total, label
    stepFinished = Signal(int, str)  # index, label
    counted = Signal(dict)  # a counts row
    prompt = Signal(str)  # operator prompt message
    record = Signal(dict)  # every event record, for the event log

    def __init__(self, frames: FrameSlot, parent: QObject | None = None,
                 frame_sinks: Sequence[Callable[[Any], None]] = (),
                 count_sinks: Sequence[Callable[[dict[str, Any]], None]] = ()) -> None:
        super().__init__(parent)
        self.frames = frames
        self.frame_sinks = [frames.put, *frame_sinks]  # Qt-free, called on the run's thread
        self.count_sinks = list(count_sinks)
        self.mailbox = Mailbox(parent=self)
        self._events: RunEvents | None = None

    def attach(self, events: RunEvents) -> None:
        """Listen to a run's events (before the run starts); forget the previous run's."""
        self.detach()
        for signal, slot in self._slots(events):
            signal.connect(slot)
        self._events = events

    @property
    def events(self) -> RunEvents | None:
        """The run's events the bridge listens to (None between runs)."""
        return self._events

    def detach(self) -> None:
        """Stop listening to the current run (the run store keeps listening)."""
        if self._events is not None:
            for signal, slot in self._slots(self._events):
                signal.disconnect(slot)
            self._events = None

    def _slots(self, events: RunEvents) -> list[tuple[Any, Callable[..., None]]]:
        return [(events.state_changed, self._on_state),
                (events.step_started, self._on_step_started),
                (events.step_finished, self._on_step_finished),
                (events.counted, self._on_counted), (events.prompt, self._on_prompt),
                (events.record, self._on_record), (events.frame, self._on_frame)]

    # psygnal callbacks: called on the run's worker thread, they only post to the mailbox.
    def _on_state(self, state: str, reason: str) -> None:
        self.mailbox.post(self.stateChanged.emit, state, reason)

    def _on_step_started(self, index: int, total: int, label: str) -> None:
        self.mailbox.post(self.stepStarted.emit, index, total, label)

    def _on_step_finished(self, index: int, label: str) -> None:
        self.mailbox.post(self.stepFinished.emit, index, label)

    def _on_counted(self, row: dict[str, Any]) -> None:
        for sink in self.count_sinks:
            sink(dict(row))
        self.mailbox.post(self.counted.emit, dict(row))

    def _on_frame(self, frame: Any) -> None:
        for sink in self.frame_sinks:
            sink(frame)

    def _on_prompt(self, message: str) -> None:
        self.mailbox.post(self.prompt.emit, message)

    def _on_record(self, event: dict[str, Any]) -> None:
        self.mailbox.post(self.record.emit, dict(event))


class DeviceCalls(QObject):
    """Runs manual device actions off the Qt thread; results and errors come back as signals.

    `succeeded(label, result, callback)` and `failed(label, message)` are emitted on the Qt
    thread; a callback given to `submit` is then called there with the result.
    """

    succeeded = Signal(str, object, object)
    failed = Signal(str, str)

    def __init__(self, workers: int = 4, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="gui-device")
        self._closed = False
        self.mailbox = Mailbox(parent=self)
        self.succeeded.connect(self._deliver)

    def submit(self, label: str, action: Callable[[], Any],
               callback: Callable[[Any], None] | None = None) -> None:
        """Run `action` on a worker thread; `label` names it in error messages."""
        if not self._closed:
            self._pool.submit(self._run, label, action, callback)

    def _run(self, label: str, action: Callable[[], Any],
             callback: Callable[[Any], None] | None) -> None:
        try:
            result = action()
        except Exception as exc:  # noqa: BLE001 - every device error is shown, never swallowed
            self.mailbox.post(self.failed.emit, label, describe_error(exc))
            return
        self.mailbox.post(self.succeeded.emit, label, result, callback)

    def report(self, label: str, message: str) -> None:
        """Report an error found on any thread (shown like a failed device call)."""
        self.mailbox.post(self.failed.emit, label, message)

    def _deliver(self, label: str, result: Any, callback: Callable[[Any], None] | None) -> None:
        if callback is not None:
            callback(result)

    def shutdown(self) -> None:
        """Let queued actions finish; accept no more."""
        self._closed = True
        self._pool.shutdown(wait=False, cancel_futures=True)


class EmergencyStopper(QObject):
    """Calls the engine's emergency stop on a dedicated thread, at once, every time."""

    done = Signal(list)  # what could not be stopped (empty: everything is stopped)

    def __init__(self, stop: Callable[[], list[str]], parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._stop = stop
        self.mailbox = Mailbox(parent=self)
        self.pressed = 0

    def trigger(self) -> threading.Thread:
        """Start stopping now; returns the thread doing it."""
        self.pressed += 1
        thread = threading.Thread(target=self._run, name="gui-emergency-stop", daemon=True)
        thread.start()
        return thread

    def _run(self) -> None:
        try:
            failures = list(self._stop())
        except Exception as exc:  # noqa: BLE001 - the operator must see it
            failures = [describe_error(exc)]
        self.mailbox.post(self.done.emit, failures)
