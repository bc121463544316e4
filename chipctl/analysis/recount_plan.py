"""Batch re-analysis, the plan: which frames of which runs to count again, with what, and how
one frame is counted (the task a scheduler runs, chipctl.analysis.schedulers).

For each run, every kept OME-TIFF frame is counted again with the counting parameters the run
recorded (run.json "counting"; for older runs, its bench camera's) or the ones given. The
results go to a new folder beside the run's records, never over them
(chipctl.analysis.recount_output):

    RUN/recount/<counter version>-<UTC time>/counts.csv    the counts table, re-counted
                                            spots.csv      the detections, re-counted
                                            report.html    the report on the new counts
                                            report.json
                                            recount.json   counter, parameters, what was skipped

A run already re-counted with the same counter version and parameters is skipped (unless
`again`), so an interrupted batch can be started again. Nothing the run recorded is opened for
writing.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import json
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2

import chipctl
from chipctl.analysis.summary import load_run_bench
from chipctl.runs.folder import RunFolder
from chipctl.runs.frames import read_frame
from chipctl.runs.lock import is_being_recorded
from chipctl.runs.recorder import COUNT_COLUMNS
from chipctl.vision.counter import count_frame
from chipctl.vision.factory import count_params, params_from_record, params_record
from chipctl.vision.model import CameraCalibration, CountParams, CountResult

RECOUNT_DIR = "recount"
RECOUNT_COLUMNS = [*COUNT_COLUMNS, "previous_count", "file"]
CALIBRATION_FIELDS = ("offset_adu", "e_per_adu", "read_noise_e")


def counter_version() -> str:
    """The counter's identity: chipctl's release and a hash of the counting code (so a changed
    counter is told apart even before a release)."""
    folder = Path(count_frame.__code__.co_filename).parent
    digest = hashlib.sha256()
    for path in sorted(folder.glob("*.py")):
        digest.update(path.name.encode() + b"\0" + path.read_bytes())
    return f"{chipctl.__version__}+{digest.hexdigest()[:8]}"


def parse_overrides(pairs: Sequence[str]) -> dict[str, Any]:
    """`NAME=VALUE` counting parameters (CountParams fields and offset_adu, e_per_adu,
    read_noise_e); ValueError names what is wrong."""
    known = {f.name: f for f in dataclasses.fields(CountParams) if f.name != "calibration"}
    out: dict[str, Any] = {}
    for pair in pairs:
        name, sep, text = (part.strip() for part in pair.partition("="))
        if not sep or not name:
            raise ValueError(f"--set {pair!r}: write NAME=VALUE")
        if name not in known and name not in CALIBRATION_FIELDS:
            names = ", ".join([*known, *CALIBRATION_FIELDS])
            raise ValueError(f"--set {name}: not a counting parameter; known: {names}")
        out[name] = _value(name, text, known.get(name))
    return out


def _value(name: str, text: str, spec: dataclasses.Field[Any] | None) -> Any:
    if text.lower() in ("none", "auto"):
        return None
    if spec is not None and isinstance(spec.default, bool):
        if text.lower() not in ("true", "false", "yes", "no", "1", "0"):
            raise ValueError(f"--set {name}: say true or false, not {text!r}")
        return text.lower() in ("true", "yes", "1")
    try:
        return float(text)
    except ValueError:
        raise ValueError(f"--set {name}: {text!r} is not a number") from None


def count_parameters(run: RunFolder, overrides: dict[str, Any]) -> CountParams:
    """What the run counted with (its recorded parameters, else its bench camera's), with
    `overrides` applied."""
    recorded = run.info.get("counting")
    if isinstance(recorded, dict):
        params = params_from_record(recorded)
    else:
        bench = load_run_bench(run)
        params = count_params(bench.camera if bench is not None else None)
    calibration = {k: v for k, v in overrides.items() if k in CALIBRATION_FIELDS}
    if calibration:
        base = params.calibration or CameraCalibration(None, None, None)
        params = dataclasses.replace(params, calibration=dataclasses.replace(base, **calibration))
    rest = {k: v for k, v in overrides.items() if k not in CALIBRATION_FIELDS}
    return dataclasses.replace(params, **rest)


def params_json(params: CountParams) -> dict[str, Any]:
    """The parameters as they are written to recount.json (and compared when skipping)."""
    return json.loads(json.dumps(params_record(params)))


# -- one frame (runs on a worker) -----------------------------------------------------------------
@dataclass(frozen=True)
class FrameOutcome:
    """A frame's new count, or why it has none."""

    path: str
    result: CountResult | None = None
    error: str = ""


def count_saved_frame(path: str, params: CountParams, one_thread: bool = False) -> FrameOutcome:
    """Read one saved OME-TIFF frame and count it: the task a scheduler runs per frame.

    `one_thread` (on pool and cluster workers) keeps OpenCV to one thread in the worker: the
    frames counted side by side are the parallelism, and OpenCV's own threads in every worker
    would oversubscribe the CPUs.
    """
    if one_thread:
        cv2.setNumThreads(1)
    try:
        image, _ = read_frame(path)
    except Exception as exc:  # noqa: BLE001 - any damage to a file makes it unreadable
        return FrameOutcome(path, error=f"cannot read: {type(exc).__name__}: {exc}")
    try:
        result = count_frame(image, params)
    except (ValueError, TypeError) as exc:
        return FrameOutcome(path, error=f"cannot count: {exc}")
    return FrameOutcome(path, result)


# -- one run -----------------------------------------------------------------------------------
@dataclass(frozen=True)
class FrameTask:
    """A kept frame of a run: its frame-log entry and the counts row its count belongs to."""

    file: str  # relative to the run folder
    entry: dict[str, Any]
    row: dict[str, Any]


def frame_tasks(run: RunFolder) -> list[FrameTask]:
    """Every frame the run kept, each with the counts row logged right after it (the row
    carries the run's time, step, zone, field and channel)."""
    tasks: list[FrameTask] = []
    last: dict[str, Any] | None = None
    rows: dict[int, dict[str, Any]] = {}
    for event in run.events:
        if event.get("event") == "frame":
            last = event if event.get("file") else None
            if last is not None:
                tasks.append(FrameTask(str(last["file"]), last, _row_from_frame(last)))
        elif event.get("event") == "count" and last is not None:
            if all(event.get(k) == last.get(k) for k in ("zone", "field", "channel")):
                rows[len(tasks) - 1] = {k: event.get(k) for k in COUNT_COLUMNS}
            last = None
    return [FrameTask(t.file, t.entry, rows.get(i, t.row)) for i, t in enumerate(tasks)]


def _row_from_frame(entry: dict[str, Any]) -> dict[str, Any]:
    row = {k: entry.get(k) for k in COUNT_COLUMNS}
    row["t_s"], row["count"] = entry.get("time_s"), None
    return row


@dataclass
class RecountResult:
    """What became of one run."""

    run_id: str
    folder: Path | None = None  # the new recount folder
    frames: int = 0
    recounted: int = 0
    unreadable: list[tuple[str, str]] = field(default_factory=list)  # (path, why)
    previous_total: int = 0
    new_total: int = 0
    skipped: str = ""  # why the run was left out (nothing to do)
    error: str = ""  # why the run could not be re-counted (no frame readable, cannot write)
    report_error: str = ""  # why the report could not be written (the counts were)


@dataclass(frozen=True)
class RecountOptions:
    """How a batch re-counts: parameter overrides, where results go, whether to redo."""

    overrides: dict[str, Any] = field(default_factory=dict)
    out_dir: Path | None = None  # None: in each run folder
    again: bool = False  # re-count runs already re-counted with this counter and parameters


@dataclass
class RunPlan:
    """One run's share of the batch."""

    run: RunFolder
    target: Path  # the run's recount/ folder
    params: CountParams
    tasks: list[FrameTask]
    outcomes: dict[int, FrameOutcome] = field(default_factory=dict)


def _done_before(target: Path, version: str, params: CountParams) -> Path | None:
    wanted = params_json(params)
    for info in sorted(target.glob("*/recount.json")):
        try:
            done = json.loads(info.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        if done.get("counter_version") == version and done.get("parameters") == wanted:
            return info.parent
    return None


def plan_run(run: RunFolder, options: RecountOptions, version: str) -> RunPlan | RecountResult:
    """The run's frames to count, or why it is skipped."""
    if run.info.get("status") in ("running", "paused") and is_being_recorded(run.path):
        return RecountResult(run.run_id, skipped="still being recorded")
    tasks = frame_tasks(run)
    if not tasks:
        return RecountResult(run.run_id, skipped="no frames were kept (--keep-frames none)")
    base = options.out_dir / run.run_id if options.out_dir else run.path
    target = base / RECOUNT_DIR
    params = count_parameters(run, options.overrides)
    done = None if options.again else _done_before(target, version, params)
    if done is not None:
        return RecountResult(run.run_id, folder=done, frames=len(tasks),
                             skipped=f"already re-counted with counter {version}: {done}")
    return RunPlan(run, target, params, tasks)


def stamp() -> str:
    """The UTC time, for a recount folder's name."""
    return dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%SZ")


def publish(partial: Path, target: Path, name: str) -> Path:
    """Rename a finished recount folder into place (a second one in the same second gets -2)."""
    final, n = target / name, 1
    while True:
        try:
            os.rename(partial, final)  # never replaces an existing folder with files in it
            return final
        except OSError:
            if not final.exists():
                raise
            n += 1
            final = target / f"{name}-{n}"
