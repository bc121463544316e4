"""The microscope as the engine sees it: adapters and the factories the bench loader calls.

Factories (settings = the device's bench-file mapping minus driver and url):
- make_coolled(name, settings, transport) -> CoolLedIlluminator  (Illuminator)
- make_prior(name, settings, transport) -> PriorStage              (Stage)
- make_sim_camera(name, settings, transport) -> SimulatorCamera    (Camera)
- make_opencv_camera(name, settings, url) -> OpenCvCamera          (Camera)
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from chipctl.cameras import OpenCvCamera, SimulatorCamera
from chipctl.units import to_unit
from drivers.simcamera import SimCamera
from drivers.transport import SerialTransport


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
