"""The record of manual work: a manual session is a folder of the runs directory like a run's.

Manual pump, light, stage, camera and valve actions (from the GUI or a script, through
chipctl.manual.ManualSession) are recorded as they happen, with what was refused, every
interlock and every emergency stop, in the run's event format (events.jsonl, one JSON object a
line; the pump records are a run's, so the syringe account and crash recovery read them
alike). run.json says `kind: manual`; `chipctl runs list` and `runs show` list and show it.
Each line is synced to disk as it is written: manual work is slow, and every action counts.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from chipctl.config.bench import Bench
from chipctl.runs.record import RecordFolder

MANUAL_KIND = "manual"
MANUAL_NAME = "manual control"


class ManualRecord(RecordFolder):
    """One manual session's folder: open from its first action to `finish`."""

    kind = MANUAL_KIND

    def __init__(self, root: Path, bench: Bench, devices: dict[str, Any] | None = None,
                 operator: str = "") -> None:
        super().__init__(root, "manual", bench, devices=devices, operator=operator, extra={
            "protocol": MANUAL_NAME, "sample": "", "parameters": {}, "steps_total": 0,
            "last_completed_step": None,
        })
        self.append({"event": "run_started", "run_id": self.run_id, "kind": self.kind,
                     "syringes": self.syringes.snapshot()})
        self.sync()

    def on_record(self, event: dict[str, Any]) -> None:
        """Record one event (and the syringe it changed), on disk before returning."""
        super().on_record(event)
        self.sync()


def is_manual(info: dict[str, Any]) -> bool:
    """True for a manual session's run.json."""
    return info.get("kind") == MANUAL_KIND


ACTION_EVENTS = {
    "manual": "", "manual_refused": "REFUSED ", "manual_failed": "FAILED ",
    "interlock": "INTERLOCK ", "emergency_stop": "EMERGENCY STOP ", "pump_done": "",
}
"""The events of a manual session a person reads, and how each is marked."""


def _value(value: Any) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)


def describe_manual_event(event: dict[str, Any]) -> str | None:
    """One line for a person (wall time, device, action, settings, reason), or None for
    events that are bookkeeping (syringe accounts, session start and end)."""
    kind = event.get("event")
    if kind not in ACTION_EVENTS:
        return None
    wall = str(event.get("wall", ""))[11:19]
    if kind == "pump_done":
        moved = "infused" if event.get("direction") == "infuse" else "withdrew"
        text = f"{event.get('pump')} {moved} {abs(float(event.get('delivered_ul') or 0)):g} uL"
    elif kind == "emergency_stop":
        failures = event.get("failures") or []
        text = f"{event.get('reason', '')}" + (f"; not stopped: {failures}" if failures else "")
    else:
        skip = {"event", "wall", "device", "action", "reason", "error", "t_s"}
        settings = " ".join(f"{k}={_value(v)}" for k, v in event.items()
                            if k not in skip and v is not None)
        text = " ".join(str(p) for p in (event.get("device"), event.get("action"), settings) if p)
        why = event.get("reason") or event.get("error")
        text += f": {why}" if why else ""
    return f"{wall}  {ACTION_EVENTS[str(kind)]}{text}"
