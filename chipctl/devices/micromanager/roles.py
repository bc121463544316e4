"""The roles a Micro-Manager microscope plays for chipctl: camera, stage, illuminator.

Each adapter satisfies its interface in chipctl.devices.interfaces and talks to the devices of
the loaded configuration only through the core's standard calls (snapImage, setXYPosition,
setPosition, setShutterOpen, setStateLabel, setConfig, setProperty), so a vendor's C++ adapter
and a Python device in UniMMCore take the same path. Errors name the bench device, the role and
the Micro-Manager label, e.g. "scope camera 'HamamatsuHam_DCAM': snap: ...".
"""

from __future__ import annotations

import threading
import time
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import numpy as np

from chipctl.config.devices import MicroManagerChannel, MicroManagerSettings
from chipctl.devices.cameras import CameraBase, to_uint16_gray
from chipctl.devices.interfaces import Frame
from chipctl.devices.micromanager.core import as_device_error, mm_call
from drivers.errors import CameraTimeout, DeviceError, OutOfRange, StageFault

if TYPE_CHECKING:
    from chipctl.devices.micromanager.scope import MicroManagerScope

POLL_S = 0.005  # how often wait_idle asks the core whether a stage still moves


class MicroManagerCamera(CameraBase):
    """The camera role: snapImage/getImage on the configured camera, as uint16 frames.

    Exposure and pixel size come from Micro-Manager (its pixel size calibration for the current
    objective and binning; the bench file's pixel_size_um only when it has none). A snap runs on
    its own thread so that a camera that never delivers gives CameraTimeout, not a hang. Frames
    carry the stage position of the xy and focus roles. Thread-safe: one snap at a time.
    """

    def __init__(self, scope: MicroManagerScope, label: str, settings: MicroManagerSettings):
        super().__init__(scope.name, settings.pixel_size_um or 0.0, settings.exposure_ms)
        self.scope, self.label = scope, label
        self.device = f"{scope.name} camera {label!r}"
        self._fallback_pixel_um = settings.pixel_size_um
        self._initial_roi = settings.roi
        # the configuration's own binning stands unless the bench file sets one
        self._binning = settings.binning if "binning" in settings.model_fields_set else None
        self._snap_lock = threading.Lock()
        self._counter = 0

    def connect(self) -> None:
        """Make the camera the core's camera and apply the bench file's settings."""
        core = self.scope.core
        with mm_call(self.device, "set up the camera"):
            core.setCameraDevice(self.label)
            if self._binning:
                core.setProperty(self.label, "Binning", str(self._binning))
            if self._initial_roi:
                core.setROI(self.label, *self._initial_roi)
        self._apply_exposure(self._exposure_ms)
        self.pixel_size_um = self._pixel_size()

    def _close(self) -> None:
        """Nothing of its own: the scope unloads the configuration."""

    def _apply_exposure(self, ms: float) -> None:
        with mm_call(self.device, f"set exposure {ms:g} ms"):
            self.scope.core.setExposure(self.label, float(ms))

    def _pixel_size(self) -> float:
        with mm_call(self.device, "read the pixel size"):
            size = float(self.scope.core.getPixelSizeUm())
        if size > 0:
            return size
        if self._fallback_pixel_um:
            return self._fallback_pixel_um
        raise OutOfRange(self.device, "Micro-Manager has no pixel size calibration for the"
                         " current objective; calibrate it (Pixel Size Calibration) or set"
                         " pixel_size_um in the bench file")

    @property
    def roi(self) -> tuple[int, int, int, int]:
        """(x, y, width, height) in sensor pixels."""
        with mm_call(self.device, "read the ROI"):
            x, y, w, h = self.scope.core.getROI(self.label)
        return int(x), int(y), int(w), int(h)

    @roi.setter
    def roi(self, value: tuple[int, int, int, int]) -> None:
        with mm_call(self.device, f"set the ROI {tuple(value)}"):
            self.scope.core.setROI(self.label, *(int(v) for v in value))

    def _grab(self, timeout_s: float) -> Frame:
        if not self._snap_lock.acquire(timeout=max(timeout_s, 0.0)):
            raise CameraTimeout(self.device, "still busy with the previous frame")
        result: dict[str, Any] = {}
        worker = threading.Thread(target=self._snap_into, args=(result,), daemon=True,
                                  name=f"mm-snap-{self.label}")
        worker.start()
        worker.join(timeout_s)
        if worker.is_alive():
            raise CameraTimeout(self.device, f"no frame within {timeout_s:g} s")
        if "error" in result:
            raise as_device_error(self.device, "snap", result["error"], DeviceError,
                                  CameraTimeout)
        self._counter += 1
        image = to_uint16_gray(np.asarray(result["image"]))
        self.pixel_size_um = self._pixel_size()
        metadata = {"time": result["time"], "frame": self._counter, "camera": self.label,
                    "exposure_ms": self._exposure_ms, "pixel_size_um": self.pixel_size_um,
                    **self.scope.stage_metadata()}
        return Frame(image=image, metadata=metadata)

    def _snap_into(self, result: dict[str, Any]) -> None:
        """On the snap thread: one exposure and its image (the lock is released here)."""
        try:
            core = self.scope.core
            result["time"] = time.monotonic()
            core.snapImage()
            result["image"] = core.getImage()
        except Exception as exc:  # noqa: BLE001 - handed to the caller's thread
            result["error"] = exc
        finally:
            self._snap_lock.release()


