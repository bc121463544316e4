"""The run's counter (chipctl.run.counting): every frame counted on the pipeline and published
in order, frame first, with its detections; a full queue holds the producer back without
deadlock; a frame that cannot be counted fails the step, not silently."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest
from fakes import pixel_counter

from chipctl.devices.interfaces import Frame
from chipctl.run.counting import CountedFrame, CountingFailed, FrameCounting
from chipctl.run.events import RunEvents
from chipctl.vision.factory import make_pipeline
from chipctl.vision.model import CountParams, CountResult

pytestmark = pytest.mark.timeout(60)


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
