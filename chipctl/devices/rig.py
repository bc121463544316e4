"""The rig: a bench's devices, by name and by kind, connected and safely stopped.

The rig alone opens and closes the serial ports: `connect()` opens every port, then connects
every device; `close()` closes every device, then every port. Devices that share a port
(several New Era pumps on one RS-232 line) share one transport and so one lock. The devices
are given (chipctl.devices.registry.build_rig builds them from a bench file; tests give fakes).
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from chipctl.config.bench import Bench
from chipctl.devices.interfaces import Camera, Illuminator, Stage, SyringePump, Valve
from chipctl.devices.safestop import OffAction, SafeStop, off_actions, run_in_parallel
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

    def safe_stop(self, reason: str = "", *, broadcast: bool = False) -> SafeStop:
        """Every pump stopped, every light off and every stage halted, all at once: the one
        safe stop every stop path calls (chipctl.devices.safestop). Each physical device's off
        goes out on its own thread, retried and confirmed; `broadcast` adds each port's
        broadcast stop (`*STP`, every New Era pump at once) beside them. Never raises."""
        actions = off_actions(self.bench, self.of_kind)
        if broadcast:
            actions += [self._broadcast_action(b) for b in self.broadcasts]
        return run_in_parallel(reason, actions)

    def _broadcast_action(self, broadcast: BroadcastStop) -> OffAction:
        names = tuple(n for n, d in self.devices.items() if d in broadcast.devices)

        def send() -> bool:
            broadcast.stop(broadcast.transport)
            return True
        return OffAction(names, "broadcast", send)

    def safe_state(self) -> list[str]:
        """The safe stop (every pump stopped, light off, stage halted); returns what could not be
        confirmed."""
        return self.safe_stop("safe state").failures

    def halt_all(self) -> list[str]:
        """Emergency stop: the safe stop with each port's broadcast stop beside it. Returns
        what could not be confirmed."""
        return self.safe_stop("emergency stop", broadcast=True).failures

    def close(self) -> None:
        """Close every device, then every port, all at once (closing a socket:// port takes
        pyserial 0.3 s); never raises."""
        _at_once([device.close for device in self.devices.values()])
        _at_once([transport.close for transport in self.transports.values()])


def _at_once(calls: Sequence[Callable[[], object]]) -> None:
    """Each call on its own thread, all joined; exceptions suppressed."""
    def quietly(call: Callable[[], object]) -> None:
        with contextlib.suppress(Exception):
            call()
    threads = [threading.Thread(target=quietly, args=(call,), daemon=True) for call in calls]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()


def _role(device: Any, kind: str) -> Any:
    """The part of a device that serves `kind` (its `roles`, where it has them)."""
    roles = getattr(device, "roles", None)
    return roles[kind] if isinstance(roles, Mapping) and kind in roles else device
