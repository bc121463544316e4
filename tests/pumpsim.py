"""Helpers for the pump tests: a simulated New Era chain / Harvard chain served in-process."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from typing import Any, TypeVar

from chipctl.config.bench import Bench
from chipctl.config.devices import device_settings
from chipctl.devices.interfaces import SyringePump
from chipctl.devices.registry import build_rig
from chipctl.devices.rig import Rig
from drivers.transport import SerialTransport
from hardware_sim.clock import VirtualClock
from hardware_sim.harvard import HarvardChain
from hardware_sim.newera import NewEraChain
from hardware_sim.world import World

SPEED = 60.0  # simulated seconds per wall second
ChainT = TypeVar("ChainT", NewEraChain, HarvardChain)


def ne_spec(name: str = "sample", address: int = 0, **extra: Any) -> dict[str, Any]:
    """One pump of a chain (either family): a 1 mL syringe (4.699 mm) holding 500 uL."""
    spec = dict(
        name=name,
        address=address,
        reagent=name,
        diameter_mm=4.699,
        syringe_ul=1000.0,
        contents_ul=500.0,
    )
    spec.update(extra)
    return spec


def settings(address: int = 0, contents: str = "0.5 mL", driver: str = "newera",
             **extra: object) -> Any:
    """The bench-file entry of a pump at `address`: a 1 mL syringe (4.699 mm) of sample."""
    syringe = {"inner_diameter": "4.699 mm", "volume": "1 mL", "contents": contents}
    return device_settings(driver, address=address, syringe=syringe, reagent="sample", **extra)


def ha_settings(address: int = 0, contents: str = "0.5 mL", **extra: object) -> Any:
    """settings() of a Harvard pump."""
    return settings(address, contents, "harvard", **extra)


def chain_rig(transport: SerialTransport, driver: str = "newera",
              **addresses: int) -> Rig:
    """A rig of pumps (name=address) on one served chain, built as a bench file's would be."""
    syringe = {"inner_diameter": "4.699 mm", "volume": "1 mL", "contents": "0.5 mL"}
    devices = {name: {"driver": driver, "url": transport.url, "address": address,
                      "reagent": "sample", "syringe": syringe}
               for name, address in addresses.items()}
    return build_rig(Bench.model_validate({"devices": devices}), transports={
        transport.url: transport})


def wait_stopped(pump: SyringePump, limit_s: float = 5.0) -> None:
    """Wait (at most `limit_s`) until the pump reports it has stopped."""
    deadline = time.monotonic() + limit_s
    while pump.is_running():
        assert time.monotonic() < deadline, "pump still running"
        time.sleep(0.02)


@contextlib.contextmanager
def _served(world: World, chain: ChainT, wire: str, link: str | None, name: str,
            baudrate: int, timeout: float) -> Iterator[tuple[World, ChainT, SerialTransport]]:
    """`chain` served on TCP or a pty and a transport to it, opened as the rig would; on a
    normal exit, asserts that the test left no pump running; pumps are stopped anyway."""
    endpoint = chain.serve_tcp() if wire == "tcp" else chain.serve_pty(link)
    transport = SerialTransport(endpoint.url, name=name, baudrate=baudrate, timeout=timeout)
    try:
        transport.open()
        yield world, chain, transport
        assert_all_stopped(world)
    finally:
        stop_all(world)
        transport.close()
        endpoint.stop()


@contextlib.contextmanager
def newera_bench(
    *specs: dict[str, Any],
    wire: str = "tcp",
    speed: float = SPEED,
    timeout: float = 0.3,
    link: str | None = None,
) -> Iterator[tuple[World, NewEraChain, SerialTransport]]:
    """A world with an NE chain served on TCP or a pty, and an open transport to it.

    On a normal exit it asserts that the test left no pump running; pumps are stopped anyway.
    """
    world = World(VirtualClock(speed=speed))
    chain = NewEraChain(world, list(specs) or [ne_spec()])
    with _served(world, chain, wire, link, "ne-port", 19200, timeout) as served:
        yield served


@contextlib.contextmanager
def harvard_bench(
    *specs: dict[str, Any],
    wire: str = "tcp",
    speed: float = SPEED,
    timeout: float = 0.3,
    link: str | None = None,
) -> Iterator[tuple[World, HarvardChain, SerialTransport]]:
    """A world with a Harvard daisy chain served on TCP or a pty, and a transport to it."""
    world = World(VirtualClock(speed=speed))
    chain = HarvardChain(world, list(specs) or [ne_spec()])
    with _served(world, chain, wire, link, "ha-port", 115200, timeout) as served:
        yield served


def running_pumps(world: World) -> list[str]:
    """Names of the simulated pumps that move right now."""
    with world.lock:
        now = world.now()
        return [name for name, pump in world.pumps.items() if pump.flow_ul_per_min(now) != 0]


def assert_all_stopped(world: World) -> None:
    """Fail if a test left a simulated pump running."""
    assert not running_pumps(world), f"pumps left running: {running_pumps(world)}"


def stop_all(world: World) -> None:
    """Stop every simulated pump (clean-up after a failed test)."""
    with world.lock:
        for model in world.pumps.values():
            model.stop()  # type: ignore[attr-defined]


class LowestRng:
    """A stand-in random source for FaultInjector: always the lowest choice (deterministic)."""

    def randrange(self, start: int, stop: int | None = None) -> int:
        return 0 if stop is None else start
