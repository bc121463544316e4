"""A run's frames counted on the streaming pipeline, and published with their counts.

The executor submits every frame it takes (with the count row it has filled in so far); the
pipeline (chipctl.vision) counts it on its worker thread. Each result is then published in
order: the frame, as a CountedFrame carrying its detections (the run store keeps them, the
GUI shows them), then its count row. A monitor step that needs a count at once waits for it;
an image step moves on and `join()` at the end of the step waits for the rest. Several
exposures of one field (an image step's `frames: K`) are submitted together and counted once;
every exposure is published, the first carrying the field's detections (in its pixels).

Memory: the frames waiting to be counted are the run's only copy in the counting path, so
their bytes are bounded (`PENDING_BYTES`, eight full 2048 x 2048 frames): `submit` holds the
run back while counting is that far behind, so a run's memory does not grow with its number
of fields. Once a frame is published nothing here keeps it.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from chipctl.devices.interfaces import Frame
from chipctl.run.events import RunEvents
from chipctl.vision.model import CountParams, CountResult
from chipctl.vision.pipeline import CountingPipeline, FrameCount, FrameError

COUNT_TIMEOUT_S = 60.0  # wall seconds a monitor step waits for one frame's count
PENDING_BYTES = 64 * 2**20  # frames waiting to be counted: 8 full 2048 x 2048 frames of 16 bits


@dataclass
class CountedFrame(Frame):
    """A camera frame and what the run's counter found in it."""

    result: CountResult | None = None
    row: dict[str, Any] = field(default_factory=dict)


class CountingFailed(Exception):
    """A frame could not be counted (the pipeline's reason)."""


class FrameCounting:
    """The run's counter: frames in, counted frames and count rows out (as run events)."""

    def __init__(self, pipeline: CountingPipeline, events: RunEvents,
                 pending_bytes: int = PENDING_BYTES) -> None:
        self.pipeline = pipeline
        self.events = events
        self.pending_budget = pending_bytes
        self._pending: dict[int, tuple[list[Frame], dict[str, Any]]] = {}
        self._pending_bytes = 0
        self._submitted = 0
        self._counts: dict[int, int] = {}
        self._errors: list[str] = []
        self._done = threading.Condition()
        pipeline.counted.connect(self._on_counted)
        pipeline.failed.connect(self._on_failed)

    @property
    def params(self) -> CountParams:
        """The counting parameters (recorded with the run)."""
        return self.pipeline.params

    def start(self) -> None:
        """Start the pipeline's worker threads."""
        self.pipeline.start()

    @property
    def pending_frames(self) -> int:
        """Frames submitted and not yet counted (held in memory until they are)."""
        with self._done:
            return sum(len(frames) for frames, _row in self._pending.values())

    def submit(self, frame: Frame | Sequence[Frame], row: dict[str, Any],
               timeout_s: float = COUNT_TIMEOUT_S) -> int:
        """Queue a frame, or the exposures of one field, to be counted; returns its index.
        Blocks while the frames waiting to be counted fill the memory budget (CountingFailed
        if counting does not catch up within `timeout_s`). Only the run's thread submits, so
        the indexes follow the pipeline's."""
        frames = [frame] if isinstance(frame, Frame) else list(frame)
        size = sum(np.asarray(f.image).nbytes for f in frames)
        deadline = time.monotonic() + timeout_s
        with self._done:
            while self._pending and self._pending_bytes + size > self.pending_budget:
                self._raise_errors()
                if time.monotonic() > deadline:
                    raise CountingFailed(f"counting fell behind: {len(self._pending)} frames "
                                         f"still waiting after {timeout_s:g} s")
                self._done.wait(0.05)
            index, self._submitted = self._submitted, self._submitted + 1
            self._pending[index] = (frames, row)
            self._pending_bytes += size
        images = frames[0].image if len(frames) == 1 else [f.image for f in frames]
        if self.pipeline.submit(images) != index:  # pragma: no cover - a second producer
            raise RuntimeError("another producer submitted to the run's counting pipeline")
        return index

    def count_of(self, index: int, timeout_s: float = COUNT_TIMEOUT_S) -> int:
        """Wait for frame `index`'s count (CountingFailed if it could not be counted)."""
        deadline = time.monotonic() + timeout_s
        with self._done:
            while index not in self._counts and not self._errors:
                if time.monotonic() > deadline:
                    raise CountingFailed(f"frame {index} was not counted within {timeout_s:g} s")
                self._done.wait(0.05)
            self._raise_errors()
            return self._counts.pop(index)

    def join(self) -> None:
        """Wait until every submitted frame is counted and published."""
        self.pipeline.join()
        with self._done:
            self._counts.clear()
            self._raise_errors()

    def stop(self) -> None:
        """Count what is queued, publish it, and stop the worker threads."""
        self.pipeline.stop()

    def _raise_errors(self) -> None:
        if self._errors:
            errors, self._errors = self._errors, []
            raise CountingFailed("; ".join(errors))

    def _release(self, index: int) -> tuple[list[Frame], dict[str, Any]] | None:
        """Take a counted (or failed) frame out of the pending ones, freeing its budget."""
        entry = self._pending.pop(index, None)
        if entry is not None:
            self._pending_bytes -= sum(np.asarray(f.image).nbytes for f in entry[0])
            self._done.notify_all()
        return entry

    def _on_counted(self, counted: FrameCount) -> None:
        with self._done:
            entry = self._release(counted.index)
        assert entry is not None, "a frame counted twice"
        frames, row = entry
        row = {**row, "count": int(counted.result.count), **counted.result.measures()}
        for k, frame in enumerate(frames):
            result = counted.result if k == 0 else None
            self.events.frame.emit(CountedFrame(frame.image, frame.metadata, result, row))
        self.events.counted.emit(row)
        with self._done:
            self._counts[counted.index] = row["count"]
            self._done.notify_all()

    def _on_failed(self, error: FrameError) -> None:
        with self._done:
            self._release(error.index)
            self._errors.append(f"frame {error.index} could not be counted: {error.error}")
            self._done.notify_all()
