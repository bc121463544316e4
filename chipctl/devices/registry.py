"""The driver registry: for each `driver` a bench file may name, how its device is built.

One table. Each entry pairs a settings model (chipctl.config.devices: it states the driver's
name, its kind, its default baud rate and every setting) with the factory that builds the
engine's device from it, and, where the protocol has one, a broadcast stop for the emergency
stop. `build_rig(bench)` opens nothing: it builds the transports (one per port, shared by the
devices on it) and the devices; the rig opens and closes the ports.

To add a device: its driver in drivers/, a settings model in chipctl.config.devices (with its
`kind`), an adapter satisfying its interface in chipctl.devices.interfaces (or the driver, if
it already speaks the lab's units, as the VICI valve does), and one `Driver(...)` line below.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, get_args

from chipctl.config.bench import Bench
from chipctl.config.devices import (
    CoolLedSettings,
    DeviceSettings,
    HarvardSettings,
    MicroManagerSettings,
    NewEraSettings,
    OpenCvSettings,
    PriorSettings,
    SimCameraSettings,
    ViciSettings,
)
from chipctl.devices import cameras, illuminator, pumps, stage, valve
from chipctl.devices.micromanager import scope as micromanager
from chipctl.devices.rig import BroadcastStop, Rig
from drivers import newera
from drivers.transport import SerialTransport


@dataclass(frozen=True)
class Driver:
    """One driver: its settings model, the factory of its device, its broadcast stop."""

    settings: type[DeviceSettings]
    factory: Callable[[str, Any, SerialTransport], Any]
    broadcast_stop: Callable[[SerialTransport], None] | None = None

    @property
    def name(self) -> str:
        """The `driver` value in a bench file."""
        return str(get_args(self.settings.model_fields["driver"].annotation)[0])

    @property
    def kind(self) -> str:
        """pump, illuminator, stage, camera (or valve)."""
        return self.settings.kind

    @property
    def baudrate(self) -> int:
        """The default baud rate (a bench file may set another)."""
        return int(self.settings.model_fields["baudrate"].default)


def _opencv(name: str, settings: OpenCvSettings, transport: SerialTransport | None) -> Any:
    return cameras.make_opencv_camera(name, settings)


DRIVERS: dict[str, Driver] = {d.name: d for d in (
    Driver(NewEraSettings, pumps.make_newera, newera.emergency_stop_all),
    Driver(HarvardSettings, pumps.make_harvard),
    Driver(CoolLedSettings, illuminator.make_coolled),
    Driver(PriorSettings, stage.make_prior),
    Driver(SimCameraSettings, cameras.make_sim_camera),
    Driver(OpenCvSettings, _opencv),
    Driver(ViciSettings, valve.make_vici),
    Driver(MicroManagerSettings, micromanager.make_micromanager),
)}


def build_rig(bench: Bench, drivers: dict[str, Driver] = DRIVERS,
              transports: dict[str, SerialTransport] | None = None) -> Rig:
    """The rig of a bench: one transport per serial port (those given are used for their
    URLs), one device per entry."""
    transports = dict(transports or {})
    devices: dict[str, Any] = {}
    for name, spec in bench.devices.items():
        driver = drivers[spec.driver]
        transport = None
        if spec.serial:  # a port is named by the devices on it (errors name them, not it)
            on_port = "+".join(n for n, s in bench.devices.items() if s.url == spec.url)
            transport = transports.setdefault(spec.url, SerialTransport(
                spec.url, name=on_port, baudrate=spec.baudrate, timeout=spec.timeout_s))
        devices[name] = driver.factory(name, spec, transport)  # type: ignore[arg-type]
    return Rig(bench, devices, transports, _broadcasts(bench, drivers, devices, transports))


def _broadcasts(bench: Bench, drivers: dict[str, Driver], devices: dict[str, Any],
                transports: dict[str, SerialTransport]) -> list[BroadcastStop]:
    """A broadcast stop per port whose devices' protocol has one (New Era `*STP`)."""
    out = []
    for url, transport in sorted(transports.items()):
        for driver in {drivers[s.driver] for s in bench.devices.values() if s.url == url}:
            if driver.broadcast_stop is not None:
                on_port = [devices[n] for n, s in bench.devices.items()
                           if s.url == url and s.driver == driver.name]
                out.append(BroadcastStop(transport, driver.broadcast_stop, on_port))
    return out
