"""The run's counter (chipctl.run.counting): every frame counted on the pipeline and published
in order, frame first, with its detections; a full queue holds the producer back without
deadlock; a frame that cannot be counted fails the step, not silently."""

from __future__ import annotations

import gc
import threading
import time
import weakref
from pathlib import Path

import numpy as np
import pytest
from fakes import fake_engine, pixel_counter

from chipctl.devices.interfaces import Frame
from chipctl.protocol.loader import parse_protocol
from chipctl.run.counting import CountedFrame, CountingFailed, FrameCounting
from chipctl.run.events import RunEvents, RunState
from chipctl.vision.factory import make_pipeline
from chipctl.vision.model import CountParams, CountResult

pytestmark = pytest.mark.timeout(60)
MANY_FIELDS = """
steps:
  - image: {zones: [CD63, isotype], grid: [2, 2], field_spacing: 350 um,
            channels: [AF488, AF647, AF555]}
"""


def frame(n: int) -> Frame:
    return Frame(np.full((4, 4), n, np.uint16), {"seq": n})


def slow_counter(image: np.ndarray, params: CountParams) -> CountResult:
    time.sleep(0.01)
    return pixel_counter(image, params)


def test_every_frame_is_published_in_order_frame_then_row_even_past_a_full_queue() -> None:
    events = RunEvents()
    seen: list[tuple[str, int]] = []
    events.frame.connect(lambda f: seen.append(("frame", int(f.result.count))))
    events.counted.connect(lambda row: seen.append(("row", row["count"])))
    counting = FrameCounting(make_pipeline(CountParams(), maxsize=2, counter=slow_counter),
                             events)
    counting.start()
    indexes = [counting.submit(frame(n), {"zone": "CD63", "field": n}) for n in range(12)]
    counting.join()
    counting.stop()
    assert indexes == list(range(12))
    assert seen == [(kind, n) for n in range(12) for kind in ("frame", "row")]


def test_a_monitor_gets_the_count_of_its_frame() -> None:
    events = RunEvents()
    shown: list[CountedFrame] = []
    events.frame.connect(shown.append)
    counting = FrameCounting(make_pipeline(CountParams(), counter=pixel_counter), events)
    counting.start()
    try:
        assert counting.count_of(counting.submit(frame(7), {"zone": "CD9"})) == 7
    finally:
        counting.stop()
    assert shown[0].metadata == {"seq": 7}
    # the row carries what the counter measured, so the limit of detection is in the record
    assert shown[0].row == {"zone": "CD9", "count": 7, **shown[0].result.measures()}
    assert set(shown[0].row) == {"zone", "count", "threshold", "noise_adu", "saturated",
                                 "psf_sigma_px", "estimated_count"}


def test_a_frame_that_cannot_be_counted_is_an_error_not_a_gap() -> None:
    def refuse(image: np.ndarray, params: CountParams) -> CountResult:
        raise ValueError("the image contains NaN or infinite pixel values")

    counting = FrameCounting(make_pipeline(CountParams(), counter=refuse), RunEvents())
    counting.start()
    try:
        index = counting.submit(frame(1), {})
        with pytest.raises(CountingFailed, match="frame 0 could not be counted: the image"):
            counting.count_of(index)
        counting.submit(frame(2), {})
        with pytest.raises(CountingFailed):
            counting.join()
    finally:
        counting.stop()


def test_waiting_for_a_count_that_never_comes_ends() -> None:
    release = threading.Event()

    def stuck(image: np.ndarray, params: CountParams) -> CountResult:
        release.wait(10)
        return pixel_counter(image, params)

    counting = FrameCounting(make_pipeline(CountParams(), counter=stuck), RunEvents())
    counting.start()
    try:
        with pytest.raises(CountingFailed, match="not counted within 0.2 s"):
            counting.count_of(counting.submit(frame(1), {}), timeout_s=0.2)
    finally:
        release.set()
        counting.stop()


def test_frames_waiting_to_be_counted_stay_within_the_memory_budget() -> None:
    """Counting held up: the run is held back once the waiting frames fill the budget (4 here),
    instead of queueing every field's frame; once published, nothing keeps a frame."""
    go = threading.Event()

    def held_counter(image: np.ndarray, params: CountParams) -> CountResult:
        go.wait()
        return pixel_counter(image, params)

    size = np.zeros((256, 256), np.uint16).nbytes
    counting = FrameCounting(make_pipeline(CountParams(), counter=held_counter), RunEvents(),
                             pending_bytes=4 * size)
    counting.start()
    images: list[weakref.ref[np.ndarray]] = []
    pending_after_submit: list[int] = []

    def run_fields() -> None:
        for n in range(20):
            image = np.full((256, 256), n, np.uint16)
            images.append(weakref.ref(image))
            counting.submit(Frame(image, {"field": n + 1}), {"field": n + 1})
            pending_after_submit.append(counting.pending_frames)
            del image

    producer = threading.Thread(target=run_fields)
    producer.start()
    deadline = time.monotonic() + 30
    while len(pending_after_submit) < 4 and time.monotonic() < deadline:
        time.sleep(0.01)
    gc.collect()
    alive_while_held = sum(ref() is not None for ref in images)
    submitted_while_held = len(pending_after_submit)
    go.set()
    producer.join()
    counting.join()
    counting.stop()
    gc.collect()
    assert submitted_while_held == 4  # the fifth field waits for counting
    assert alive_while_held <= 5  # four waiting, one in the producer's hand
    assert max(pending_after_submit) <= 4
    assert len(images) == 20 and all(ref() is None for ref in images)


def test_a_run_keeps_no_frame_after_counting_and_recording_it(tmp_path: Path) -> None:
    engine = fake_engine(tmp_path / "runs")
    engine.keep_frames = "all"  # the recorder writes every frame, and must not keep it
    engine.connect()
    images: list[weakref.ref[np.ndarray]] = []
    events = RunEvents()
    events.frame.connect(lambda f: images.append(weakref.ref(f.image)))
    try:
        runner = engine.start_run(parse_protocol(MANY_FIELDS, "fields.yaml"), events=events)
        assert runner.wait(30) == RunState.COMPLETED, runner.reason
    finally:
        engine.close()
    gc.collect()
    assert len(images) == 24  # 2 zones x 4 fields x 3 channels
    assert [ref() is None for ref in images] == [True] * 24
