"""The frames a run acquired, for the frame browser: the current run's in memory, any run's
from its folder (chipctl.runs.frames reads the OME-TIFF files).

Qt-free. `RunArchive` is filled from the run's frame and counted events on the run's worker
thread. A frame the run writes to its folder is read back from there when it is browsed; the
others (and the newest few) are kept in memory up to a budget (64 MB: 8 full 2048 x 2048
frames), and beyond it spilled, oldest first, to a disk cache of the window's own (a temporary
folder, bounded at 4 GB, emptied when the next run starts), so a long run can still be browsed
while the app's memory stays flat.
`past_run` lists a finished run's frames from its event log. Field numbers are 1-based here,
as people count them.
"""

from __future__ import annotations

import pickle
import shutil
import tempfile
import threading
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from gui.core import Frame, RunFolder, read_events, read_frame
from gui.frames import frame_channel, saturated_pixels

MEMORY_BUDGET_BYTES = 64 * 2**20  # 8 full 2048 x 2048 frames of 16 bits
SPILL_BUDGET_BYTES = 4 * 2**30  # the disk cache: ~500 such frames, oldest dropped beyond
NEWEST_IN_MEMORY = 2  # until the run folder has written them


@dataclass(frozen=True)
class FrameRecord:
    """One acquired frame: where and when, what the run counted, and where its image is."""

    seq: int  # 0-based order in the run (the run folder's frame number)
    zone: str
    field: int | None  # 1-based
    channel: str
    step: int | None
    t_s: float | None  # the run clock's time of its count (the counts plot's clock)
    count: int | None = None  # what the run counted in it
    saturated: int | None = None
    x_um: float | None = None
    y_um: float | None = None
    file: Path | None = None  # the kept OME-TIFF, if the run kept it
    shape: tuple[int, int] | None = None  # rows, columns
    pixel_size_um: float | None = None

    @property
    def place(self) -> tuple[Any, ...]:
        """The field this frame images (its channels share it)."""
        return (self.step, self.zone, self.field)


def _field_1(value: Any, offset: int = 0) -> int | None:
    """A field number as people count it: the record's (runs number fields from 1), plus
    `offset` 1 for a run recorded before, which numbered them from 0."""
    return int(value) + offset if value is not None else None


def record_of(seq: int, frame: Frame, saturated: int | None = None) -> FrameRecord:
    """A record of a frame the run just published (metadata as the executor set it)."""
    meta = frame.metadata
    x, y = stage_position(meta)
    rows, cols = np.asarray(frame.image).shape[:2]
    return FrameRecord(seq, str(meta.get("zone") or ""), _field_1(meta.get("field")),
                       frame_channel(frame), None, _float(meta.get("time_s", meta.get("t_s"))),
                       None, saturated, x, y, None, (int(rows), int(cols)),
                       _float(meta.get("pixel_size_um")))


def stage_position(meta: dict[str, Any]) -> tuple[float | None, float | None]:
    """Where the stage was for a frame, whichever keys the camera adapter used (um)."""
    raw = meta.get("stage")
    stage: dict[str, Any] = raw if isinstance(raw, dict) else {}
    x = meta.get("stage_x_um", meta.get("x_um", stage.get("x")))
    y = meta.get("stage_y_um", meta.get("y_um", stage.get("y")))
    return _float(x), _float(y)


def _float(value: Any) -> float | None:
    try:
        return float(value) if value is not None else None
    except (TypeError, ValueError):
        return None