class MicroManagerStage:
    """The stage role: the xy role's XY stage and the focus role's Z drive, in um.

    Moves start and return; wait_idle polls the core until neither drive is busy and checks
    that each arrived within tolerance (StageFault otherwise, like the ProScan adapter).
    """

    def __init__(self, scope: MicroManagerScope, settings: MicroManagerSettings) -> None:
        self.scope, self.name = scope, scope.name
        self.xy, self.focus_drive = settings.roles.xy, settings.roles.focus
        self.xy_tolerance_um, self.z_tolerance_um = (settings.xy_tolerance_um,
                                                     settings.z_tolerance_um)
        self.move_timeout_s = settings.move_timeout_s
        self._target_xy: tuple[float, float] | None = None
        self._target_z: float | None = None

    def _device(self, label: str | None, role: str) -> str:
        if label is None:
            raise OutOfRange(f"{self.name} stage", f"no {role} drive: map roles.{role}")
        return f"{self.name} {role} {label!r}"

    def connect(self) -> None:
        """Nothing to open: the scope loaded the configuration."""

    def close(self) -> None:
        """Nothing of its own: the scope unloads the configuration."""

    def move_to(self, x_um: float, y_um: float) -> None:
        """Start an XY move; wait_idle() to know it arrived."""
        device = self._device(self.xy, "xy")
        with mm_call(device, f"move to ({x_um:g}, {y_um:g}) um", StageFault):
            self.scope.core.setXYPosition(self.xy, float(x_um), float(y_um))
        self._target_xy = (float(x_um), float(y_um))

    def position(self) -> tuple[float, float]:
        """(x, y) um."""
        with mm_call(self._device(self.xy, "xy"), "read the position", StageFault):
            x, y = self.scope.core.getXYPosition(self.xy)
        return float(x), float(y)

    def focus_to(self, z_um: float) -> None:
        """Start a Z move."""
        with mm_call(self._device(self.focus_drive, "focus"), f"focus to {z_um:g} um",
                     StageFault):
            self.scope.core.setPosition(self.focus_drive, float(z_um))
        self._target_z = float(z_um)

    def focus(self) -> float:
        """Z um."""
        with mm_call(self._device(self.focus_drive, "focus"), "read Z", StageFault):
            return float(self.scope.core.getPosition(self.focus_drive))

    def _busy(self) -> bool:
        core = self.scope.core
        for label, role in ((self.xy, "xy"), (self.focus_drive, "focus")):
            if label is not None:
                with mm_call(self._device(label, role), "ask whether it moves", StageFault):
                    if core.deviceBusy(label):
                        return True
        return False

    def wait_idle(self, timeout_s: float = 30.0) -> None:
        """Wait until nothing moves; StageFault if a drive stopped short of its target."""
        deadline = time.monotonic() + timeout_s
        while self._busy():
            if time.monotonic() > deadline:
                raise StageFault(f"{self.name} stage", f"still moving after {timeout_s:g} s")
            time.sleep(POLL_S)
        if self._target_xy is not None:
            x, y = self.position()
            tx, ty = self._target_xy
            if max(abs(x - tx), abs(y - ty)) > self.xy_tolerance_um:
                raise StageFault(self._device(self.xy, "xy"),
                                 f"stopped at ({x:g}, {y:g}) um, target ({tx:g}, {ty:g})")
        if self._target_z is not None:
            z = self.focus()
            if abs(z - self._target_z) > self.z_tolerance_um:
                raise StageFault(self._device(self.focus_drive, "focus"),
                                 f"stopped at {z:g} um, target {self._target_z:g}")
        self._target_xy = self._target_z = None

    def halt(self) -> None:
        """Stop both drives now and forget the targets."""
        self._target_xy = self._target_z = None
        for label, role in ((self.xy, "xy"), (self.focus_drive, "focus")):
            if label is not None:
                with mm_call(self._device(label, role), "stop", StageFault):
                    self.scope.core.stop(label)


