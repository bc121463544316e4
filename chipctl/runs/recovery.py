"""Runs cut off by a crash: found, marked interrupted, and explained to the operator.

A run folder still saying "running" whose recording lock no live process holds was cut off
(the controller was killed or the computer went down). Marking it interrupted rewrites
run.json (atomically) and appends one line to the event log; nothing written is changed.
"""

from __future__ import annotations

import json
import os
from typing import Any

from chipctl.runs.folder import RunFolder, RunNotFound
from chipctl.runs.lock import is_being_recorded
from chipctl.runs.manual import is_manual
from chipctl.runs.record import now_iso, write_json_atomic
from chipctl.runs.syringes import syringes_from_events

INTERRUPTED = "interrupted"


def is_cut_off(run: RunFolder) -> bool:
    """True if the run says it is running but no process is recording it. The status is read
    again after the lock is found free: a recorder writes its final status before it lets go
    of the lock, so a run that ended between `run`'s reading and the lock check is not cut
    off (it was once: a completed run, seen by the app's history at its end, marked
    interrupted)."""
    running = ("running", "paused")
    if run.info.get("status") not in running or is_being_recorded(run.path):
        return False
    try:
        return RunFolder.open(run.path).info.get("status") in running
    except RunNotFound:
        return False


def _append_event(run: RunFolder, event: dict[str, Any]) -> None:
    path = run.path / "events.jsonl"
    with path.open("a+", encoding="utf-8") as handle:
        handle.seek(0, os.SEEK_END)
        if handle.tell() > 0:
            handle.seek(handle.tell() - 1)
            if handle.read(1) != "\n":
                handle.write("\n")  # close a line torn by the crash; readers skip it
        handle.write(json.dumps(event, default=str) + "\n")
        handle.flush()
        os.fsync(handle.fileno())


def mark_interrupted(run: RunFolder) -> dict[str, Any]:
    """Record that the run was cut off; returns the updated run.json content."""
    events = run.events
    last_step = run.last_completed_step()
    last_wall = next((e.get("wall") for e in reversed(events) if e.get("wall")), None)
    syringes = syringes_from_events(events)
    total = run.info.get("steps_total")
    step_text = "no step completed" if last_step is None else (
        f"last completed step {int(last_step['index']) + 1}"
        + (f"/{total}" if total else "") + f" ({last_step.get('label')})")
    reason = (f"the controller stopped unexpectedly; {step_text}" if not is_manual(run.info)
              else "the controller stopped unexpectedly during manual work")
    run.info.update(status=INTERRUPTED, ended=last_wall, last_completed_step=last_step,
                    reason=reason, syringes=syringes, recovered=now_iso())
    run.info.pop("current_step", None)
    _append_event(run, {"wall": now_iso(), "event": "interrupted", "reason": run.info["reason"],
                        "last_completed_step": last_step, "syringes": syringes})
    write_json_atomic(run.path / "run.json", run.info)
    run._events = None
    return run.info


def _num(value: Any) -> str:
    return f"{value:g}" if isinstance(value, int | float) else str(value)


def _syringe_line(name: str, state: dict[str, Any]) -> str:
    reagent = state.get("reagent") or "?"
    contents = state.get("contents_ul")
    held = f"{contents:g} uL" if isinstance(contents, int | float) else "unknown volume"
    line = f"    {name} ({reagent}): {held} at the last record"
    flight = state.get("in_flight")
    if flight:
        verb = {"infuse": "infusing", "withdraw": "withdrawing"}.get(
            str(flight.get("direction")), "pumping")
        line += (f"; was {verb} {_num(flight.get('volume_ul'))} uL at"
                 f" {_num(flight.get('rate_ul_min'))} uL/min when the run stopped"
                 + (f" ({_num(flight['delivered_ul'])} uL delivered before a pause)"
                    if flight.get("delivered_ul") is not None else "")
                 + ", so it may hold up to that much less")
    return line


def describe_interruption(info: dict[str, Any]) -> str:
    """What the operator needs to know about an interrupted run."""
    what = (f"manual session {info.get('run_id')} (started {info.get('started')})"
            if is_manual(info) else
            f"run {info.get('run_id')} ({info.get('protocol')}, started {info.get('started')})")
    lines = [f"{what} was interrupted: {info.get('reason')}.",
             "  Its data up to the last record are kept; what each syringe held:"]
    syringes = info.get("syringes") or {}
    lines += [_syringe_line(name, state) for name, state in syringes.items()]
    if not syringes:
        lines.append("    (no syringe records)")
    return "\n".join(lines)
