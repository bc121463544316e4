"""The camera interface of the engine and its backends (`sim-camera`, `opencv`).

Every backend: exposure (ms), gain, ROI (sensor pixels x, y, w, h), binning, `snap(timeout)`
(raises drivers.errors.CameraTimeout when no frame comes), and continuous acquisition into a
bounded buffer (`start(buffer_frames)`, `read_frame(timeout)`, `stop()`; when the buffer is
full the oldest frame is dropped and counted in `frames_dropped`). Frames are
chipctl.devices.interfaces.Frame: a uint16 image and its metadata (time, frame, exposure_ms, roi,
binning, and from the simulator the ground truth).
"""

from __future__ import annotations

import collections
import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Callable
from typing import Any, Generic, TypeVar

import cv2
import numpy as np

from chipctl.config.devices import OpenCvSettings, SimCameraSettings
from chipctl.devices.interfaces import Frame
from drivers.errors import CameraTimeout, DeviceDisconnected, DeviceError, OutOfRange
from drivers.simcamera import SimCamera
from drivers.transport import SerialTransport

V = TypeVar("V")


def positive(device: str, what: str, value: float) -> float:
    """`value` as a float; OutOfRange (naming the device) unless it is positive."""
    if value <= 0:
        raise OutOfRange(device, f"{what} must be positive, got {value}")
    return float(value)


