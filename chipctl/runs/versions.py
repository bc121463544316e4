"""Software and device firmware versions for run.json."""

from __future__ import annotations

import importlib.metadata
import platform
from typing import Any

import chipctl

PACKAGES = ("numpy", "opencv-python-headless", "pyserial", "tifffile", "psygnal", "pydantic")


def software_versions() -> dict[str, str]:
    """chipctl, Python, the OS and the key libraries."""
    versions = {"chipctl": chipctl.__version__, "python": platform.python_version(),
                "platform": platform.platform()}
    for name in PACKAGES:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            continue
    return versions


def device_versions(devices: dict[str, Any] | None) -> dict[str, dict[str, Any]]:
    """What each device says it is (firmware, model), where its adapter reports it."""
    out: dict[str, dict[str, Any]] = {}
    for name, device in (devices or {}).items():
        info = {"type": type(device).__name__}
        for attr in ("firmware", "version", "model", "serial_number"):
            try:
                value = getattr(device, attr, None)
            except Exception:  # noqa: BLE001 - a property that talks to a device may fail
                value = None
            if value is not None and not callable(value):
                info[attr] = str(value)
        out[name] = info
    return out
