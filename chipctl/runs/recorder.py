"""Writing a run folder as the run happens (DESIGN.md, Runs: nothing is lost).

A run folder is a record folder (chipctl.runs.record: run.json, bench.yaml, the append-only
events.jsonl, synced to disk at every step boundary) of kind "protocol" that also holds
protocol.yaml (the protocol as run; protocol.py for a scripted one), counts.csv (one row per
counted frame, flushed per row), spots.csv (every vesicle detected in every frame,
chipctl.runs.detections; run.json records the counting parameters) and frames/ (raw frames
as OME-TIFF, see chipctl.runs.frames). Field numbers are 1-based, as the executor numbers
them (run.json says so: "fields_from": 1).
"""

from __future__ import annotations

import csv
from pathlib import Path
from typing import IO, Any

from chipctl.config.bench import Bench
from chipctl.protocol.model import Flow, Monitor, Prime, Protocol, Step
from chipctl.run.events import RunEvents
from chipctl.runs.detections import SPOT_COLUMNS, SPOTS_NAME, spot_text
from chipctl.runs.frames import FrameStore, KeepPolicy
from chipctl.runs.record import RecordFolder, now_iso, write_json_atomic

__all__ = ["COUNT_COLUMNS", "RunRecorder", "now_iso", "step_summary", "write_json_atomic"]

COUNT_COLUMNS = [
    "t_s", "step", "zone", "field", "channel", "count", "true_count", "exposure_ms",
    "power_pct", "x_um", "y_um", "threshold", "noise_adu", "saturated", "psf_sigma_px",
    "estimated_count",
]


def step_summary(step: Step) -> dict[str, Any]:
    """What the run log needs to know of a step (fluidics in particular)."""
    info: dict[str, Any] = {"kind": step.kind, "label": step.label, "line": step.line}
    flow = step.flow if isinstance(step, Monitor) else step
    if isinstance(flow, Flow | Prime) and flow.pump:
        info.update(pump=flow.pump, rate_ul_min=flow.rate_ul_min,
                    reagent=getattr(flow, "reagent", "") or "")
    labels = {m: d for f in (step.flows if isinstance(step, Monitor) else (step,))
              if isinstance(f, Flow) for m, d in f.labels}
    if labels:
        info["labels"] = labels  # marker -> dye, from the stain: the report reads zones by it
    if isinstance(step, Monitor):
        info["zone"] = step.zone
        if step.incubate_s > 0:
            info["incubate_s"] = step.incubate_s
    return info


class RunRecorder(RecordFolder):
    """Writes one run's folder; attach it to the run's events before starting."""

    kind = "protocol"

    def __init__(self, root: Path, protocol: Protocol, bench: Bench,
                 parameters: dict[str, str] | None = None, *, devices: dict[str, Any] | None = None,
                 keep_frames: str | int = "all", counting: dict[str, Any] | None = None) -> None:
        self.protocol = protocol
        self.steps = protocol.flat_steps()
        params = dict(parameters or {})
        super().__init__(root, protocol.name, bench, devices=devices,
                         operator=params.get("operator", ""), extra={
            "protocol": protocol.name, "protocol_source": protocol.source,
            "protocol_sha256": protocol.sha256, "sample": params.get("sample", ""),
            "parameters": params, "steps_total": len(self.steps), "last_completed_step": None,
            "keep_frames": str(keep_frames), "counting": counting, "fields_from": 1,
        })
        self._copy_protocol()
        self._counts_file = (self.folder / "counts.csv").open("a", encoding="utf-8", newline="")
        self._counts = csv.DictWriter(self._counts_file, COUNT_COLUMNS, extrasaction="ignore")
        self._counts.writeheader()
        self._counts_file.flush()
        self._spots_file = (self.folder / SPOTS_NAME).open("a", encoding="utf-8", newline="")
        csv.writer(self._spots_file).writerow(SPOT_COLUMNS)
        self._spots_file.flush()
        self.frames = FrameStore(self.folder / "frames", KeepPolicy.parse(keep_frames))
        self.count_rows: list[dict[str, Any]] = []
        self._last_frame: dict[str, Any] | None = None
        self.append({"event": "run_started", "run_id": self.run_id, "kind": self.kind,
                     "syringes": self.syringes.snapshot()})

    def _copy_protocol(self) -> None:
        suffix = ".py" if str(self.protocol.source).endswith(".py") else ".yaml"
        (self.folder / f"protocol{suffix}").write_text(self.protocol.source_text,
                                                      encoding="utf-8")

    def attach(self, events: RunEvents) -> None:
        """Record every event of a run."""
        events.record.connect(self.on_record)
        events.counted.connect(self.add_count)
        events.frame.connect(self.add_frame)
        events.step_started.connect(self._step_started)
        events.step_finished.connect(self._step_done)

    # -- writing ----------------------------------------------------------------------------
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
                self._spots_file.write(spot_text(entry, result))
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
        self.write_info()

    def _files(self) -> list[IO[str]]:
        return [*super()._files(), self._counts_file, self._spots_file]

    def sync(self) -> None:
        """Force what was written so far (frames included) onto the disk."""
        with self._lock:
            if self.closed:
                return
            super().sync()
            self.frames.sync()