class CameraBase(ABC):
    """Settings, snap and the acquisition loop shared by every backend."""

    def __init__(self, name: str, pixel_size_um: float, exposure_ms: float = 50.0) -> None:
        self.name = name
        self.pixel_size_um = pixel_size_um
        self._exposure_ms = exposure_ms
        self.frames_dropped = 0
        self.last_error: DeviceError | None = None
        self._buffer: collections.deque[Frame] = collections.deque(maxlen=8)
        self._ready = threading.Condition()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # -- backend hooks ----------------------------------------------------------------------
    @abstractmethod
    def connect(self) -> None:
        """Open the camera and apply the configured settings."""

    @abstractmethod
    def _close(self) -> None: ...

    @abstractmethod
    def _grab(self, timeout_s: float) -> Frame:
        """Acquire one frame (raise CameraTimeout if none within `timeout_s`)."""

    @abstractmethod
    def _apply_exposure(self, ms: float) -> None: ...

    # -- settings ---------------------------------------------------------------------------
    @property
    def exposure_ms(self) -> float:
        """Exposure time, ms."""
        return self._exposure_ms

    @exposure_ms.setter
    def exposure_ms(self, ms: float) -> None:
        self._apply_exposure(positive(self.name, "exposure", ms))
        self._exposure_ms = float(ms)

    # -- frames -----------------------------------------------------------------------------
    def snap(self, timeout_s: float = 5.0) -> Frame:
        """One frame. While acquiring, the next frame from the buffer."""
        if self.acquiring:
            return self.read_frame(timeout_s)
        return self._grab(timeout_s)

    @property
    def acquiring(self) -> bool:
        """True while continuous acquisition runs."""
        return self._thread is not None and self._thread.is_alive()

    def start(self, buffer_frames: int = 8, frame_timeout_s: float = 5.0) -> None:
        """Acquire continuously into a buffer of `buffer_frames` (oldest dropped when full)."""
        if self.acquiring:
            return
        self._buffer = collections.deque(maxlen=max(1, buffer_frames))
        self.frames_dropped = 0
        self.last_error = None
        self._stop.clear()
        self._thread = threading.Thread(
            target=self._acquire, args=(frame_timeout_s,), name=f"camera-{self.name}", daemon=True
        )
        self._thread.start()

    def _acquire(self, frame_timeout_s: float) -> None:
        while not self._stop.is_set():
            try:
                frame = self._grab(frame_timeout_s)
            except DeviceError as exc:
                with self._ready:
                    self.last_error = exc
                    self._ready.notify_all()
                return
            with self._ready:
                if len(self._buffer) == self._buffer.maxlen:
                    self.frames_dropped += 1
                self._buffer.append(frame)
                self._ready.notify_all()

    def read_frame(self, timeout_s: float = 5.0) -> Frame:
        """The oldest buffered frame; CameraTimeout if none within `timeout_s`."""
        deadline = time.monotonic() + timeout_s
        with self._ready:
            while not self._buffer:
                if self.last_error is not None:
                    error, self.last_error = self.last_error, None
                    raise error
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise CameraTimeout(self.name, f"no frame within {timeout_s:g} s")
                self._ready.wait(remaining)
            return self._buffer.popleft()

    def stop(self, timeout_s: float = 10.0) -> None:
        """Stop continuous acquisition (waits for the frame in flight)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout_s)
            self._thread = None

    def close(self) -> None:
        """Stop acquiring and release the camera."""
        self.stop()
        self._close()


Roi = tuple[int, int, int, int]  # x, y, width, height in sensor pixels


def _roi(value: Roi) -> Roi:
    x, y, width, height = (int(v) for v in value)
    return x, y, width, height


class Applied(Generic[V]):
    """A simulator camera setting: sent to the driver when set, remembered to be read back."""

    def __init__(self, apply: Callable[[SimCamera, V], object],
                 convert: Callable[[V], V]) -> None:
        self.apply, self.convert = apply, convert
        self.attribute = ""

    def __set_name__(self, owner: type, name: str) -> None:
        self.attribute = f"_{name}"

    def __get__(self, camera: SimulatorCamera, owner: type) -> V:
        return getattr(camera, self.attribute)  # type: ignore[no-any-return]

    def __set__(self, camera: SimulatorCamera, value: V) -> None:
        self.apply(camera.driver, value)
        setattr(camera, self.attribute, self.convert(value))


class SimulatorCamera(CameraBase):
    """`sim-camera` backend: the simulator camera's wire protocol (drivers.simcamera)."""

    gain: Applied[float] = Applied(SimCamera.set_gain, float)  # ADU per 0.46 e-
    roi: Applied[Roi] = Applied(lambda driver, roi: driver.set_roi(*roi), _roi)  # after connect
    binning: Applied[int] = Applied(SimCamera.set_binning, int)  # symmetric: 1, 2, 4

    def __init__(self, name: str, driver: SimCamera, settings: SimCameraSettings) -> None:
        super().__init__(name, settings.pixel_size_um or 0.0, settings.exposure_ms)
        self.driver = driver
        self.model: str | None = None
        self._gain = settings.gain
        self._roi: tuple[int, int, int, int] | None = settings.roi
        self._binning: int = settings.binning
        self._pixel_size_set = settings.pixel_size_um is not None

    def connect(self) -> None:
        info = self.driver.connect()
        self.model = str(info.get("model", "")) or None
        if not self._pixel_size_set:
            self.pixel_size_um = float(info["pixel_size_um"])
        if self._roi is None:
            self._roi = (0, 0, int(info["width"]), int(info["height"]))
        self.driver.set_exposure(self._exposure_ms)
        self.driver.set_gain(self._gain)
        self.driver.set_roi(*self._roi)
        self.driver.set_binning(self._binning)

    def _close(self) -> None:
        self.driver.close()

    def _apply_exposure(self, ms: float) -> None:
        self.driver.set_exposure(ms)

    def _grab(self, timeout_s: float) -> Frame:
        image, metadata = self.driver.snap(timeout_s)
        return Frame(image=image, metadata=metadata)


