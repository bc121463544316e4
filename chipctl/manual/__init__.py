"""Manual work on the bench, recorded and guarded like a run.

Every manual action (a pump infusing or withdrawing, a light, a stage or focus move, the
camera's exposure, a snap, live view, autofocus, a valve port) goes through `ManualSession`,
which the engine owns (`Engine.manual`). Each action is checked first, by the same interlocks
a protocol step meets: the chip's pressure limit for the total flow of every pump running
(chipctl.run.interlocks.check_pressure), what the syringe holds or has room for, a syringe at
the end of its travel, the stage's travel limits, the illuminator's channels, the camera's
exposure range; and no manual action while a run has the bench. A refused action raises
ManualRefused (a ValueError whose message says which limit) before anything is sent.

What is done, refused, failed, stopped by an interlock or by an emergency stop is recorded in
a manual session (chipctl.runs.manual: a folder of the runs directory, events.jsonl in a
run's event format, `chipctl runs list` shows it) opened by the first action and closed with
the engine. A manual flow is a run's PumpRun: its pump records keep the syringe account, and
a watcher thread polls it until it ends, so a stall alarm, the end of travel or a lost pump is
recorded as the interlock it is and the pump is stopped blindly, as the safe state does.
Stopping (a pump, the light, the stage) is never refused. Thread-safe: actions may come from
any thread (the GUI's device pool) and run on it; records go out on `events.record` too.
"""

from chipctl.manual.base import EMPTY_UL, POLL_WALL_S, ManualRefused
from chipctl.manual.session import ManualSession

__all__ = ["EMPTY_UL", "POLL_WALL_S", "ManualRefused", "ManualSession"]