class RunArchive:
    """The current run's frames (any thread adds, the Qt thread reads)."""

    def __init__(self, budget_bytes: int = MEMORY_BUDGET_BYTES,
                 spill_bytes: int = SPILL_BUDGET_BYTES) -> None:
        self.budget, self.spill_budget = budget_bytes, spill_bytes
        self._spill_dir: tempfile.TemporaryDirectory[str] | None = None
        self._spilled: dict[int, tuple[Path, int]] = {}  # seq: (file, bytes)
        self.folder: Path | None = None
        self.on_disk: Callable[[int], bool] = lambda seq: False
        self._lock = threading.Lock()
        self._records: list[FrameRecord] = []
        self._images: dict[int, Frame] = {}
        self._bytes = 0

    def clear(self, folder: Path | None = None,
              on_disk: Callable[[int], bool] = lambda seq: False) -> None:
        """A new run starts, recorded in `folder`; `on_disk(seq)` says which frames it keeps
        there (those need no copy in memory)."""
        with self._lock:
            self.folder, self.on_disk = folder, on_disk
            self._records.clear()
            self._images.clear()
            self._bytes = 0
            for path, _size in self._spilled.values():
                path.unlink(missing_ok=True)
            self._spilled.clear()

    def add_frame(self, frame: Frame) -> None:
        """A frame the run acquired (the run's worker thread)."""
        saturated = saturated_pixels(frame)
        with self._lock:
            seq = len(self._records)
            self._records.append(record_of(seq, frame, saturated))
            self._images[seq] = frame
            self._bytes += np.asarray(frame.image).nbytes
            for old in [s for s in self._images if s <= seq - NEWEST_IN_MEMORY
                        and self.folder is not None and self.on_disk(s)]:
                self._drop(old)
            while self._bytes > self.budget and len(self._images) > 1:
                oldest = min(self._images)
                self._drop(oldest, spill=not (self.folder is not None and self.on_disk(oldest)))

    def _drop(self, seq: int, spill: bool = False) -> None:
        frame = self._images.pop(seq)
        self._bytes -= np.asarray(frame.image).nbytes
        if spill:
            self._spill(seq, frame)

    def _spill(self, seq: int, frame: Frame) -> None:
        """Write a frame (with the run's count of it) to the disk cache, oldest out first."""
        if self._spill_dir is None:
            self._spill_dir = tempfile.TemporaryDirectory(prefix="chipctl-gui-frames-")
        path = Path(self._spill_dir.name) / f"{seq:06d}.pickle"
        try:
            with path.open("wb") as out:
                pickle.dump(frame, out, protocol=pickle.HIGHEST_PROTOCOL)
        except OSError:  # a full disk: the frame is not browsable, the run goes on
            path.unlink(missing_ok=True)
            return
        self._spilled[seq] = (path, path.stat().st_size)
        while sum(size for _p, size in self._spilled.values()) > self.spill_budget:
            oldest = min(self._spilled)
            self._spilled.pop(oldest)[0].unlink(missing_ok=True)

    def spilled(self) -> list[int]:
        """Numbers of the frames held in the disk cache."""
        with self._lock:
            return sorted(self._spilled)

    def close(self) -> None:
        """Remove the disk cache."""
        with self._lock:
            self._spilled.clear()
            if self._spill_dir is not None:
                shutil.rmtree(self._spill_dir.name, ignore_errors=True)
                self._spill_dir.cleanup()
                self._spill_dir = None

    def in_memory(self) -> list[int]:
        """Numbers of the frames whose images are held in memory."""
        with self._lock:
            return sorted(self._images)

    def add_count(self, row: dict[str, Any]) -> None:
        """The run's count of its newest frame of that zone, field and channel."""
        with self._lock:
            for index in range(len(self._records) - 1, -1, -1):
                record = self._records[index]
                if (record.count is None and record.zone == str(row.get("zone"))
                        and record.channel == str(row.get("channel"))
                        and record.field == _field_1(row.get("field"))):
                    self._records[index] = replace(record, count=int(row["count"]),
                                                   step=row.get("step"),
                                                   t_s=_float(row.get("t_s")) or record.t_s)
                    return

    def record_for(self, row: dict[str, Any]) -> FrameRecord | None:
        """The newest counted frame of a counts row's zone, field and channel (or None)."""
        with self._lock:
            return next((r for r in reversed(self._records) if r.count is not None
                         and r.zone == str(row.get("zone"))
                         and r.channel == str(row.get("channel"))
                         and r.field == _field_1(row.get("field"))), None)

    def records(self) -> list[FrameRecord]:
        """Every frame so far, in order."""
        with self._lock:
            return list(self._records)

    def frame(self, seq: int) -> Frame | None:
        """The image of a frame: from memory, the disk cache, the run folder, else None."""
        with self._lock:
            frame = self._images.get(seq)
            folder = self.folder
            spilled = self._spilled.get(seq)
        if frame is not None:
            return frame
        if spilled is not None:
            try:
                with spilled[0].open("rb") as cached:  # our own cache, written above
                    return pickle.load(cached)  # type: ignore[no-any-return]
            except (OSError, pickle.UnpicklingError, EOFError) as exc:
                raise FrameUnreadable(f"{spilled[0]}: {exc}") from exc
        if folder is None:
            return None
        kept = {int(e["seq"]): e for e in read_events(folder / "events.jsonl")
                if e.get("event") == "frame" and e.get("file")}
        entry = kept.get(seq)
        return load_kept(folder / str(entry["file"])) if entry else None


def load_kept(path: Path) -> Frame | None:
    """A kept frame from its OME-TIFF (None if it is gone or unreadable)."""
    try:
        image, meta = read_frame(path)
    except (OSError, ValueError, KeyError) as exc:
        raise FrameUnreadable(f"{path}: {exc}") from exc
    return Frame(np.asarray(image), meta)


class FrameUnreadable(Exception):
    """A kept frame's file could not be read (the message names it)."""


def past_run(folder: Path) -> list[FrameRecord]:
    """Every frame a recorded run logged, with the count that followed it and its file (None
    when the run did not keep it)."""
    run = RunFolder.open(folder)
    offset = 0 if run.info.get("fields_from") == 1 else 1
    records: list[FrameRecord] = []
    for event in run.events:
        kind = event.get("event")
        if kind == "frame":
            file = folder / str(event["file"]) if event.get("file") else None
            records.append(FrameRecord(
                int(event.get("seq", len(records))), str(event.get("zone") or ""),
                _field_1(event.get("field"), offset), str(event.get("channel") or ""),
                event.get("step"), _float(event.get("time_s")), None, None,
                _float(event.get("x_um")), _float(event.get("y_um")),
                file if file is not None and file.is_file() else None))
        elif kind == "count" and records and records[-1].count is None:
            records[-1] = replace(records[-1], count=int(event.get("count", 0)),
                                  step=event.get("step", records[-1].step),
                                  t_s=_float(event.get("t_s")) or records[-1].t_s)
    return records
