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
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from gui.core import CountedFrame, Frame, default_counter

ANY_CHANNEL = ""
COMPOSITE = "composite"
CHANNEL_RGB = {"AF488": (0.2, 1.0, 0.3), "AF555": (1.0, 0.75, 0.1), "AF647": (1.0, 0.2, 0.8)}
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
    screen (`display`, `bin` sensor pixels per side) and, if counted, its spots.

    A composite holds one frame per channel (`layers`); its `display` is an RGB image, and
    with the overlay on, `layer_spots` holds each channel's detections (drawn in its colour)."""

    seq: int
    frame: Frame
    display: np.ndarray
    bin: int = 1
    spots: Any = None  # chipctl.vision CountResult, or None when not counted
    levels: tuple[float, float] = (0.0, 1.0)  # suggested display levels: dark noise, bright spots
    saturated: int = 0  # pixels at the camera's full scale
    layers: tuple[tuple[str, Frame], ...] = ()  # a composite's frames, by channel
    pinned: bool = False  # a frame chosen in the frame browser, not the live stream
    layer_spots: tuple[tuple[str, Any], ...] = ()  # a composite's detections, by channel


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


def full_scale(frame: Frame) -> float:
    """The camera's saturation level: its bit depth if the frame says, else the dtype's."""
    bits = frame.metadata.get("bit_depth")
    if isinstance(bits, int) and 0 < bits <= 32:
        return float(2**bits - 1)
    dtype = np.asarray(frame.image).dtype
    return float(np.iinfo(dtype).max) if dtype.kind in "ui" else float("inf")


def saturated_pixels(frame: Frame) -> int:
    """How many pixels are at the camera's full scale (where a count is unreliable)."""
    return int(np.count_nonzero(np.asarray(frame.image) >= full_scale(frame)))


def channel_rgb(channel: str, index: int = 0) -> tuple[float, float, float]:
    """The display colour of a fluorescence channel (white for an unknown one)."""
    fallback = ((0.3, 0.6, 1.0), (1.0, 1.0, 1.0), (0.6, 1.0, 1.0))
    return CHANNEL_RGB.get(channel, fallback[index % len(fallback)])


