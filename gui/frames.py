"""Frames between threads: the latest-frame slot, the overlay counter and the live camera loop.

Qt-free on purpose: producers (the run's worker thread, the live camera loop) put frames into a
`FrameSlot`; `FramePreparer` takes the newest on its own thread, bins it to screen size and
counts it for the spot overlay; the live view pulls the newest prepared frame at display rate.
A slow display skips frames instead of building a queue (the run counts every frame itself). A
frame from a run arrives counted (chipctl.run.counting.CountedFrame): the overlay shows the
run's own count of it; only frames from the live camera are counted here.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from chipctl.devices.interfaces import Camera, Frame
from chipctl.run.counting import CountedFrame
from chipctl.vision.factory import make_counter
from chipctl.vision.model import CountParams

ANY_CHANNEL = ""
DISPLAY_MAX_SIDE = 1024  # frames are binned to this for the screen, off the Qt thread


def frame_channel(frame: Frame) -> str:
    """The fluorescence channel a frame was taken in ('' if unknown).

    A run names the illuminator's channel; a camera may give the LED's own channel letter
    with the dye it excites (`led: [{channel, dye}]`), in which case the dye names it.
    """
    meta = frame.metadata
    channel = str(meta.get("channel") or "")
    raw_leds = meta.get("led")
    leds: list[Any] = raw_leds if isinstance(raw_leds, list) else []
    for led in leds:
        if isinstance(led, dict) and str(led.get("channel")) == channel and led.get("dye"):
            return str(led["dye"])
    return channel


@dataclass(frozen=True)
class Shown:
    """A frame ready to display: its sequence number, the frame, the image binned for the
    screen (`display`, `bin` sensor pixels per side) and, if counted, its spots."""

    seq: int
    frame: Frame
    display: np.ndarray
    bin: int = 1
    spots: Any = None  # chipctl.vision CountResult, or None when not counted
    levels: tuple[float, float] = (0.0, 1.0)  # suggested display levels: dark noise, bright spots


def bin_for_display(image: np.ndarray, max_side: int = DISPLAY_MAX_SIDE) -> tuple[np.ndarray, int]:
    """Average `image` in n x n blocks until its longer side fits `max_side`; (image, n)."""
    image = np.asarray(image)
    n = 1
    while max(image.shape[:2]) // n > max_side:
        n *= 2
    if n == 1 or image.ndim != 2:
        return image, 1
    h, w = image.shape[0] // n, image.shape[1] // n
    blocks = image[: h * n, : w * n].reshape(h, n, w, n)
    if image.dtype.kind == "u":
        return (blocks.sum(axis=(1, 3), dtype=np.uint64) // (n * n)).astype(image.dtype), n
    return blocks.mean(axis=(1, 3), dtype=np.float64).astype(np.float32), n


def suggested_levels(image: np.ndarray) -> tuple[float, float]:
    """Levels that show noise dark and single vesicles bright (1st to 99.99th percentile)."""
    low, high = np.percentile(image, (1.0, 99.99))
    return float(low), float(max(high, low + 1.0))


class FrameSlot:
    """Holds the newest frame (overall and per channel); older ones are dropped."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._seq = 0
        self._latest: dict[str, tuple[int, Frame]] = {}
        self.received = 0

    def put(self, frame: Frame) -> None:
        """Store a frame (any thread); wakes whoever waits for one."""
        with self._cond:
            self._seq += 1
            self.received += 1
            entry = (self._seq, frame)
            self._latest[ANY_CHANNEL] = entry
            channel = frame_channel(frame)
            if channel:
                self._latest[channel] = entry
            self._cond.notify_all()

    def latest(self, channel: str = ANY_CHANNEL) -> tuple[int, Frame] | None:
        """(sequence number, frame) of the newest frame of a channel, or None."""
        with self._cond:
            return self._latest.get(channel)

    def wait_newer(self, seq: int, channel: str, timeout: float) -> tuple[int, Frame] | None:
        """The newest frame of `channel` newer than `seq`, waiting up to `timeout` s."""
        with self._cond:
            self._cond.wait_for(lambda: self._latest.get(channel, (0, None))[0] > seq, timeout)
            entry = self._latest.get(channel)
            return entry if entry is not None and entry[0] > seq else None

    def clear(self) -> None:
        """Forget every frame."""
        with self._cond:
            self._latest.clear()


class FramePreparer:
    """Prepares the newest frame of the chosen channel for the screen on a worker thread:
    binned to screen size and, when `count_spots` is set, counted for the spot overlay."""

    def __init__(self, slot: FrameSlot, counter: Callable[[Any], Any] | None = None,
                 on_error: Callable[[str], None] | None = None) -> None:
        self.slot = slot
        self.channel = ANY_CHANNEL
        self.count_spots = threading.Event()
        self._counter = counter
        self._on_error = on_error or (lambda message: None)
        self._result: Shown | None = None
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="gui-frame-prep", daemon=True)
        self._thread.start()

    def result(self) -> Shown | None:
        """The newest prepared frame."""
        with self._lock:
            return self._result

    def _loop(self) -> None:
        seen = 0
        while not self._stop.is_set():
            entry = self.slot.wait_newer(seen, self.channel, 0.1)
            if entry is None:
                continue
            seen, frame = entry
            display, n = bin_for_display(frame.image)
            spots = self._count(frame) if self.count_spots.is_set() else None
            shown = Shown(seen, frame, display, n, spots, suggested_levels(display))
            with self._lock:
                self._result = shown

    def _count(self, frame: Frame) -> Any:
        if isinstance(frame, CountedFrame):  # counted by the run: show the run's count
            return frame.result
        try:
            self._counter = self._counter or make_counter(CountParams())
            return self._counter(frame.image)
        except Exception as exc:  # noqa: BLE001 - shown to the operator
            self._on_error(f"spot overlay: {type(exc).__name__}: {exc}")
            return None

    def stop(self) -> None:
        """End the worker thread."""
        self._stop.set()
        self._thread.join(2.0)


class LiveCamera:
    """Snaps frames continuously into a slot until stopped or the camera fails."""

    def __init__(self, camera: Camera, slot: FrameSlot,
                 on_error: Callable[[str], None]) -> None:
        self.camera = camera
        self.slot = slot
        self._on_error = on_error
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def running(self) -> bool:
        """True while frames are being taken."""
        return self._thread is not None and self._thread.is_alive() and not self._stop.is_set()

    def start(self) -> None:
        """Start streaming (no-op if already streaming)."""
        if self.running:
            return
        self._stop.clear()
        self._thread = threading.Thread(target=self._loop, name="gui-live-camera", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop streaming; does not wait for the frame in flight."""
        self._stop.set()

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                frame = self.camera.snap(timeout_s=max(5.0, 4 * self.camera.exposure_ms / 1000))
            except Exception as exc:  # noqa: BLE001 - shown to the operator
                self._stop.set()
                self._on_error(f"{self.camera.name}: live view stopped: "
                               f"{type(exc).__name__}: {exc}")
                return
            self.slot.put(frame)
