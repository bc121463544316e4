"""The rig: devices built from a bench file, connected, and safely stopped.

Devices that share a port (several New Era pumps on one RS-232 line) share one transport and so
one lock. Driver factories are looked up by the bench file's `driver` name.
"""

from __future__ import annotations

import contextlib
import importlib
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from chipctl.config.bench import Bench, DeviceSpec
from chipctl.devices.interfaces import Camera, Illuminator, Pump, Stage
from drivers.errors import DeviceError
from drivers.transport import SerialTransport

# driver name -> (module, factory); factories take (name, settings, transport)
FACTORIES: dict[str, tuple[str, str]] = {
    "newera": ("chipctl.devices.pumps", "make_newera"),
    "harvard": ("chipctl.devices.pumps", "make_harvard"),
    "coolled": ("chipctl.devices.microscope", "make_coolled"),
    "prior": ("chipctl.devices.microscope", "make_prior"),
    "sim-camera": ("chipctl.devices.microscope", "make_sim_camera"),
}
BAUD_DEFAULTS = {"newera": 19200, "harvard": 115200, "coolled": 57600, "prior": 9600}


def _factory(driver: str) -> Callable[..., Any]:
    module, name = FACTORIES[driver]
    return getattr(importlib.import_module(module), name)


def _role(device: Any, kind: str) -> Any:
    """The part of a device that serves `kind` (a Micro-Manager microscope has one per role)."""
    roles = getattr(device, "roles", None)
    return roles[kind] if isinstance(roles, Mapping) and kind in roles else device


class Rig:
    """The devices of one bench, by name and by kind."""

    def __init__(self, bench: Bench) -> None:
        self.bench = bench
        self.transports: dict[str, SerialTransport] = {}
        self.devices: dict[str, Any] = {}
        for name, spec in bench.devices.items():
            self.devices[name] = self._build(name, spec)

    def _transport(self, spec: DeviceSpec) -> SerialTransport:
        if spec.url not in self.transports:
            baud = int(spec.settings.get("baudrate", BAUD_DEFAULTS.get(spec.driver, 9600)))
            timeout = float(spec.settings.get("timeout_s", 1.0))
            self.transports[spec.url] = SerialTransport(spec.url, baudrate=baud, timeout=timeout)
        return self.transports[spec.url]

    def _build(self, name: str, spec: DeviceSpec) -> Any:
        if spec.driver == "opencv":
            from chipctl.devices.microscope import make_opencv_camera

            return make_opencv_camera(name, spec.settings, spec.url)
        if spec.driver == "micromanager":
            from chipctl.devices.micromanager.scope import make_micromanager

            folder = Path(self.bench.path).parent if self.bench.path else Path.cwd()
            return make_micromanager(name, spec.settings, folder)
        return _factory(spec.driver)(name, spec.settings, self._transport(spec))

    # -- by kind ----------------------------------------------------------------------------
    def _of(self, kind: str) -> dict[str, Any]:
        return {n: _role(self.devices[n], kind) for n in self.bench.of_kind(kind)}

    @property
    def pumps(self) -> dict[str, Pump]:
        """Pumps by name."""
        return self._of("pump")

    @property
    def illuminators(self) -> dict[str, Illuminator]:
        """Illuminators by name."""
        return self._of("illuminator")

    @property
    def stages(self) -> dict[str, Stage]:
        """Stages by name."""
        return self._of("stage")

    @property
    def cameras(self) -> dict[str, Camera]:
        """Cameras by name."""
        return self._of("camera")

    def first(self, kind: str) -> Any:
        """The bench's first device of a kind (the microscope has one of each)."""
        devices = self._of(kind)
        if not devices:
            raise LookupError(f"the bench has no {kind}")
        return next(iter(devices.values()))

    # -- life cycle -------------------------------------------------------------------------
    def connect(self) -> None:
        """Open every port and initialize every device."""
        for transport in self.transports.values():
            transport.open()
        for device in self.devices.values():
            device.connect()

    def safe_state(self) -> list[str]:
        """Stop every pump and turn every light off; returns what could not be done."""
        failures = []
        for name, pump in self.pumps.items():
            try:
                pump.stop()
            except (DeviceError, OSError) as exc:
                failures.append(f"{name}: {exc}")
        for name, light in self.illuminators.items():
            try:
                light.dark()
            except (DeviceError, OSError) as exc:
                failures.append(f"{name}: {exc}")
        return failures

    def close(self) -> None:
        """Close every device and port; never raises."""
        for device in self.devices.values():
            with contextlib.suppress(Exception):
                device.close()
        for transport in self.transports.values():
            transport.close()
