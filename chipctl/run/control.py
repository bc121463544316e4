"""Run control shared by the runner and the executor: pause, resume, abort, operator prompts.

The executor calls `checkpoint()` often (between device actions and while waiting); that is
where a pause takes hold (the executor's hold/release callbacks stop and restart the fluidics)
and where an abort turns into a RunAborted exception that unwinds the step. When a pause takes
hold or ends, `state_changed` says so (the runner listens and records the state).
"""

from __future__ import annotations

import threading
from collections.abc import Callable

from psygnal import Signal

from chipctl.run.clock import RunClock

SLICE_S = 0.05  # wall seconds between checkpoints while waiting


class RunAborted(Exception):
    """The run was aborted (by the operator, an emergency stop or an interlock)."""


class RunControl:
    """Flags set from any thread, honoured on the run's thread."""

    state_changed = Signal(str, str)  # "paused" | "running", reason (on the run's thread)

    def __init__(self, clock: RunClock) -> None:
        self.clock = clock
        self._resume = threading.Event()
        self._resume.set()
        self._wake = threading.Event()
        self._confirmed = threading.Event()
        self.abort_reason: str | None = None
        self.paused_s = 0.0

    # -- requests (any thread) ---------------------------------------------------------------
    def request_pause(self) -> None:
        """Hold at the next checkpoint."""
        self._resume.clear()
        self._wake.set()

    def request_resume(self) -> None:
        """Continue after a pause."""
        self._resume.set()
        self._wake.set()

    def request_abort(self, reason: str) -> None:
        """Stop the run at the next checkpoint (and wake any wait)."""
        if self.abort_reason is None:
            self.abort_reason = reason
        self._resume.set()
        self._confirmed.set()
        self._wake.set()

    def confirm(self) -> None:
        """The operator answered the current prompt."""
        self._confirmed.set()

    @property
    def pause_requested(self) -> bool:
        """True while a pause is requested or held."""
        return not self._resume.is_set()

    # -- on the run's thread -----------------------------------------------------------------
    def checkpoint(
        self, hold: Callable[[], None] | None = None, release: Callable[[], None] | None = None
    ) -> None:
        """Raise RunAborted if aborted; if paused, hold, wait for resume, then release."""
        if self.abort_reason is not None:
            raise RunAborted(self.abort_reason)
        if self._resume.is_set():
            return
        if hold:
            hold()
        self.state_changed.emit("paused", "pause requested")
        started = self.clock.now()
        while not self._resume.wait(SLICE_S):
            pass
        self.paused_s += self.clock.now() - started
        if self.abort_reason is not None:
            raise RunAborted(self.abort_reason)
        self.state_changed.emit("running", "resumed")
        if release:
            release()

    def wait(
        self,
        seconds: float,
        hold: Callable[[], None] | None = None,
        release: Callable[[], None] | None = None,
    ) -> None:
        """Wait `seconds` of protocol time; time spent paused does not count."""
        remaining = seconds
        while remaining > 0:
            self.checkpoint(hold, release)
            step = min(remaining, SLICE_S * self.clock.time_scale)
            start = self.clock.now()
            self._wake.clear()
            self.clock.sleep(step, self._wake)
            remaining -= self.clock.now() - start
        self.checkpoint(hold, release)

    def wait_for_operator(self, ask: Callable[[], None] = lambda: None) -> None:
        """Ask (`ask()` publishes the prompt), then block until the operator confirms or the
        run is aborted. A confirmation given while `ask()` runs counts."""
        self._confirmed.clear()
        ask()
        while not self._confirmed.wait(SLICE_S):
            pass
        self.checkpoint()
