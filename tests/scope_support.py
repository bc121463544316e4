"""Test helpers for the microscope: a scripted serial port, a hand-driven clock, fake flows."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from drivers.transport import SerialTransport
from hardware_sim.endpoints import PtyEndpoint, TcpEndpoint


class ScriptedPort:
    """A fake pyserial port: each write must equal the next expected command; its reply is
    then readable. `unexpected` records mismatches; `pending` lists exchanges never made."""

    def __init__(self, exchanges: list[tuple[bytes, bytes]], initial: bytes = b"") -> None:
        self.exchanges = list(exchanges)
        self.buffer = bytearray(initial)
        self.unexpected: list[bytes] = []
        self.timeout: float | None = 0.0
        self.is_open = True

    @property
    def in_waiting(self) -> int:
        return len(self.buffer)

    def read(self, size: int = 1) -> bytes:
        data = bytes(self.buffer[:size])
        del self.buffer[:size]
        return data

    def write(self, data: bytes) -> int:
        if not self.exchanges:
            self.unexpected.append(data)
            raise AssertionError(f"unexpected write {data!r}: no exchange left")
        sent, reply = self.exchanges[0]
        if data != sent:
            self.unexpected.append(data)
            raise AssertionError(f"expected {sent!r}, driver sent {data!r}")
        self.exchanges.pop(0)
        self.buffer += reply
        return len(data)

    def flush(self) -> None:
        pass

    def close(self) -> None:
        self.is_open = False

    @property
    def pending(self) -> list[tuple[bytes, bytes]]:
        return self.exchanges


def scripted(
    exchanges: list[tuple[bytes, bytes]], initial: bytes = b"", timeout: float = 0.2
) -> tuple[SerialTransport, ScriptedPort]:
    """A transport whose port is a ScriptedPort (already 'open')."""
    transport = SerialTransport("scripted://", name="dev", timeout=timeout)
    port = ScriptedPort(exchanges, initial)
    transport._port = port  # type: ignore[assignment]
    return transport, port


def assert_all_sent(port: ScriptedPort) -> None:
    """Every scripted exchange happened and nothing else was sent."""
    assert not port.unexpected, f"unexpected writes: {port.unexpected!r}"
    assert not port.pending, f"exchanges never made: {port.pending!r}"


class ManualClock:
    """A clock the test moves by hand (World only calls now())."""

    def __init__(self, start: float = 0.0) -> None:
        self.t = start
        self.speed = 1.0

    def now(self) -> float:
        return self.t

    def wall_delay(self, sim_seconds: float) -> float:
        return max(0.0, sim_seconds)


@dataclass
class ConstantFlow:
    """A FlowSource pumping `reagent` at `rate` uL/min from `start` to `stop` (sim s)."""

    reagent: str
    rate: float
    start: float = 0.0
    stop: float = float("inf")

    def flow_ul_per_min(self, now: float) -> float:
        return self.rate if self.start <= now < self.stop else 0.0


@contextmanager
def serving(emulator: object, lock: object, kind: str = "tcp") -> Iterator[Any]:
    """Serve an emulator on TCP or a pty for the duration; yields the endpoint."""
    endpoint = (TcpEndpoint if kind == "tcp" else PtyEndpoint)("dev", emulator, lock)  # type: ignore[arg-type]
    endpoint.start()
    try:
        yield endpoint
    finally:
        endpoint.stop()


@contextmanager
def served(emulator: object, lock: object, kind: str = "tcp") -> Iterator[str]:
    """Serve an emulator on TCP or a pty for the duration; yields the URL to open."""
    with serving(emulator, lock, kind) as endpoint:
        yield endpoint.url
