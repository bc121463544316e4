"""Writing a run folder as the run happens (DESIGN.md, Runs: nothing is lost).

A run folder holds run.json (what ran, on what, when, how it ended), protocol.yaml (the
protocol as run; protocol.py for a scripted one), bench.yaml, events.jsonl (append-only; every
line is handed to the OS as it is written, so a killed controller loses nothing already
written, and synced to disk at every step boundary), counts.csv (one row per counted frame,
flushed per row), spots.csv (every vesicle detected in every frame, chipctl.runs.detections;
run.json records the counting parameters) and frames/ (raw frames as OME-TIFF, see
chipctl.runs.frames).
"""

from __future__ import annotations

import csv
import datetime as dt
import getpass
import json
import os
import re
import threading
from pathlib import Path
from typing import Any

from chipctl.config.bench import Bench
from chipctl.protocol.model import Flow, Monitor, Prime, Protocol, Step
from chipctl.run.events import RunEvents
from chipctl.runs.detections import SPOT_COLUMNS, SPOTS_NAME, spot_rows
from chipctl.runs.frames import FrameStore, KeepPolicy
from chipctl.runs.lock import RecordingLock
from chipctl.runs.syringes import SyringeLedger
from chipctl.runs.versions import device_versions, software_versions

COUNT_COLUMNS = [
    "t_s", "step", "zone", "field", "channel", "count", "true_count", "exposure_ms",
    "power_pct", "x_um", "y_um",
]


def now_iso() -> str:
    """The wall time, UTC, to the second."""
    return dt.datetime.now(dt.UTC).isoformat(timespec="seconds")


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9]+", "-", text).strip("-").lower()[:40] or "run"


def write_json_atomic(path: Path, data: dict[str, Any]) -> None:
    """Replace a JSON file so that a crash leaves either the old or the new one."""
    tmp = path.with_suffix(".tmp")
    with tmp.open("w", encoding="utf-8") as handle:
        json.dump(data, handle, indent=2, default=str)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, path)


def step_summary(step: Step) -> dict[str, Any]:
    """What the run log needs to know of a step (fluidics in particular)."""
    info: dict[str, Any] = {"kind": step.kind, "label": step.label, "line": step.line}
    flow = step.flow if isinstance(step, Monitor) else step
    if isinstance(flow, Flow | Prime):
        info.update(pump=flow.pump, rate_ul_min=flow.rate_ul_min,
                    reagent=getattr(flow, "reagent", "") or "")
    if isinstance(step, Monitor):
        info["zone"] = step.zone
    return info


