"""Run folders: everything a run did and saw, on disk as it happens.

A run folder holds run.json (what ran, on what, when, how it ended), protocol.yaml (the
protocol as run), bench.yaml, events.jsonl (append-only, flushed per event and synced at every
step boundary) and counts.csv (one row per counted frame).
"""

from __future__ import annotations

import csv
import datetime as dt
import json
import os
import platform
import re
from pathlib import Path
from typing import Any

import platformdirs

import chipctl
from chipctl.bench import Bench
from chipctl.events import RunEvents
from chipctl.protocol.model import Protocol

COUNT_COLUMNS = [
    "t_s", "step", "zone", "field", "channel", "count", "true_count", "exposure_ms",
    "power_pct", "x_um", "y_um",
]


def default_runs_dir() -> Path:
    """Where runs go unless --runs-dir says otherwise."""
    return Path(platformdirs.user_data_dir("chipctl", appauthor=False)) / "runs"


def _now() -> str:
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


class RunRecorder:
    """Writes one run's folder; attach it to the run's events before starting."""

    def __init__(self, root: Path, protocol: Protocol, bench: Bench,
                 parameters: dict[str, str] | None = None) -> None:
        stamp = dt.datetime.now().strftime("%Y%m%d-%H%M%S")
        root.mkdir(parents=True, exist_ok=True)
        self.folder = self._unique(root / f"{stamp}-{_slug(protocol.name)}")
        self.folder.mkdir(parents=True)
        self.run_id = self.folder.name
        (self.folder / "protocol.yaml").write_text(protocol.source_text, encoding="utf-8")
        bench_text = Path(bench.path).read_text(encoding="utf-8") if bench.path else ""
        (self.folder / "bench.yaml").write_text(bench_text, encoding="utf-8")
        self.info: dict[str, Any] = {
            "run_id": self.run_id, "protocol": protocol.name, "protocol_source": protocol.source,
            "protocol_sha256": protocol.sha256, "bench": bench.name, "bench_path": bench.path,
            "parameters": parameters or {}, "status": "running", "reason": "",
            "started": _now(), "ended": None, "last_completed_step": None,
            "versions": {"chipctl": chipctl.__version__, "python": platform.python_version()},
        }
        write_json_atomic(self.folder / "run.json", self.info)
        self._events = (self.folder / "events.jsonl").open("a", encoding="utf-8")
        self._counts_file = (self.folder / "counts.csv").open("a", encoding="utf-8", newline="")
        self._counts = csv.DictWriter(self._counts_file, COUNT_COLUMNS, extrasaction="ignore")
        self._counts.writeheader()
        self._counts_file.flush()
        self.count_rows: list[dict[str, Any]] = []

    @staticmethod
    def _unique(path: Path) -> Path:
        candidate, n = path, 1
        while candidate.exists():
            n += 1
            candidate = path.with_name(f"{path.name}-{n}")
        return candidate

    def attach(self, events: RunEvents) -> None:
        """Record every event of a run."""
        events.record.connect(self.append)
        events.counted.connect(self.add_count)
        events.step_finished.connect(self._step_done)

    def append(self, event: dict[str, Any]) -> None:
        """Append one event line and flush it to the OS."""
        line = json.dumps({"wall": _now(), **event}, default=str)
        self._events.write(line + "\n")
        self._events.flush()

    def add_count(self, row: dict[str, Any]) -> None:
        """Append one counts row."""
        self.count_rows.append(row)
        self._counts.writerow(row)
        self._counts_file.flush()
        self.append({"event": "count", **row})

    def _step_done(self, index: int, label: str) -> None:
        self.info["last_completed_step"] = {"index": index, "label": label}
        self.sync()
        write_json_atomic(self.folder / "run.json", self.info)

    def sync(self) -> None:
        """Force what was written so far onto the disk."""
        for handle in (self._events, self._counts_file):
            handle.flush()
            os.fsync(handle.fileno())

    def finish(self, status: str, reason: str) -> None:
        """Mark the run ended and close the files."""
        self.info.update(status=status, reason=reason, ended=_now())
        self.sync()
        self._events.close()
        self._counts_file.close()
        write_json_atomic(self.folder / "run.json", self.info)
