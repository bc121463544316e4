"""The microscope as the engine sees it: adapters and the factories the bench loader calls.

Factories (settings = the device's bench-file mapping minus driver and url):
- make_coolled(name, settings, transport) -> CoolLedIlluminator  (Illuminator)
- make_prior(name, settings, transport) -> PriorStage              (Stage)
- make_sim_camera(name, settings, transport) -> SimulatorCamera    (Camera)
- make_opencv_camera(name, settings, url) -> OpenCvCamera          (Camera)
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from chipctl.cameras import OpenCvCamera, SimulatorCamera
from chipctl.units import to_unit
from drivers.coolled import ChannelState, CoolLed
from drivers.errors import DeviceError, OutOfRange, StageFault
from drivers.prior import ProScan
from drivers.simcamera import SimCamera
from drivers.transport import SerialTransport


def _firmware(query: Callable[[], str]) -> str | None:
    """What a device reports of its firmware, for the run record (None if it will not say)."""
    try:
        return query() or None
    except DeviceError:
        return None


class CoolLedIlluminator:
    """Illuminator over a CoolLED: named channels (AF488, ...) mapped to letters (A, ...)."""

    def __init__(self, name: str, driver: CoolLed, channels: Mapping[str, str]) -> None:
        self.name = name
        self.driver = driver
        self.letters = {str(k): str(v).upper() for k, v in channels.items()}
        self.channels = tuple(self.letters)
        self.model: str | None = None
        self.firmware: str | None = None

    def connect(self) -> None:
        """Open the link, check every mapped letter exists, and start dark."""
        self.model = self.driver.connect()
        self.firmware = _firmware(lambda: "; ".join(self.driver.versions()))
        missing = [ch for ch in self.letters.values() if ch not in self.driver.channels]
        if missing:
            raise OutOfRange(self.name, f"channels {missing} not on this {self.driver.model}")
        self.dark()

    def close(self) -> None:
        """Close the link (the light is left as it is)."""
        self.driver.close()

    def _letter(self, channel: str) -> str:
        if channel not in self.letters:
            raise OutOfRange(self.name, f"unknown channel {channel!r}; known {self.channels}")
        return self.letters[channel]

    def light(self, channel: str, power_pct: float) -> None:
        """`channel` on at `power_pct` (rounded to whole %), every other channel off."""
        letter = self._letter(channel)
        current = self.driver.state()
        level = int(round(power_pct))
        wanted = {
            ch: ChannelState(ch == letter, ch == letter, level if ch == letter else s.intensity)
            for ch, s in current.items()
        }
        self.driver.set_state(wanted)

    def dark(self) -> None:
        """Every channel off (and deselected)."""
        current = self.driver.state()
        self.driver.set_state(
            {ch: ChannelState(False, False, s.intensity) for ch, s in current.items()}
        )

    def state(self) -> dict[str, tuple[bool, float]]:
        """channel name -> (emitting, power %)."""
        reported = self.driver.state()
        return {
            name: (reported[letter].emitting, float(reported[letter].intensity))
            for name, letter in self.letters.items()
        }


class PriorStage:
    """Stage over a ProScan III: XY and Z in um; wait_idle checks the stage got there."""

    def __init__(
        self,
        name: str,
        driver: ProScan,
        *,
        xy_tolerance_um: float = 2.0,
        z_tolerance_um: float = 0.5,
        speed_pct: int | None = None,
    ) -> None:
        self.name = name
        self.driver = driver
        self.firmware: str | None = None
        self.xy_tolerance_um = xy_tolerance_um
        self.z_tolerance_um = z_tolerance_um
        self.speed_pct = speed_pct
        self._target_xy: tuple[float, float] | None = None
        self._target_z: float | None = None

    def connect(self) -> None:
        """Open the link in standard mode; apply the configured speed."""
        self.driver.connect()
        self.firmware = _firmware(self.driver.version)
        if self.speed_pct is not None:
            self.driver.set_speed(self.speed_pct)

    def close(self) -> None:
        """Close the link."""
        self.driver.close()

    def move_to(self, x_um: float, y_um: float) -> None:
        """Start an XY move; wait_idle() to know it arrived."""
        self._target_xy = (float(x_um), float(y_um))
        self.driver.move_to(x_um, y_um)

    def position(self) -> tuple[float, float]:
        """(x, y) um."""
        x, y, _ = self.driver.position()
        return x, y

    def focus_to(self, z_um: float) -> None:
        """Start a Z move."""
        self._target_z = float(z_um)
        self.driver.focus_to(z_um)

    def focus(self) -> float:
        """Z um."""
        return self.driver.z()

    def wait_idle(self, timeout_s: float = 30.0) -> None:
        """Wait until nothing moves; StageFault if the stage stopped short of its target."""
        self.driver.wait_idle(timeout_s)
        x, y, z = self.driver.position()
        if self._target_xy is not None:
            tx, ty = self._target_xy
            if max(abs(x - tx), abs(y - ty)) > self.xy_tolerance_um:
                latch = self.driver.limit_latch()
                raise StageFault(
                    self.name,
                    f"XY stopped at ({x:g}, {y:g}) um, target ({tx:g}, {ty:g}); "
                    f"limit latch {latch}",
                )
        if self._target_z is not None and abs(z - self._target_z) > self.z_tolerance_um:
            raise StageFault(self.name, f"Z stopped at {z:g} um, target {self._target_z:g}")
        self._target_xy = self._target_z = None

    def halt(self) -> None:
        """Stop every axis now and forget the targets."""
        self._target_xy = self._target_z = None
        self.driver.stop()

    def set_filter(self, position: int, wheel: int = 1, timeout_s: float = 10.0) -> None:
        """Turn a filter wheel and wait until it is there."""
        self.driver.move_filter(wheel, position)
        self.driver.wait_idle(timeout_s)
        if self.driver.filter_position(wheel) != position:
            raise StageFault(self.name, f"filter wheel {wheel} did not reach {position}")

    def set_shutter(self, is_open: bool, shutter: int = 1) -> None:
        """Open or close a shutter on the controller."""
        self.driver.set_shutter(shutter, is_open)


def make_prior(name: str, settings: Mapping[str, Any], transport: SerialTransport) -> PriorStage:
    """A Prior ProScan III; settings: timeout, ack_timeout, speed_pct, xy/z_tolerance_um."""
    driver = ProScan(
        transport,
        name=name,
        timeout=to_unit(settings.get("timeout", "0.5 s"), "s"),
        ack_timeout=to_unit(settings.get("ack_timeout", "0.3 s"), "s"),
    )
    speed = settings.get("speed_pct")
    return PriorStage(
        name,
        driver,
        xy_tolerance_um=to_unit(settings.get("xy_tolerance_um", 2.0), "um"),
        z_tolerance_um=to_unit(settings.get("z_tolerance_um", 0.5), "um"),
        speed_pct=None if speed is None else int(speed),
    )


def make_coolled(
    name: str, settings: Mapping[str, Any], transport: SerialTransport
) -> CoolLedIlluminator:
    """A CoolLED pE-300/pE-4000; settings `channels: {AF488: A, ...}` (default A/B/C)."""
    channels = settings.get("channels") or {"AF488": "A", "AF555": "B", "AF647": "C"}
    timeout = to_unit(settings.get("timeout", "0.5 s"), "s")
    return CoolLedIlluminator(name, CoolLed(transport, name=name, timeout=timeout), channels)


def _camera_settings(settings: Mapping[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if "pixel_size_um" in settings:
        out["pixel_size_um"] = to_unit(settings["pixel_size_um"], "um")
    if "exposure" in settings or "exposure_ms" in settings:
        out["exposure_ms"] = to_unit(settings.get("exposure", settings.get("exposure_ms")), "ms")
    if "gain" in settings:
        out["gain"] = float(settings["gain"])
    if "roi" in settings:
        out["roi"] = tuple(int(v) for v in settings["roi"])
    if "binning" in settings:
        out["binning"] = int(settings["binning"])
    return out


def make_sim_camera(
    name: str, settings: Mapping[str, Any], transport: SerialTransport
) -> SimulatorCamera:
    """The simulator camera (`sim-camera`) behind `transport` (a socket:// URL)."""
    timeout = to_unit(settings.get("timeout", "2 s"), "s")
    driver = SimCamera(transport, timeout=timeout)
    return SimulatorCamera(name, driver, **_camera_settings(settings))


def make_opencv_camera(name: str, settings: Mapping[str, Any], url: str | int) -> OpenCvCamera:
    """A UVC camera through OpenCV; `url` is a device index ("0") or a path / stream URL."""
    source: int | str = int(url) if isinstance(url, int) or str(url).isdigit() else str(url)
    return OpenCvCamera(name, source, **_camera_settings(settings))
