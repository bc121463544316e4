"""The run the window is showing: started on the engine, its events bridged to the Qt thread."""

from __future__ import annotations

from typing import Any

from gui.bridge import RunBridge
from gui.core import Protocol, RunEvents, RunState


class RunSession:
    """Starts runs on the engine and forwards the operator's commands to the current one."""

    def __init__(self, engine: Any, bridge: RunBridge) -> None:
        self.engine = engine
        self.bridge = bridge
        self.runner: Any = None
        self.protocol: Protocol | None = None
        self.started_s = 0.0  # the engine clock's time when the run started

    @property
    def active(self) -> bool:
        """True from start until the run is completed, aborted or failed."""
        return self.runner is not None and not RunState(self.runner.state).finished

    @property
    def state(self) -> str:
        """The current run's state ('idle' before the first run)."""
        return RunState(self.runner.state).value if self.runner is not None else "idle"

    def start(self, protocol: Protocol, parameters: dict[str, str]) -> Any:
        """Start a run on a worker thread; its events reach the bridge from the first one."""
        if self.active:
            raise RuntimeError("a run is already in progress")
        events = RunEvents()
        self.bridge.attach(events)
        self.protocol = protocol
        self.started_s = float(self.engine.clock.now())
        self.runner = self.engine.start_run(protocol, parameters, events)
        return self.runner

    def pause(self) -> None:
        """Hold the fluidics and the rest of the step."""
        if self.active:
            self.runner.pause()

    def resume(self) -> None:
        """Continue a paused run."""
        if self.active:
            self.runner.resume()

    def abort(self, reason: str = "aborted by the operator") -> None:
        """Stop the run at its next checkpoint; the bench is brought to a safe state."""
        if self.active:
            self.runner.abort(reason)

    def wait(self, timeout_s: float) -> None:
        """Wait for the run's worker thread to end (after an abort)."""
        if self.runner is not None:
            self.runner.wait(timeout_s)

    def confirm(self) -> None:
        """Answer the current operator prompt."""
        if self.runner is not None:
            self.runner.confirm()

    @property
    def folder(self) -> Any:
        """The current run's folder, if the engine records one."""
        recorder = getattr(self.engine, "recorder", None)
        return getattr(recorder, "folder", None)
