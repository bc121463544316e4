"""The runner: the run's state machine. It owns the control flow and never does I/O itself;
it drives a StepEngine (the executor) that does.

idle -> running <-> paused -> completed | aborted | failed. Pause and abort are honoured at the
engine's checkpoints (RunControl); an emergency stop also halts every pump and light at once
from the caller's thread (StepEngine.halt). Whatever ends the run, the engine brings the bench
to a safe state (teardown_run) and the reason is recorded: an interlock (pump stall or reset
alarm, end of travel, over-pressure, camera timeout, device lost) fails the run with the
interlock's reason.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Protocol as Interface

from chipctl.protocol.model import Protocol, Step
from chipctl.run.control import RunAborted, RunControl
from chipctl.run.events import RunEvents, RunState, record
from chipctl.run.interlocks import Interlock, reason_for
from drivers.errors import DeviceError

log = logging.getLogger(__name__)


class StepFailed(Exception):
    """A step could not be carried out (a device refused, a pump never finished)."""


class StepEngine(Interface):
    """What the runner drives: how a run's steps reach the devices (in the spirit of
    pymmcore-plus' MDA engine: set up, execute, tear down). Calls come from the run's worker
    thread, except `halt`, which may come from any thread."""

    def setup_run(self, protocol: Protocol) -> None:
        """Before the first step (start what the run needs, e.g. its counter)."""

    def label(self, step: Step) -> str:
        """The step's label as the operator reads it (run parameters filled in)."""

    def setup_step(self, index: int, step: Step) -> None:
        """Before `step` (index in the flat step list) runs."""

    def execute_step(self, step: Step) -> None:
        """Carry the step out; raises RunAborted, an Interlock, StepFailed or a DeviceError."""

    def teardown_step(self, step: Step) -> None:
        """After the step succeeded (e.g. every frame it took is counted and published)."""

    def teardown_run(self) -> list[str]:
        """After the last step, whatever ended the run: the bench in a safe state; returns
        what could not be made safe."""

    def halt(self) -> list[str]:
        """Emergency stop: every pump and light off now; returns what could not be stopped."""


class Runner:
    """Runs one protocol on one StepEngine."""

    def __init__(self, protocol: Protocol, engine: StepEngine, control: RunControl,
                 events: RunEvents) -> None:
        self.protocol = protocol
        self.engine = engine
        self.control = control
        self.events = events
        self.steps = protocol.flat_steps()
        self.state = RunState.IDLE
        self.reason = ""
        self.current_step = -1
        self.started_at: float | None = None
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self._halting = threading.RLock()  # held by an emergency stop while it halts

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

    def emergency_stop(self, reason: str = "emergency stop",
                       event: str = "emergency_stop") -> list[str]:
        """Abort the run and halt every pump and light now, from this thread (New Era pumps by
        broadcast), recorded as `event` (`interrupted` for a signal); returns what could not
        be stopped."""
        if not self.state.finished:  # recorded before the run thread can finish and close
            self.events.record.emit(record(event, reason=reason))
        with self._halting:  # the run ends (and frees the bench) only once the halt is done
            self.control.request_abort(reason)
            return self.engine.halt()

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
        self.control.state_changed.connect(self._on_control_state)
        self.started_at = time.time()
        self._set_state(RunState.RUNNING, "started")
        try:
            self.engine.setup_run(self.protocol)
            for index, step in enumerate(self.steps):
                self._run_step(index, step)
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

    def _run_step(self, index: int, step: Step) -> None:
        self.current_step = index
        self.control.checkpoint()
        self.engine.setup_step(index, step)
        label = self.engine.label(step)
        self.events.step_started.emit(index, len(self.steps), label)
        self.events.record.emit(record("step_started", index=index, label=label,
                                       step_kind=step.kind, line=step.line))
        self.engine.execute_step(step)
        self.engine.teardown_step(step)
        self.events.step_finished.emit(index, label)
        self.events.record.emit(record("step_finished", index=index, label=label))

    def _finish(self, state: RunState, reason: str) -> None:
        self.control.state_changed.disconnect(self._on_control_state)
        with self._halting:  # an emergency stop's halt under way finishes first
            self._end(state, reason)

    def _end(self, state: RunState, reason: str) -> None:
        try:  # a failing teardown must not keep the run from ending (and being recorded)
            failures = self.engine.teardown_run()
        except Exception as exc:  # noqa: BLE001 - recorded as what could not be made safe
            log.exception("teardown failed")
            failures = [f"teardown: {exc!r}"]
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
