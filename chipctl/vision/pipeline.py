"""Streaming counter: every submitted frame is counted on a worker thread.

The queue is bounded but never drops: ``submit`` blocks the producer while it is full.
Results are published through the psygnal signal ``counted`` (emitted on the worker thread;
a GUI moves them to its own thread) and kept as ``latest()`` so a display can skip frames
while counting does not. With a tracker attached, its update for the frame follows on the
signal ``tracked``, from a second worker thread: tracking never delays the next count.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from psygnal import Signal

from chipctl.vision.exposures import count_field
from chipctl.vision.model import CountParams, CountResult
from chipctl.vision.nullmodel import null_maxima
from chipctl.vision.tracker import TrackUpdate, VesicleTracker

_STOP = object()


@dataclass(frozen=True)
class FrameCount:
    """The count of one frame, with its latency from ``submit`` to publication (seconds)."""

    index: int
    timestamp: float
    result: CountResult
    latency_s: float
    meta: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class FrameTrack:
    """The tracker's update after frame ``index`` (cumulative vesicle count, drift)."""

    index: int
    update: TrackUpdate


@dataclass(frozen=True)
class FrameError:
    """A frame that could not be counted."""

    index: int
    error: str


class CountingPipeline:
    """Worker thread that counts every submitted frame and publishes :class:`FrameCount`."""

    counted = Signal(object)
    tracked = Signal(object)
    failed = Signal(object)

    def __init__(self, params: CountParams | None = None, maxsize: int = 64,
                 tracker: VesicleTracker | None = None,
                 on_result: Callable[[FrameCount], None] | None = None,
                 counter: Callable[[Any, CountParams], CountResult] = count_field) -> None:
        self.params = params or CountParams()
        self.counter = counter
        self.tracker = tracker
        self._queue: queue.Queue[Any] = queue.Queue(maxsize=maxsize)
        self._lock = threading.Lock()
        self._latest: FrameCount | None = None
        self._latencies: list[float] = []
        self._submitted = 0
        self._thread: threading.Thread | None = None
        self._track_queue: queue.Queue[Any] = queue.Queue()
        self._track_thread: threading.Thread | None = None
        if on_result is not None:
            self.counted.connect(on_result)

    def start(self, frame_shape: tuple[int, int] | None = None) -> CountingPipeline:
        """Start the worker thread (idempotent); precomputes the per-PSF tables first.

        With the camera's ``frame_shape``, the worker first counts a synthetic frame of that
        shape (and ``start`` waits for it), so that the first real frames do not pay one-off
        costs (first calls on a new thread, the memory allocator growing to frame-sized
        buffers) as latency.
        """
        if self._thread is None:
            null_maxima(self.params.psf_sigma_px)
            warm = _warmup_frame(frame_shape) if frame_shape is not None else None
            ready = threading.Event()
            self._thread = threading.Thread(target=self._count_loop, args=(warm, ready),
                                            name="chipctl-counter", daemon=True)
            self._thread.start()
            ready.wait()
            if self.tracker is not None:
                self._track_thread = threading.Thread(
                    target=_serve, args=(self._track_queue, self._track),
                    name="chipctl-tracker", daemon=True)
                self._track_thread.start()
        return self

    def submit(self, frame: np.ndarray | Sequence[np.ndarray], timestamp: float | None = None,
               meta: dict[str, Any] | None = None) -> int:
        """Queue a frame, or the exposures of one field (counted once, see
        :func:`~chipctl.vision.exposures.count_field`), blocking while the queue is full;
        returns its index."""
        if self._thread is None:
            raise RuntimeError("pipeline not started")
        index = self._submitted
        self._submitted += 1
        ts = time.time() if timestamp is None else timestamp
        self._queue.put((index, ts, time.perf_counter(), frame, meta or {}))
        return index

    def join(self) -> None:
        """Wait until every submitted frame has been counted, tracked and published."""
        self._queue.join()
        self._track_queue.join()

    def stop(self) -> None:
        """Count what is queued, then stop the worker."""
        if self._thread is not None:
            self._queue.put(_STOP)
            self._thread.join()
            self._thread = None
        if self._track_thread is not None:
            self._track_queue.put(_STOP)
            self._track_thread.join()
            self._track_thread = None

    def __enter__(self) -> CountingPipeline:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def latest(self) -> FrameCount | None:
        """The most recently published count (for displays that skip frames)."""
        with self._lock:
            return self._latest

    @property
    def counted_frames(self) -> int:
        """Number of frames counted so far."""
        with self._lock:
            return len(self._latencies)

    def latency_percentiles(self, q: tuple[float, ...] = (50.0, 99.0)) -> tuple[float, ...]:
        """Latency percentiles in seconds over all counted frames."""
        with self._lock:
            lat = np.array(self._latencies)
        return tuple(float(np.percentile(lat, p)) for p in q) if lat.size else (np.nan,) * len(q)

    def _count_loop(self, warmup: np.ndarray | None, ready: threading.Event) -> None:
        """The counting worker: an optional warm-up count, then every queued frame."""
        try:
            if warmup is not None:
                self.counter(warmup, self.params)
        except (ValueError, TypeError) as exc:  # only a speed-up: report it, keep serving
            self.failed.emit(FrameError(-1, f"warm-up count failed: {exc}"))
        finally:
            ready.set()
        _serve(self._queue, self._process)

    def _track(self, index: int, result: CountResult, ts: float) -> None:
        assert self.tracker is not None
        self.tracked.emit(FrameTrack(index, self.tracker.update(result, ts)))

    def _process(self, index: int, ts: float, t0: float, frame: np.ndarray,
                 meta: dict[str, Any]) -> None:
        try:
            result = self.counter(frame, self.params)
        except (ValueError, TypeError) as exc:
            self.failed.emit(FrameError(index, str(exc)))
            return
        fc = FrameCount(index, ts, result, time.perf_counter() - t0, meta)
        with self._lock:
            self._latest = fc
            self._latencies.append(fc.latency_s)
        self.counted.emit(fc)
        if self._track_thread is not None:
            self._track_queue.put((index, result, ts))


def _warmup_frame(shape: tuple[int, int]) -> np.ndarray:
    """A uint16 frame of ``shape``: noise on a 200 ADU background."""
    noise = np.random.default_rng(0).standard_normal(shape, np.float32)
    return (200.0 + 10.0 * noise).astype(np.uint16)


def _serve(work: queue.Queue[Any], handle: Callable[..., None]) -> None:
    """Worker loop: ``handle(*item)`` for each queued item until ``_STOP``."""
    while True:
        item = work.get()
        try:
            if item is _STOP:
                return
            handle(*item)
        finally:
            work.task_done()
