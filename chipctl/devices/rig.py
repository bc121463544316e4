"""The rig: a bench's devices, by name and by kind, connected and safely stopped.

The rig alone opens and closes the serial ports: `connect()` opens every port, then connects
every device; `close()` closes every device, then every port. Devices that share a port
(several New Era pumps on one RS-232 line) share one transport and so one lock. The devices
are given (chipctl.devices.registry.build_rig builds them from a bench file; tests give fakes).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from chipctl.config.bench import Bench
from chipctl.devices.interfaces import Camera, Illuminator, Stage, SyringePump, Valve
from drivers.errors import DeviceError
from drivers.transport import SerialTransport

D = TypeVar("D")


@dataclass(frozen=True)
class BroadcastStop:
    """One command that stops every device on a port at once (the emergency stop's first
    move), and the devices it stops (told afterwards, to settle their accounts)."""

    transport: SerialTransport
    stop: Callable[[SerialTransport], None]
    devices: Sequence[Any]


class OfKind(Generic[D]):
    """A rig's devices of one kind, by name (read as an attribute: `rig.pumps`)."""

    def __init__(self, kind: str) -> None:
        self.kind = kind

    def __get__(self, rig: Rig, owner: type[Rig]) -> dict[str, D]:
        return rig.of_kind(self.kind)


class Rig:
    """The devices of one bench, by name and by kind."""

    def __init__(self, bench: Bench, devices: Mapping[str, Any],
                 transports: Mapping[str, SerialTransport] | None = None,
                 broadcasts: Sequence[BroadcastStop] = ()) -> None:
        missing = set(bench.devices) ^ set(devices)
        if missing:
            raise ValueError(f"the rig's devices differ from the bench's: {sorted(missing)}")
        self.bench = bench
        self.devices = dict(devices)
        self.transports = dict(transports or {})
        self.broadcasts = list(broadcasts)

    # -- by kind ----------------------------------------------------------------------------
    def of_kind(self, kind: str) -> dict[str, Any]:
        """The devices of one kind (pump, illuminator, stage, camera, valve) by name; for a
        device with several roles (a Micro-Manager microscope), the part that plays it."""
        return {n: _role(self.devices[n], kind) for n in self.bench.of_kind(kind)}

    pumps: OfKind[SyringePump] = OfKind("pump")
    illuminators: OfKind[Illuminator] = OfKind("illuminator")
    stages: OfKind[Stage] = OfKind("stage")
    cameras: OfKind[Camera] = OfKind("camera")
    valves: OfKind[Valve] = OfKind("valve")

    def first(self, kind: str) -> Any:
        """The bench's first device of a kind (the microscope has one of each)."""
        devices = self.of_kind(kind)
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

    def reconnect(self, name: str) -> None:
        """Open a device's port again (after a lost link) and initialize the device."""
        url = self.bench.devices[name].url
        if url in self.transports:
            self.transports[url].open()
        self.devices[name].connect()

    def safe_state(self) -> list[str]:
        """Stop every pump and turn every light off; returns what could not be done."""
        failures = []
        for name, pump in self.pumps.items():
            failures += _attempt(name, pump.stop)
        for name, light in self.illuminators.items():
            failures += _attempt(name, light.dark)
        return failures

    def halt_all(self) -> list[str]:
        """Emergency stop: a broadcast stop on each port that has one (`*STP`, every New Era
        pump at once), then every pump and light one by one. Returns what could not be done."""
        failures = []
        for broadcast in self.broadcasts:
            try:
                broadcast.stop(broadcast.transport)
            except (DeviceError, OSError) as exc:
                failures.append(f"broadcast stop on {broadcast.transport.url}: {exc}")
                continue
            for device in broadcast.devices:
                device.stopped_by_broadcast()
        return failures + self.safe_state()

    def close(self) -> None:
        """Close every device, then every port; never raises."""
        for device in self.devices.values():
            with contextlib.suppress(Exception):
                device.close()
        for transport in self.transports.values():
            transport.close()


def _role(device: Any, kind: str) -> Any:
    """The part of a device that serves `kind` (its `roles`, where it has them)."""
    roles = getattr(device, "roles", None)
    return roles[kind] if isinstance(roles, Mapping) and kind in roles else device


def _attempt(name: str, action: Callable[[], object]) -> list[str]:
    """[] if `action()` worked, else what went wrong with device `name`."""
    try:
        action()
    except (DeviceError, OSError) as exc:
        return [f"{name}: {exc}"]
    return []
