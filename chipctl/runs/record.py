"""What every folder of the runs directory is while it is recorded: a protocol run
(chipctl.runs.recorder) and a manual session (chipctl.runs.manual) alike.

A record folder holds run.json (what it is, `kind` "protocol" or "manual", on which bench,
by whom, when, how it ended), bench.yaml, and events.jsonl: append-only, one JSON object a
line, each handed to the OS as it is written so a killed controller loses nothing already
written. A liveness lock is held while the folder is recorded, so a folder still saying
"running" whose lock is free was cut off (chipctl.runs.recovery). Pump records keep a
running account of every syringe (chipctl.runs.syringes).
"""

from __future__ import annotations

import datetime as dt
import getpass
import json
import os
import re
import threading
from pathlib import Path
from typing import IO, Any

from chipctl.config.bench import Bench
from chipctl.runs.lock import RecordingLock
from chipctl.runs.syringes import SyringeLedger
from chipctl.runs.versions import device_versions, software_versions


def now_iso() -> str:
    """The wall time, UTC, to the second."""
    return dt.datetime.now(dt.UTC).isoformat(timespec="seconds")


def slug(text: str) -> str:
    """`text` as a folder-name part: lower-case letters, digits and dashes."""
    return re.sub(r"[^A-Za-z0-9]+", "-", text).strip("-").lower()[:40] or "run"


def write_json_atomic(path: Path, data: dict[str, Any]) -> None:
    """Replace a JSON file so that a crash leaves either the old or the new one."""
    tmp = path.with_suffix(".tmp")
    with tmp.open("w", encoding="utf-8") as handle:
        json.dump(data, handle, indent=2, default=str)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, path)


def new_folder(root: Path, name: str) -> Path:
    """A new folder under `root` named by the local time and `name` (-2, -3 ... if taken)."""
    root.mkdir(parents=True, exist_ok=True)
    stamp = dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    base = root / f"{stamp}-{slug(name)}"
    candidate, n = base, 1
    while True:
        try:
            candidate.mkdir()
            return candidate
        except FileExistsError:
            n += 1
            candidate = base.with_name(f"{base.name}-{n}")


class RecordFolder:
    """One folder being recorded: run.json, bench.yaml and an append-only events.jsonl.

    Thread-safe: events may be appended from any thread. `info` is what run.json holds
    (`kind`, `name` and whatever `extra` adds); `finish` writes the final status and closes.
    """

    kind = "protocol"

    def __init__(self, root: Path, name: str, bench: Bench, *, extra: dict[str, Any],
                 devices: dict[str, Any] | None = None, operator: str = "") -> None:
        self.bench = bench
        self.folder = new_folder(Path(root), name)
        self.run_id = self.folder.name
        self._lock = threading.RLock()
        self._closed_event = threading.Event()
        self.closed = False
        self._liveness = RecordingLock(self.folder)
        self._liveness.acquire()
        self._copy_bench()
        self.syringes = SyringeLedger.from_bench(bench, devices)
        self.info: dict[str, Any] = {
            "run_id": self.run_id, "kind": self.kind, **extra, "bench": bench.name,
            "bench_path": bench.path, "operator": operator or getpass.getuser(),
            "status": "running", "reason": "", "started": now_iso(), "ended": None,
            "pid": os.getpid(),
            "versions": {"software": software_versions(), "devices": device_versions(devices)},
        }
        self.write_info()
        self._events = (self.folder / "events.jsonl").open("a", encoding="utf-8")

    def _copy_bench(self) -> None:
        path = Path(self.bench.path) if self.bench.path else None
        text = path.read_text(encoding="utf-8") if path and path.is_file() else ""
        (self.folder / "bench.yaml").write_text(text, encoding="utf-8")

    def write_info(self) -> None:
        """Write run.json as `info` says now."""
        write_json_atomic(self.folder / "run.json", self.info)

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
        """A record of the engine; pump records also update the syringe ledger."""
        self.append(event)
        change = self.syringes.apply(event)
        if change is not None:
            self.append({"event": "syringe", **change})

    def _files(self) -> list[IO[str]]:
        """The open files synced and closed with the events (a subclass adds its own)."""
        return [self._events]

    def sync(self) -> None:
        """Force what was written so far onto the disk."""
        with self._lock:
            if self.closed:
                return
            for handle in self._files():
                handle.flush()
                os.fsync(handle.fileno())

    def finish(self, status: str, reason: str) -> None:
        """Mark the folder ended and close its files."""
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
            for handle in self._files():
                handle.close()
            self.write_info()
            self._liveness.release()
        self._closed_event.set()

    def wait_closed(self, timeout_s: float | None = None) -> bool:
        """Wait until `finish` has written the final status; True if it has."""
        return self._closed_event.wait(timeout_s)
