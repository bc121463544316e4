"""The run index: a SQLite table of every run folder under a runs directory.

The folders are the truth; the index is a cache that `refresh` brings up to date (new and
changed folders are read, vanished ones dropped) and `rebuild` recreates from scratch.
Refreshing also finds runs cut off by a crash and marks them interrupted.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from chipctl.config.sourcefile import clean_text
from chipctl.runs.folder import RunFolder, RunNotFound
from chipctl.runs.recovery import is_cut_off, mark_interrupted

INDEX_NAME = "index.sqlite"
COLUMNS = ("run_id", "folder", "protocol", "protocol_sha256", "sample", "operator", "status",
           "reason", "started", "ended", "last_step", "bench", "mtime_ns")
SCHEMA = f"""CREATE TABLE IF NOT EXISTS runs ({", ".join(
    f"{c} TEXT PRIMARY KEY" if c == "run_id" else c for c in COLUMNS)})"""

INSERT = f"INSERT OR REPLACE INTO runs VALUES ({', '.join('?' * len(COLUMNS))})"


@dataclass(frozen=True)
class RunFilter:
    """What `runs list` shows: substrings of protocol/sample, a status, a date range."""

    protocol: str = ""
    sample: str = ""
    status: str = ""
    since: str = ""  # ISO date or datetime, inclusive
    until: str = ""  # ISO date, inclusive

    def sql(self) -> tuple[str, list[str]]:
        """WHERE clause and its arguments."""
        clauses, args = [], []
        for column, value in (("protocol", self.protocol), ("sample", self.sample)):
            if value:
                clauses.append(f"{column} LIKE ?")
                args.append(f"%{value}%")
        if self.status:
            clauses.append("status = ?")
            args.append(self.status)
        if self.since:
            clauses.append("started >= ?")
            args.append(self.since)
        if self.until:
            clauses.append("substr(started, 1, 10) <= ?")
            args.append(self.until[:10])
        return (" WHERE " + " AND ".join(clauses) if clauses else ""), args


class RunIndex:
    """The index of one runs directory (stored in it as index.sqlite)."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self.path = self.root / INDEX_NAME

    @contextmanager
    def _db(self) -> Iterator[sqlite3.Connection]:
        self.root.mkdir(parents=True, exist_ok=True)
        db = sqlite3.connect(self.path, timeout=10)
        db.row_factory = sqlite3.Row
        try:
            db.execute(SCHEMA)
            yield db
            db.commit()
        finally:
            db.close()

    def refresh(self) -> list[dict[str, Any]]:
        """Bring the index up to date; returns the runs newly found interrupted."""
        interrupted = []
        with self._db() as db:
            known = {r["run_id"]: r["mtime_ns"] for r in db.execute(
                "SELECT run_id, mtime_ns FROM runs")}
            present = set()
            for run_json in sorted(self.root.glob("*/run.json")):
                folder = run_json.parent
                present.add(folder.name)
                try:
                    run = RunFolder.open(folder)
                except RunNotFound:
                    continue
                if is_cut_off(run):
                    interrupted.append(mark_interrupted(run))
                mtime = str(run_json.stat().st_mtime_ns)
                if known.get(folder.name) != mtime:
                    db.execute(INSERT, _row(run, mtime))
            for gone in set(known) - present:
                db.execute("DELETE FROM runs WHERE run_id = ?", (gone,))
        return interrupted

    def rebuild(self) -> list[dict[str, Any]]:
        """Recreate the index from the folders."""
        self.path.unlink(missing_ok=True)
        return self.refresh()

    def list(self, where: RunFilter | None = None) -> list[dict[str, Any]]:
        """Runs matching the filter, oldest first."""
        clause, args = (where or RunFilter()).sql()
        with self._db() as db:
            rows = db.execute(f"SELECT * FROM runs{clause} ORDER BY started, run_id", args)
            return [dict(r) for r in rows]


def _row(run: RunFolder, mtime: str) -> tuple[Any, ...]:
    info = run.info
    step = info.get("last_completed_step")
    values = {
        "run_id": run.run_id, "folder": str(run.path), "protocol": info.get("protocol", ""),
        "protocol_sha256": info.get("protocol_sha256", ""), "sample": info.get("sample")
        or (info.get("parameters") or {}).get("sample", ""), "operator": info.get("operator", ""),
        "status": info.get("status", ""), "reason": info.get("reason", ""),
        "started": info.get("started", ""), "ended": info.get("ended") or "",
        "last_step": json.dumps(step) if step else "", "bench": info.get("bench", ""),
        "mtime_ns": mtime,
    }
    return tuple(_clean(values[c]) for c in COLUMNS)


def _clean(value: Any) -> Any:
    """Text as the index may store and `runs list` may print it: no lone surrogates (SQLite
    cannot encode them), no control characters (escape codes), one line."""
    return clean_text(value, newlines=False) if isinstance(value, str) else value
