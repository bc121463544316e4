"""What every emulated pump chain shares: several syringe pumps on one port, by address.

The chain builds each pump's syringe model from its spec and registers it in the world, arms
device faults (`stall`, `power_cycle`) on one pump or all of them and link faults on the
endpoint, and serves itself on a TCP port or a pseudo-terminal. The wire protocol (the
Emulator face: connected / receive / poll) is the subclass's own.
"""

from __future__ import annotations

import abc
import functools
from collections.abc import Callable
from typing import Any, Generic, Protocol, TypeVar

from hardware_sim.endpoints import PtyEndpoint, TcpEndpoint
from hardware_sim.faults import LINK_FAULTS, FaultInjector
from hardware_sim.syringe import SyringePumpModel
from hardware_sim.world import World

DEVICE_FAULTS = ("stall", "power_cycle")


class ChainPump(Protocol):
    """One emulated pump of a chain, as the chain's plumbing sees it."""

    address: int

    def stall(self) -> None: ...

    def power_cycle(self) -> None: ...


PumpT = TypeVar("PumpT", bound=ChainPump)


class PumpChain(abc.ABC, Generic[PumpT]):
    """Pumps daisy-chained on one port; `endpoint_name` names the port when it is served.

    `pumps`: one dict per pump with `name`, `address`, `reagent`, `diameter_mm`,
    `syringe_ul`, `contents_ul` (and `bore_mm`, the syringe's actual inner diameter);
    `make_pump(spec, model)` makes the protocol's pump around the model. Each model is
    registered in world.pumps and world.devices under its name.
    """

    endpoint_name = "pumps"

    def __init__(self, world: World, pumps: list[dict[str, Any]],
                 make_pump: Callable[[dict[str, Any], SyringePumpModel], PumpT]) -> None:
        self.world = world
        self.faults = FaultInjector()
        self.pumps: dict[int, PumpT] = {}
        self.by_name: dict[str, PumpT] = {}
        self._buffer = b""
        for spec in pumps:
            model = SyringePumpModel(
                name=spec["name"],
                reagent=spec.get("reagent", ""),
                diameter_mm=float(spec.get("diameter_mm", 4.699)),
                syringe_ul=float(spec.get("syringe_ul", 1000.0)),
                contents_ul=float(spec.get("contents_ul", 0.0)),
                now=world.clock.now,
                bore_mm=float(spec.get("bore_mm", 0.0)),
            )
            pump = make_pump(spec, model)
            self.pumps[pump.address] = pump
            self.by_name[model.name] = pump
            model.injector = functools.partial(self._inject_one, model.name)
            world.pumps[model.name] = model
            world.devices[model.name] = model

    # -- faults ---------------------------------------------------------------------------------
    def _inject_one(self, name: str, fault: str, value: float = 1.0) -> None:
        self.inject(fault, value, pump=name)

    def inject(self, fault: str, value: float = 1.0, pump: str | None = None) -> None:
        """Arm a device fault (`stall`, `power_cycle`) on `pump` (default all) or a link fault."""
        with self.world.lock:
            if fault in DEVICE_FAULTS:
                targets = [self.by_name[pump]] if pump else list(self.pumps.values())
                for target in targets:
                    target.stall() if fault == "stall" else target.power_cycle()
                self._after_device_fault(fault)
            elif fault in LINK_FAULTS:
                self.faults.arm(fault, value)
            else:
                known = ", ".join(DEVICE_FAULTS + LINK_FAULTS)
                raise ValueError(f"unknown fault {fault!r}; known: {known}")

    def _after_device_fault(self, fault: str) -> None:
        """Hook: what the chain itself does after a device fault (nothing by default)."""

    # -- serving --------------------------------------------------------------------------------
    def serve_tcp(self, port: int = 0) -> TcpEndpoint:
        """Serve the chain on a TCP port (started); link faults go through self.faults."""
        endpoint = TcpEndpoint(self.endpoint_name, self, self.world.lock, port)
        endpoint.faults = self.faults
        endpoint.start()
        return endpoint

    def serve_pty(self, link: str | None = None) -> PtyEndpoint:
        """Serve the chain on a pseudo-terminal (started)."""
        endpoint = PtyEndpoint(self.endpoint_name, self, self.world.lock, link)
        endpoint.faults = self.faults
        endpoint.start()
        return endpoint

    # -- the Emulator face (the wire protocol) ----------------------------------------------
    @abc.abstractmethod
    def connected(self) -> bytes:
        """Bytes printed when a host opens the port."""

    @abc.abstractmethod
    def receive(self, data: bytes) -> bytes:
        """Bytes from the host; the replies to them."""

    @abc.abstractmethod
    def poll(self) -> bytes:
        """Clock-driven, unsolicited output."""