class RunRecorder:
    """Writes one run's folder; attach it to the run's events before starting."""

    def __init__(self, root: Path, protocol: Protocol, bench: Bench,
                 parameters: dict[str, str] | None = None, *, devices: dict[str, Any] | None = None,
                 keep_frames: str | int = "all", counting: dict[str, Any] | None = None) -> None:
        self.protocol, self.bench = protocol, bench
        self.steps = protocol.flat_steps()
        self.folder = self._new_folder(Path(root), protocol.name)
        self.run_id = self.folder.name
        self._lock = threading.RLock()
        self._liveness = RecordingLock(self.folder)
        self._liveness.acquire()
        self._copy_sources()
        params = dict(parameters or {})
        self.info: dict[str, Any] = {
            "run_id": self.run_id, "protocol": protocol.name, "protocol_source": protocol.source,
            "protocol_sha256": protocol.sha256, "bench": bench.name, "bench_path": bench.path,
            "operator": params.get("operator") or getpass.getuser(),
            "sample": params.get("sample", ""), "parameters": params,
            "status": "running", "reason": "", "started": now_iso(), "ended": None,
            "steps_total": len(self.steps), "last_completed_step": None,
            "keep_frames": str(keep_frames), "pid": os.getpid(), "counting": counting,
            "versions": {"software": software_versions(), "devices": device_versions(devices)},
        }
        write_json_atomic(self.folder / "run.json", self.info)
        self._events = (self.folder / "events.jsonl").open("a", encoding="utf-8")
        self._counts_file = (self.folder / "counts.csv").open("a", encoding="utf-8", newline="")
        self._counts = csv.DictWriter(self._counts_file, COUNT_COLUMNS, extrasaction="ignore")
        self._counts.writeheader()
        self._counts_file.flush()
        self._spots_file = (self.folder / SPOTS_NAME).open("a", encoding="utf-8", newline="")
        self._spots = csv.DictWriter(self._spots_file, SPOT_COLUMNS)
        self._spots.writeheader()
        self._spots_file.flush()
        self.frames = FrameStore(self.folder / "frames", KeepPolicy.parse(keep_frames))
        self.syringes = SyringeLedger.from_bench(bench)
        self.count_rows: list[dict[str, Any]] = []
        self._last_frame: dict[str, Any] | None = None
        self.closed = False
        self.append({"event": "run_started", "run_id": self.run_id,
                     "syringes": self.syringes.snapshot()})

    @staticmethod
    def _new_folder(root: Path, name: str) -> Path:
        root.mkdir(parents=True, exist_ok=True)
        stamp = dt.datetime.now().strftime("%Y%m%d-%H%M%S")
        base = root / f"{stamp}-{_slug(name)}"
        candidate, n = base, 1
        while True:
            try:
                candidate.mkdir()
                return candidate
            except FileExistsError:
                n += 1
                candidate = base.with_name(f"{base.name}-{n}")

    def _copy_sources(self) -> None:
        suffix = ".py" if str(self.protocol.source).endswith(".py") else ".yaml"
        (self.folder / f"protocol{suffix}").write_text(self.protocol.source_text,
                                                      encoding="utf-8")
        path = Path(self.bench.path) if self.bench.path else None
        text = path.read_text(encoding="utf-8") if path and path.is_file() else ""
        (self.folder / "bench.yaml").write_text(text, encoding="utf-8")

    def attach(self, events: RunEvents) -> None:
        """Record every event of a run."""
        events.record.connect(self.on_record)
        events.counted.connect(self.add_count)
        events.frame.connect(self.add_frame)
        events.step_started.connect(self._step_started)
        events.step_finished.connect(self._step_done)

    # -- writing ----------------------------------------------------------------------------
    def append(self, event: dict[str, Any]) -> None:
        """Append one event line and hand it to the OS (survives the process being killed)."""
        line = json.dumps({"wall": now_iso(), **event}, default=str) + "\n"
        with self._lock:
            if self.closed:  # a late event (after finish): append it all the same
                with (self.folder / "events.jsonl").open("a", encoding="utf-8") as late:
                    late.write(line)
                return
            self._events.write(line)
            self._events.flush()

    def on_record(self, event: dict[str, Any]) -> None:
        """An executor/runner record; pump records also update the syringe ledger."""
        self.append(event)
        change = self.syringes.apply(event)
        if change is not None:
            self.append({"event": "syringe", **change})

    def add_count(self, row: dict[str, Any]) -> None:
        """Append one counts row (stage position and truth filled in from its frame)."""
        row = self._complete(row)
        with self._lock:
            self.count_rows.append(row)
            if not self.closed:
                self._counts.writerow(row)
                self._counts_file.flush()
        self.append({"event": "count", **row})

    def add_frame(self, frame: Any) -> None:
        """Write a frame (if the keep policy says so), its detections, and log it."""
        with self._lock:
            entry = self.frames.add(frame, step=self.info.get("current_step"))
            self._last_frame = entry
            result = getattr(frame, "result", None)
            if result is not None and not self.closed:
                self._spots.writerows(spot_rows(entry, result))
                self._spots_file.flush()
        self.append({"event": "frame", **entry})

    def _complete(self, row: dict[str, Any]) -> dict[str, Any]:
        """Fill a count row's missing position and truth from the frame it counted."""
        frame = self._last_frame
        if frame is None or any(frame.get(k) != row.get(k) for k in ("zone", "field", "channel")):
            return row
        filled = dict(row)
        for key in ("x_um", "y_um", "true_count"):
            if filled.get(key) is None and frame.get(key) is not None:
                filled[key] = frame[key]
        return filled

    def _step_started(self, index: int, total: int, label: str) -> None:
        self.info["current_step"] = index
        step = self.steps[index] if 0 <= index < len(self.steps) else None
        if step is not None:
            self.append({"event": "step", "index": index, **step_summary(step)})

    def _step_done(self, index: int, label: str) -> None:
        self.info["last_completed_step"] = {"index": index, "label": label}
        self.sync()
        write_json_atomic(self.folder / "run.json", self.info)

    def sync(self) -> None:
        """Force what was written so far onto the disk."""
        with self._lock:
            if self.closed:
                return
            for handle in (self._events, self._counts_file, self._spots_file):
                handle.flush()
                os.fsync(handle.fileno())
            self.frames.sync()

    def finish(self, status: str, reason: str) -> None:
        """Mark the run ended and close the files."""
        self.append({"event": "run_ended", "status": status, "reason": reason,
                     "syringes": self.syringes.snapshot()})
        self.sync()
        with self._lock:
            if self.closed:
                return
            self.info.update(status=status, reason=reason, ended=now_iso(),
                             syringes=self.syringes.snapshot())
            self.info.pop("current_step", None)
            self.closed = True
            self._events.close()
            self._counts_file.close()
            self._spots_file.close()
            write_json_atomic(self.folder / "run.json", self.info)
            self._liveness.release()