class MicroManagerIlluminator:
    """The illuminator role: the light role's shutter-type device, channels chosen by a
    channel-group preset, a position of the filter role, and a power property of the light.

    Without `channels` in the bench file, each state label of the filter role is a channel.
    Micro-Manager's AutoShutter is off (the scope turns it off), so the light stays as chipctl
    sets it: on for a snap or autofocus, dark otherwise.
    """

    def __init__(self, scope: MicroManagerScope, settings: MicroManagerSettings) -> None:
        self.scope, self.name = scope, scope.name
        self.light_label = str(settings.roles.light)
        self.filter = settings.roles.filter
        self.group = settings.channel_group
        self.device = f"{scope.name} light {self.light_label!r}"
        self._maps: dict[str, MicroManagerChannel] = dict(settings.channels)
        self.channels: tuple[str, ...] = tuple(self._maps)
        self._lit: str | None = None
        self._power: dict[str, float] = {}

    def connect(self) -> None:
        """Check every channel's preset, filter position and power property; start dark."""
        core = self.scope.core
        if not self._maps and self.filter:
            with mm_call(f"{self.name} filter {self.filter!r}", "read the state labels"):
                labels = [str(label) for label in core.getStateLabels(self.filter)]
            self._maps = {label: MicroManagerChannel(filter=label) for label in labels}
            self.channels = tuple(self._maps)
        for channel, spec in self._maps.items():
            self._check(channel, spec, core)
        self.dark()

    def _check(self, channel: str, spec: MicroManagerChannel, core: Any) -> None:
        problem = None
        if spec.preset and spec.preset not in core.getAvailableConfigs(self.group):
            problem = f"no preset {spec.preset!r} in channel group {self.group!r}"
        elif isinstance(spec.filter, str) and spec.filter not in core.getStateLabels(self.filter):
            problem = f"no position labelled {spec.filter!r} on the filter {self.filter!r}"
        elif spec.power_property and not core.hasProperty(self.light_label, spec.power_property):
            problem = f"the light has no property {spec.power_property!r}"
        if problem:
            raise OutOfRange(self.device, f"channel {channel}: {problem}")

    def close(self) -> None:
        """Nothing of its own: the scope unloads the configuration."""

    def _spec(self, channel: str) -> MicroManagerChannel:
        if channel not in self._maps:
            raise OutOfRange(self.device, f"unknown channel {channel!r}; known {self.channels}")
        return self._maps[channel]

    def light(self, channel: str, power_pct: float) -> None:
        """Select `channel` (preset, filter), set its power and open the light."""
        spec, core = self._spec(channel), self.scope.core
        with mm_call(self.device, f"light {channel} at {power_pct:g} %"):
            if spec.preset:
                core.setConfig(self.group, spec.preset)
                core.waitForConfig(self.group, spec.preset)
            if spec.filter is not None:
                self._turn_filter(spec.filter)
            if spec.power_property:
                value = power_pct / 100 * spec.power_max
                core.setProperty(self.light_label, spec.power_property, value)
            core.setShutterOpen(self.light_label, True)
            core.waitForDevice(self.light_label)
        self._lit, self._power[channel] = channel, float(power_pct)

    def _turn_filter(self, position: str | int) -> None:
        core = self.scope.core
        if isinstance(position, str):
            core.setStateLabel(self.filter, position)
        else:
            core.setState(self.filter, position)
        core.waitForDevice(self.filter)

    def dark(self) -> None:
        """Close the light."""
        with mm_call(self.device, "dark"):
            self.scope.core.setShutterOpen(self.light_label, False)
        self._lit = None

    def state(self) -> dict[str, tuple[bool, float]]:
        """channel -> (emitting, power %): emitting when the light is open on that channel."""
        core = self.scope.core
        with mm_call(self.device, "read the state"):
            is_open = bool(core.getShutterOpen(self.light_label))
            return {ch: (is_open and ch == self._lit and self._selected(spec),
                         self._power_pct(ch, spec)) for ch, spec in self._maps.items()}

    def _selected(self, spec: MicroManagerChannel) -> bool:
        """True if the filter stands where the channel wants it (or the channel has none)."""
        core = self.scope.core
        if isinstance(spec.filter, str):
            return bool(core.getStateLabel(self.filter) == spec.filter)
        if isinstance(spec.filter, int):
            return bool(core.getState(self.filter) == spec.filter)
        return True

    def _power_pct(self, channel: str, spec: MicroManagerChannel) -> float:
        if spec.power_property:
            value = float(self.scope.core.getProperty(self.light_label, spec.power_property))
            return value / spec.power_max * 100
        return self._power.get(channel, 0.0)


def role_adapters(scope: MicroManagerScope, settings: MicroManagerSettings) -> Mapping[str, Any]:
    """chipctl kind -> the adapter of that role, for the roles the bench file maps."""
    roles: dict[str, Any] = {}
    if settings.roles.camera:
        roles["camera"] = MicroManagerCamera(scope, settings.roles.camera, settings)
    if settings.roles.xy or settings.roles.focus:
        roles["stage"] = MicroManagerStage(scope, settings)
    if settings.roles.light:
        roles["illuminator"] = MicroManagerIlluminator(scope, settings)
    return roles
