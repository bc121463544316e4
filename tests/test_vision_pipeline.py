"""CountingPipeline: every frame counted on a worker thread, even with a slow consumer."""

from __future__ import annotations

import threading
import time

import numpy as np
from _vision_helpers import CAL, small_frame

from chipctl.vision import (
    CountingPipeline,
    CountParams,
    FrameCount,
    FrameTrack,
    VesicleTracker,
    count_frame,
)


def _frames(n: int) -> list[np.ndarray]:
    base = small_frame(7.0, n=30, size=128, seed=31).image
    return [base.copy() for _ in range(n)]


def test_slow_consumer_does_not_lose_frames():
    got: list[FrameCount] = []

    def slow(fc: FrameCount) -> None:
        time.sleep(0.01)
        got.append(fc)

    frames = _frames(25)
    with CountingPipeline(CountParams(calibration=CAL), maxsize=2, on_result=slow) as pipe:
        for f in frames:
            pipe.submit(f)
    assert [fc.index for fc in got] == list(range(25))
    assert pipe.counted_frames == 25
    assert all(fc.result.count > 20 for fc in got)
    assert pipe.latest() is got[-1]
    p50, p99 = pipe.latency_percentiles()
    assert 0 < p50 <= p99


def test_display_polling_latest_may_skip_but_counting_does_not():
    frames = _frames(20)
    seen: set[int] = set()
    stop = threading.Event()
    pipe = CountingPipeline(CountParams(calibration=CAL)).start()

    def display() -> None:
        while not stop.is_set():
            fc = pipe.latest()
            if fc is not None:
                seen.add(fc.index)
            time.sleep(0.02)

    th = threading.Thread(target=display)
    th.start()
    for f in frames:
        pipe.submit(f, meta={"channel": "CD63"})
    pipe.join()
    stop.set()
    th.join()
    pipe.stop()
    assert pipe.counted_frames == 20
    assert pipe.latest().index == 19 and pipe.latest().meta == {"channel": "CD63"}
    assert seen <= set(range(20))


def test_tracker_cumulative_counts_and_bad_frames_reported():
    errors = []
    pipe = CountingPipeline(CountParams(calibration=CAL), tracker=VesicleTracker())
    pipe.failed.connect(errors.append)
    results: list[FrameCount] = []
    tracks: list[FrameTrack] = []
    pipe.counted.connect(results.append)
    pipe.tracked.connect(tracks.append)
    with pipe:
        for i, f in enumerate(_frames(4)):
            pipe.submit(f, timestamp=float(i))
        pipe.submit(np.full((8, 8), np.nan))
    assert [r.index for r in results] == [t.index for t in tracks] == [0, 1, 2, 3]
    cumulative = [t.update.count for t in tracks]
    assert cumulative[0] == 0 and cumulative[1:] == [cumulative[1]] * 3  # same field
    assert cumulative[-1] >= 25
    assert len(errors) == 1 and "NaN" in errors[0].error


def test_submit_before_start_is_an_error():
    pipe = CountingPipeline()
    try:
        pipe.submit(np.zeros((4, 4)))
    except RuntimeError:
        return
    raise AssertionError("submit without start must raise")


class _SlowTracker(VesicleTracker):
    """A tracker that takes 0.3 s per frame."""

    def update(self, *args, **kwargs):  # type: ignore[no-untyped-def]
        time.sleep(0.3)
        return super().update(*args, **kwargs)


def test_a_slow_tracker_never_delays_the_next_count():
    tracks: list[FrameTrack] = []
    pipe = CountingPipeline(CountParams(calibration=CAL), tracker=_SlowTracker())
    pipe.tracked.connect(tracks.append)
    with pipe:
        for i, f in enumerate(_frames(3)):
            pipe.submit(f, timestamp=float(i))
        pipe.join()  # waits for the tracker too
        assert [t.index for t in tracks] == [0, 1, 2]
    # Counting the third frame waited for the two counts before it, not for any tracking.
    assert pipe.counted_frames == 3
    assert pipe.latency_percentiles((100.0,))[0] < 0.25


def test_warm_up_runs_on_the_worker_before_start_returns_and_publishes_nothing():
    calls: list[tuple[str, tuple[int, ...]]] = []

    def recording_count(frame, params):  # type: ignore[no-untyped-def]
        calls.append((threading.current_thread().name, frame.shape))
        return count_frame(frame, params)

    published: list[FrameCount] = []
    pipe = CountingPipeline(CountParams(calibration=CAL), on_result=published.append,
                            counter=recording_count)
    pipe.start(frame_shape=(96, 160))
    try:
        # The synthetic frame was counted on the counting thread, before start returned.
        assert calls == [("chipctl-counter", (96, 160))]
        assert pipe.counted_frames == 0 and pipe.latest() is None and published == []
        frame = _frames(1)[0]
        assert pipe.submit(frame) == 0
        pipe.join()
    finally:
        pipe.stop()
    assert [fc.index for fc in published] == [0]
    assert published[0].result.count > 20
    assert calls[1] == ("chipctl-counter", frame.shape)


def test_without_a_frame_shape_nothing_is_counted_before_the_first_frame():
    calls: list[tuple[int, ...]] = []

    def recording_count(frame, params):  # type: ignore[no-untyped-def]
        calls.append(frame.shape)
        return count_frame(frame, params)

    with CountingPipeline(CountParams(calibration=CAL), counter=recording_count):
        assert calls == []