def composite_rgb(layers: list[tuple[str, np.ndarray, tuple[float, float]]]) -> np.ndarray:
    """An additive RGB image (0..1) of several channels, each scaled by its levels."""
    shape = min(image.shape for _, image, _ in layers)
    rgb = np.zeros((*shape, 3), np.float32)
    for index, (channel, image, (low, high)) in enumerate(layers):
        scaled = np.clip((image[: shape[0], : shape[1]].astype(np.float32) - low)
                         / max(high - low, 1e-6), 0, 1)
        rgb += scaled[..., None] * np.asarray(channel_rgb(channel, index), np.float32)
    return np.clip(rgb, 0, 1)


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
    """Prepares the frame to display on a worker thread: binned to screen size and, when
    `count_spots` is set, counted for the spot overlay.

    It shows the newest frame of the chosen channel (or a composite of every channel's newest),
    or, once `pin` is given frames from the frame browser, those frames until `unpin`.
    Changing what is shown (`channel`, spots on or off) re-prepares the frame on screen:
    `redo()`."""

    def __init__(self, slot: FrameSlot, counter: Callable[[Any], Any] | None = None,
                 on_error: Callable[[str], None] | None = None,
                 channels: tuple[str, ...] = ()) -> None:
        self.slot = slot
        self.channel = ANY_CHANNEL
        self.channels = channels
        self.count_spots = threading.Event()
        self._counter = counter
        self._on_error = on_error or (lambda message: None)
        self._result: Shown | None = None
        self._lock = threading.Lock()
        self._pinned: tuple[Frame, ...] | None = None
        self._redo = threading.Event()
        self._stop = threading.Event()
        self.prepared = 0
        self._thread = threading.Thread(target=self._loop, name="gui-frame-prep", daemon=True)
        self._thread.start()

    def result(self) -> Shown | None:
        """The newest prepared frame."""
        with self._lock:
            return self._result

    def redo(self) -> None:
        """Prepare the frame on screen again (its channel or overlay changed)."""
        self._redo.set()

    def pin(self, frames: list[Frame]) -> None:
        """Show these frames (one, or one per channel for a composite) instead of the stream."""
        with self._lock:
            self._pinned = tuple(frames)
        self._redo.set()

    def unpin(self) -> None:
        """Back to the live stream."""
        with self._lock:
            self._pinned = None
        self._redo.set()

    @property
    def pinned(self) -> bool:
        """True while frames from the browser are shown."""
        with self._lock:
            return self._pinned is not None

    def _loop(self) -> None:
        seen = 0
        while not self._stop.is_set():
            with self._lock:
                pinned = self._pinned
            if pinned is not None:
                if self._redo.wait(0.05):
                    self._redo.clear()
                    with self._lock:
                        pinned = self._pinned  # may have been unpinned meanwhile
                    if pinned is not None:
                        self._publish(self._prepare(seen, list(pinned), pinned=True,
                                                    composite=self.channel == COMPOSITE))
                    else:
                        self._redo.set()
                continue
            channel = self.channel
            entries = self._wait_stream(channel, seen, 0.05 if self._redo.is_set() else 0.1)
            with self._lock:
                if self._pinned is not None:
                    continue  # pinned meanwhile: its redo is for the pinned frames
            if self._redo.is_set():  # the channel or overlay changed: the newest of what is
                self._redo.clear()  # chosen now, prepared the way chosen now
                channel = self.channel
                entries = self._latest(channel)
            if entries:
                seen = max(seq for seq, _ in entries)
                self._publish(self._prepare(seen, [frame for _, frame in entries],
                                            composite=channel == COMPOSITE))

    def _latest(self, channel: str) -> list[tuple[int, Frame]] | None:
        if channel == COMPOSITE:
            found = [self.slot.latest(c) for c in self.channels]
            entries = [entry for entry in found if entry is not None]
            return entries or None
        entry = self.slot.latest(channel)
        return [entry] if entry is not None else None

    def _wait_stream(self, channel: str, seen: int,
                     timeout: float) -> list[tuple[int, Frame]] | None:
        if channel == COMPOSITE:
            if self.slot.wait_newer(seen, ANY_CHANNEL, timeout) is None:
                return None
            return self._latest(channel)
        entry = self.slot.wait_newer(seen, channel, timeout)
        return [entry] if entry is not None else None

    def _prepare(self, seq: int, frames: list[Frame], pinned: bool = False,
                 composite: bool = False) -> Shown:
        frame = frames[-1]  # the chosen frame; before it, the other channels of its field
        if composite:
            saturated = sum(saturated_pixels(f) for f in frames)
            layers = []
            for f in frames:
                display, n = bin_for_display(f.image)
                layers.append((frame_channel(f), display, suggested_levels(display)))
            rgb = composite_rgb(layers)
            counted = tuple((frame_channel(f), self._count(f)) for f in frames) if (
                self.count_spots.is_set()) else ()
            return Shown(seq, frame, rgb, n, None, (0.0, 1.0), saturated,
                         tuple((frame_channel(f), f) for f in frames), pinned,
                         tuple((c, r) for c, r in counted if r is not None))
        display, n = bin_for_display(frame.image)
        spots = self._count(frame) if self.count_spots.is_set() else None
        return Shown(seq, frame, display, n, spots, suggested_levels(display),
                     saturated_pixels(frame), (), pinned)

    def _publish(self, shown: Shown) -> None:
        with self._lock:
            self.prepared += 1
            self._result = replace(shown, seq=self.prepared)

    def _count(self, frame: Frame) -> Any:
        if isinstance(frame, CountedFrame):  # counted by the run: show the run's own count
            return frame.result
        try:
            self._counter = self._counter or default_counter()
            return self._counter(frame.image)
        except Exception as exc:  # noqa: BLE001 - shown to the operator
            self._on_error(f"spot overlay: {type(exc).__name__}: {exc}")
            return None

    def stop(self) -> None:
        """End the worker thread."""
        self._stop.set()
        self._thread.join(2.0)


class LiveCamera:
    """Takes frames continuously into a slot (with `take`: the manual session's live frame,
    lit for its exposure only) until stopped or a frame fails."""

    def __init__(self, name: str, take: Callable[[], Frame], slot: FrameSlot,
                 on_error: Callable[[str], None]) -> None:
        self.name = name
        self.take = take
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
        self._stop = threading.Event()  # the loop's own: a loop still finishing a frame ends
        self._thread = threading.Thread(target=self._loop, args=(self._stop,),
                                        name="gui-live-camera", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop streaming; does not wait for the frame in flight."""
        self._stop.set()

    def _loop(self, stop: threading.Event) -> None:
        while not stop.is_set():
            try:
                frame = self.take()
            except Exception as exc:  # noqa: BLE001 - shown to the operator
                if stop.is_set():  # stopped meanwhile: the refusal says only that
                    return
                stop.set()
                self._on_error(f"{self.name}: live view stopped: {type(exc).__name__}: {exc}")
                return
            self.slot.put(frame)
