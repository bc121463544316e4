"""The runner: the run's state machine. It never does I/O itself; the executor does.

idle -> running <-> paused -> completed | aborted | failed. Pause and abort are honoured at the
executor's checkpoints; an emergency stop also halts every pump and light at once from the
caller's thread (through the executor). Whatever ends the run, the bench is brought to a safe
state and the reason is recorded: an interlock (pump stall or reset alarm, end of travel,
over-pressure, camera timeout, device lost) fails the run with the interlock's reason.
"""

from __future__ import annotations

import logging
import threading
import time

from chipctl.protocol.model import Protocol
from chipctl.run.control import RunAborted
from chipctl.run.events import RunEvents, RunState, record
from chipctl.run.executor import Executor, StepFailed
from chipctl.run.interlocks import Interlock, reason_for
from drivers.errors import DeviceError

log = logging.getLogger(__name__)


class Runner:
    """Runs one protocol on one executor."""

    def __init__(self, protocol: Protocol, executor: Executor, events: RunEvents) -> None:
        self.protocol = protocol
        self.executor = executor
        self.control = executor.control
        self.events = events
        self.steps = protocol.flat_steps()
        self.state = RunState.IDLE
        self.reason = ""
        self.current_step = -1
        self.started_at: float | None = None
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    # -- commands (any thread) ---------------------------------------------------------------
    def start(self) -> threading.Thread:
        """Run in a worker thread; returns it."""
        self._thread = threading.Thread(target=self.run, name="chipctl-run", daemon=True)
        self._thread.start()
        return self._thread

    def wait(self, timeout: float | None = None) -> RunState:
        """Wait for the worker thread; returns the state."""
        if self._thread is not None:
            self._thread.join(timeout)
        return self.state

    def pause(self) -> None:
        """Hold the fluidics (pumps stopped, light off) until resume()."""
        if self.state in (RunState.IDLE, RunState.RUNNING):
            self.control.request_pause()

    def resume(self) -> None:
        """Continue a paused run: the interrupted step pumps the rest of its volume."""
        if not self.state.finished:
            self.control.request_resume()

    def abort(self, reason: str = "aborted by operator") -> None:
        """Stop the run at the next checkpoint and bring the bench to a safe state."""
        self.control.request_abort(reason)

    def emergency_stop(self, reason: str = "emergency stop") -> list[str]:
        """Abort the run and halt every pump and light now, from this thread (New Era pumps by
        broadcast); returns what could not be stopped."""
        if not self.state.finished:  # recorded before the run thread can finish and close
            self.events.record.emit(record("emergency_stop", reason=reason))
        self.control.request_abort(reason)
        return self.executor.halt_all()

    def confirm(self) -> None:
        """Answer the current operator prompt."""
        self.control.confirm()

    # -- the run (worker thread) -------------------------------------------------------------
    def _set_state(self, state: RunState, reason: str = "") -> None:
        with self._lock:
            if self.state.finished:
                return
            self.state, self.reason = state, reason
        # the record first: the run store closes its files when it hears the final state
        self.events.record.emit(record("state", state=state.value, reason=reason))
        self.events.state_changed.emit(state.value, reason)

    def _on_control_state(self, state: str, reason: str) -> None:
        self._set_state(RunState(state), reason)

    def run(self) -> RunState:
        """Run every step; returns the final state."""
        self.control._on_state = self._on_control_state
        self.started_at = time.time()
        self._set_state(RunState.RUNNING, "started")
        try:
            for index, step in enumerate(self.steps):
                self.current_step = index
                self.executor.step_index = index
                self.control.checkpoint()
                label = self.executor.render(step.label)
                self.events.step_started.emit(index, len(self.steps), label)
                self.events.record.emit(record("step_started", index=index, label=label,
                                               step_kind=step.kind, line=step.line))
                self.executor.execute(step)
                self.events.step_finished.emit(index, label)
                self.events.record.emit(record("step_finished", index=index, label=label))
        except RunAborted as exc:
            self._finish(RunState.ABORTED, str(exc))
        except (Interlock, DeviceError, StepFailed, OSError) as exc:
            if self.control.abort_reason is not None:  # the abort stopped the pumps under it
                self._finish(RunState.ABORTED, self.control.abort_reason)
            else:
                self._finish(RunState.FAILED, reason_for(exc))
        except Exception as exc:  # a bug must still leave the bench safe and the run recorded
            log.exception("run failed unexpectedly")
            self._finish(RunState.FAILED, f"internal error: {exc!r}")
        else:
            self._finish(RunState.COMPLETED, "all steps done")
        return self.state

    def _finish(self, state: RunState, reason: str) -> None:
        failures = self.executor.rig.safe_state()
        if failures:  # an alarm reply acknowledges the alarm: the second stop goes through
            failures = self.executor.rig.safe_state()
        index = self.current_step
        step = self.steps[index].label if 0 <= index < len(self.steps) else ""
        # Where and why the run stopped, and whether the bench is safe (the run store then
        # writes its own run_ended when it hears the final state).
        self.events.record.emit(record("safe_state", state=state.value, reason=reason,
                                       step_index=self.current_step, step=step,
                                       failures=failures))
        if failures:
            self.events.record.emit(record("safe_state_incomplete", failures=failures))
        self._set_state(state, reason)