class OpenCvCamera(CameraBase):
    """`opencv` backend: a UVC camera through cv2.VideoCapture (device index, path or URL).

    UVC cameras rarely bin or crop in hardware, so ROI and binning are applied in software
    (binning sums blocks, clipped to uint16); gain goes to CAP_PROP_GAIN.
    """

    def __init__(self, name: str, source: int | str, settings: OpenCvSettings) -> None:
        super().__init__(name, settings.pixel_size_um, settings.exposure_ms)
        self.source = source
        self._set_exposure = "exposure_ms" in settings.model_fields_set
        self._gain: float | None = settings.gain
        self.roi: tuple[int, int, int, int] | None = settings.roi
        self._binning: int = settings.binning
        self._capture: Any = None
        self._counter = 0
        self._grab_lock = threading.Lock()

    @property
    def gain(self) -> float | None:
        """Gain as last set (None: the camera's own)."""
        return self._gain

    @gain.setter
    def gain(self, value: float) -> None:
        if self._capture is not None:
            self._capture.set(cv2.CAP_PROP_GAIN, float(value))
        self._gain = float(value)

    @property
    def binning(self) -> int:
        """Software binning (1, 2, 4)."""
        return self._binning

    @binning.setter
    def binning(self, value: int) -> None:
        if value not in (1, 2, 4):
            raise OutOfRange(self.name, f"binning {value} not in (1, 2, 4)")
        self._binning = int(value)

    def connect(self) -> None:
        capture = cv2.VideoCapture(self.source)
        if not capture.isOpened():
            capture.release()
            raise DeviceDisconnected(self.name, f"no camera at {self.source!r} (OpenCV)")
        capture.set(cv2.CAP_PROP_CONVERT_RGB, 0)
        self._capture = capture
        if self._set_exposure:
            self._apply_exposure(self._exposure_ms)
        if self._gain is not None:
            self.gain = self._gain

    def _close(self) -> None:
        if self._capture is not None:
            self._capture.release()
            self._capture = None

    def _apply_exposure(self, ms: float) -> None:
        if self._capture is None:
            return
        # V4L2: manual exposure needs AUTO_EXPOSURE = 1 (manual) first; units are 100 us.
        self._capture.set(cv2.CAP_PROP_AUTO_EXPOSURE, 1)
        self._capture.set(cv2.CAP_PROP_EXPOSURE, ms * 10.0)

    def _grab(self, timeout_s: float) -> Frame:
        if self._capture is None:
            raise DeviceDisconnected(self.name, "camera is not open")
        result: list[Any] = []
        reader = threading.Thread(target=lambda: result.append(self._read_once()), daemon=True)
        with self._grab_lock:
            reader.start()
            reader.join(timeout_s)
        if not result or not result[0][0]:
            raise CameraTimeout(self.name, f"no frame within {timeout_s:g} s")
        self._counter += 1
        image = to_uint16_gray(result[0][1])
        x, y, w, h = self.roi or (0, 0, image.shape[1], image.shape[0])
        if x < 0 or y < 0 or x + w > image.shape[1] or y + h > image.shape[0]:
            raise OutOfRange(self.name, f"roi {self.roi} outside the {image.shape[::-1]} frame")
        image = bin_image(image[y : y + h, x : x + w], self._binning)
        metadata = {
            "time": time.monotonic(),
            "frame": self._counter,
            "exposure_ms": self._exposure_ms,
            "gain": self._gain,
            "roi": [x, y, w, h],
            "binning": self._binning,
        }
        return Frame(image=image, metadata=metadata)

    def _read_once(self) -> tuple[bool, Any]:
        return self._capture.read()


def bin_image(image: np.ndarray, n: int) -> np.ndarray:
    """Sum n x n blocks (edges that do not fill a block are dropped), clipped to uint16."""
    if n == 1:
        return image
    h, w = image.shape[0] // n * n, image.shape[1] // n * n
    blocks = image[:h, :w].reshape(h // n, n, w // n, n).sum(axis=(1, 3), dtype=np.uint32)
    return np.minimum(blocks, 65535).astype(np.uint16)


def to_uint16_gray(image: np.ndarray) -> np.ndarray:
    """A camera image as one uint16 plane (colour averaged; 8-bit kept at its values)."""
    if image.ndim == 3:
        image = image.mean(axis=2)
    return np.asarray(image).astype(np.uint16)


def make_sim_camera(name: str, settings: SimCameraSettings,
                    transport: SerialTransport) -> SimulatorCamera:
    """The simulator camera (`sim-camera`) behind `transport` (a socket:// URL)."""
    return SimulatorCamera(name, SimCamera(transport, timeout=settings.timeout), settings)


def make_opencv_camera(name: str, settings: OpenCvSettings) -> OpenCvCamera:
    """A UVC camera through OpenCV; the url is a device index ("0") or a path / stream URL."""
    url = settings.url
    return OpenCvCamera(name, int(url) if url.isdigit() else url, settings)
