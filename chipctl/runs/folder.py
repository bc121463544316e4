"""Reading a run folder back, whole or cut off: the folder is the truth about a run."""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from chipctl.runs.detections import SPOTS_NAME, read_detections
from chipctl.vision.model import CountResult

INT_COLUMNS = ("step", "field", "count", "true_count", "saturated")
FLOAT_COLUMNS = ("t_s", "exposure_ms", "power_pct", "x_um", "y_um", "threshold", "noise_adu",
                 "psf_sigma_px", "estimated_count")


class RunNotFound(LookupError):
    """No such run (the message names what was looked for and where)."""


def _complete_lines(path: Path) -> list[str]:
    """The file's lines, less a last line torn by a crash mid-write."""
    if not path.is_file():
        return []
    text = path.read_text(encoding="utf-8", errors="replace")
    lines = text.split("\n")
    return lines[:-1]  # the part after the last newline is empty or torn


def read_events(path: Path) -> list[dict[str, Any]]:
    """Every complete, readable line of an events.jsonl."""
    events = []
    for line in _complete_lines(path):
        try:
            item = json.loads(line)
        except ValueError:
            continue
        if isinstance(item, dict):
            events.append(item)
    return events


def _typed(row: dict[str, str]) -> dict[str, Any]:
    out: dict[str, Any] = dict(row)
    for key in INT_COLUMNS:
        value = row.get(key, "")
        out[key] = int(float(value)) if value not in ("", None) else None
    for key in FLOAT_COLUMNS:
        value = row.get(key, "")
        out[key] = float(value) if value not in ("", None) else None
    return out


def read_counts(path: Path) -> list[dict[str, Any]]:
    """The complete rows of a counts.csv, typed."""
    lines = _complete_lines(path)
    rows = []
    for row in csv.DictReader(lines):
        try:
            rows.append(_typed(row))
        except ValueError:
            continue
    return rows


@dataclass
class RunFolder:
    """A run as found on disk."""

    path: Path
    info: dict[str, Any]
    _events: list[dict[str, Any]] | None = field(default=None, repr=False)
    _counts: list[dict[str, Any]] | None = field(default=None, repr=False)
    _detections: dict[int, CountResult] | None = field(default=None, repr=False)

    @classmethod
    def open(cls, path: Path) -> RunFolder:
        """Load run.json (RunNotFound if the folder is not a run)."""
        run_json = path / "run.json"
        try:
            info = json.loads(run_json.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise RunNotFound(f"{path} is not a readable run folder: {exc}") from exc
        return cls(path, info)

    @property
    def run_id(self) -> str:
        """The folder's name."""
        return str(self.info.get("run_id") or self.path.name)

    @property
    def events(self) -> list[dict[str, Any]]:
        """The event log (complete lines)."""
        if self._events is None:
            self._events = read_events(self.path / "events.jsonl")
        return self._events

    @property
    def counts(self) -> list[dict[str, Any]]:
        """The counts table (complete rows)."""
        if self._counts is None:
            self._counts = read_counts(self.path / "counts.csv")
        return self._counts

    def detections(self) -> dict[int, CountResult] | None:
        """Per frame number (seq), its recorded spots; None for a run recorded before runs
        kept their detections (no counting parameters in run.json)."""
        if not self.info.get("counting"):
            return None
        if self._detections is None:  # read once: a report's estimators and images share it
            self._detections = read_detections(self.path / SPOTS_NAME)
        return self._detections

    def frames(self) -> list[dict[str, Any]]:
        """Log entries of the frames kept on disk (whose file exists)."""
        return [e for e in self.events if e.get("event") == "frame" and e.get("file")
                and (self.path / e["file"]).is_file()]

    def last_completed_step(self) -> dict[str, Any] | None:
        """The last step_finished in the log (more recent than run.json's copy)."""
        done = [e for e in self.events if e.get("event") == "step_finished"]
        if not done:
            return self.info.get("last_completed_step")
        return {"index": done[-1].get("index"), "label": done[-1].get("label")}


def _is_protocol_run(folder: Path) -> bool:
    try:
        info = json.loads((folder / "run.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return isinstance(info, dict) and info.get("kind", "protocol") == "protocol"


def resolve_run(root: Path, name: str) -> Path:
    """A run folder from its id, a unique id prefix, "last" (the newest protocol run, not a
    manual session), or a path."""
    direct = Path(name)
    if (direct / "run.json").is_file():
        return direct
    candidates = sorted(p.parent for p in root.glob("*/run.json"))
    if name in ("last", "latest"):
        newest = next((p for p in sorted(candidates, key=lambda p: p.name, reverse=True)
                       if _is_protocol_run(p)), None)
        if newest is not None:
            return newest
    exact = [p for p in candidates if p.name == name]
    if exact:
        return exact[0]
    matches = [p for p in candidates if p.name.startswith(name) or name in p.name]
    if len(matches) == 1:
        return matches[0]
    if not matches:
        raise RunNotFound(f"no run {name!r} in {root}")
    listing = ", ".join(p.name for p in matches[:5])
    raise RunNotFound(f"{name!r} matches {len(matches)} runs in {root}: {listing}")


def recorded_counting(frame_path: str | Path) -> dict[str, Any] | None:
    """The counting parameters of the run a kept frame belongs to (RUN/frames/FILE), if any."""
    run_json = Path(frame_path).resolve().parent.parent / "run.json"
    try:
        info = json.loads(run_json.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    counting = info.get("counting") if isinstance(info, dict) else None
    return counting if isinstance(counting, dict) else None
