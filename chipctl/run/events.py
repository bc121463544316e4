"""Run events: what the engine tells the CLI, the GUI and the run store, as it happens.

Signals are psygnal signals emitted from the run's worker thread; listeners must be quick (the
GUI bridges them onto the Qt thread, the run store appends them to events.jsonl).
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any

from psygnal import Signal, SignalGroup


class RunState(StrEnum):
    """States of a run (DESIGN.md, Run control)."""

    IDLE = "idle"
    RUNNING = "running"
    PAUSED = "paused"
    COMPLETED = "completed"
    ABORTED = "aborted"
    FAILED = "failed"

    @property
    def finished(self) -> bool:
        """True once the run can no longer change state."""
        return self in (RunState.COMPLETED, RunState.ABORTED, RunState.FAILED)


class RunEvents(SignalGroup):
    """The engine's signals."""

    state_changed = Signal(str, str)  # new state, reason
    step_started = Signal(int, int, str)  # index (0-based), total, label
    step_finished = Signal(int, str)  # index, label
    counted = Signal(dict)  # {"zone", "channel", "field", "count", "t", "truth"?, ...}
    frame = Signal(object)  # chipctl.devices.interfaces.Frame
    prompt = Signal(str)  # message; answer with Runner.confirm()
    record = Signal(dict)  # every event as a JSON-able record (for the event log)


def record(kind: str, /, **fields: Any) -> dict[str, Any]:
    """A JSON-able event record."""
    return {"event": kind, **fields}
