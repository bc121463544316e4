"""An in-memory rig for runner and executor tests: pumps that move on the run clock, a light, a
stage and a camera, each with fault switches. No sockets, so these tests are fast; the same
behaviours are tested again on the simulator over real sockets in test_run_control_sim.py."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from chipctl.config.bench import Bench, load_bench
from chipctl.devices.interfaces import Frame, Syringe
from chipctl.protocol import parse_protocol
from chipctl.run.clock import RunClock
from chipctl.run.control import RunControl
from chipctl.run.events import RunEvents
from chipctl.run.executor import Executor
from chipctl.run.runner import Runner
from drivers.errors import CameraTimeout, PumpStalled

BENCH = Path(__file__).parent / "data" / "bench_offline.yaml"


class FakePump:
    """A syringe pump on the run clock; `stall_after_ul` makes it stall with an alarm."""

    def __init__(self, name: str, clock: RunClock, volume_ul: float, contents_ul: float) -> None:
        self.name, self.clock = name, clock
        self.syringe = Syringe(4.699, volume_ul, contents_ul)
        self.lock = threading.Lock()
        self.rate = 0.0
        self.target = 0.0
        self.sign = 1
        self.t0: float | None = None
        self.moved = 0.0
        self.total_infused = 0.0
        self.stall_after_ul: float | None = None
        self.stalled = False
        self.commands: list[str] = []

    def connect(self) -> None: ...

    def close(self) -> None: ...

    def _limit(self) -> float:
        room = self.syringe.contents_ul if self.sign > 0 else (
            self.syringe.volume_ul - self.syringe.contents_ul)
        limit = min(self.target or float("inf"), room)
        if self.stall_after_ul is not None:
            limit = min(limit, self.stall_after_ul)
        return limit

    def _now_moved(self) -> float:
        if self.t0 is None:
            return self.moved
        return min(self.rate * (self.clock.now() - self.t0) / 60.0, self._limit())

    def _settle(self) -> None:
        if self.t0 is None:
            return
        self.moved = self._now_moved()
        self.syringe.contents_ul -= self.sign * self.moved
        if self.sign > 0:
            self.total_infused += self.moved
        if self.stall_after_ul is not None and self.moved >= self.stall_after_ul - 1e-9:
            self.stalled = True
        self.t0 = None

    def _start(self, sign: int, rate: float, volume: float | None) -> None:
        with self.lock:
            self._settle()
            self.commands.append(f"{'infuse' if sign > 0 else 'withdraw'} {rate:g} {volume}")
            self.sign, self.rate, self.target = sign, rate, volume or 0.0
            self.moved, self.t0 = 0.0, self.clock.now()

    def infuse(self, rate_ul_min: float, volume_ul: float | None = None) -> None:
        self._start(1, rate_ul_min, volume_ul)

    def withdraw(self, rate_ul_min: float, volume_ul: float | None = None) -> None:
        self._start(-1, rate_ul_min, volume_ul)

    def stop(self) -> None:
        with self.lock:
            self.commands.append("stop")
            self._settle()

    def is_running(self) -> bool:
        with self.lock:
            if self.t0 is None:
                self._raise_alarm()
                return False
            done = self._now_moved() >= self._limit() - 1e-9
            if done:
                self._settle()
                self._raise_alarm()
            return not done

    def _raise_alarm(self) -> None:
        if self.stalled:
            self.stalled = False
            raise PumpStalled(self.name, "motor stalled (alarm A?S)")

    def displaced_ul(self) -> float:
        with self.lock:
            return self.sign * self._now_moved()

    @property
    def running(self) -> bool:
        with self.lock:
            return self.t0 is not None and self._now_moved() < (self.target or float("inf"))


@dataclass
class FakeLight:
    name: str = "led"
    channels: tuple[str, ...] = ("AF488", "AF555", "AF647")
    on: dict[str, float] = field(default_factory=dict)

    def connect(self) -> None: ...

    def close(self) -> None: ...

    def light(self, channel: str, power_pct: float) -> None:
        self.on = {channel: power_pct}

    def dark(self) -> None:
        self.on = {}

    def state(self) -> dict[str, tuple[bool, float]]:
        return {c: (c in self.on, self.on.get(c, 0.0)) for c in self.channels}


@dataclass
class FakeStage:
    name: str = "stage"
    xy: tuple[float, float] = (0.0, 0.0)
    z: float = 0.0
    visits: list[tuple[float, float]] = field(default_factory=list)

    def connect(self) -> None: ...

    def close(self) -> None: ...

    def move_to(self, x_um: float, y_um: float) -> None:
        self.xy = (x_um, y_um)
        self.visits.append(self.xy)

    def position(self) -> tuple[float, float]:
        return self.xy

    def focus_to(self, z_um: float) -> None:
        self.z = z_um

    def focus(self) -> float:
        return self.z

    def wait_idle(self, timeout_s: float = 30.0) -> None: ...

    def halt(self) -> None: ...


class FakeCamera:
    """Frames whose 'count' grows with the sample infused so far (the counter reads it)."""

    def __init__(self, light: FakeLight, source: FakePump | None = None) -> None:
        self.name, self.pixel_size_um, self.exposure_ms = "camera", 0.65, 50.0
        self.light, self.source = light, source
        self.timeout = False
        self.lit_snaps: list[str] = []
        self.saturation = float("inf")

    def connect(self) -> None: ...

    def close(self) -> None: ...

    def snap(self, timeout_s: float = 5.0) -> Frame:
        if self.timeout:
            raise CameraTimeout(self.name, f"no frame within {timeout_s:g} s")
        self.lit_snaps.extend(self.light.on)
        infused = 0.0
        if self.source is not None:
            moving = self.source.t0 is not None
            infused = self.source.total_infused + (self.source.displaced_ul() if moving else 0.0)
        count = int(min(self.saturation, 10 * infused))
        return Frame(np.full((4, 4), count, np.uint16), {})


@dataclass
class Count:
    count: int


class FakeRig:
    """Quacks like chipctl.devices.rig.Rig for the executor and runner."""

    def __init__(self, bench: Bench, clock: RunClock) -> None:
        self.bench = bench
        self.transports: dict[str, Any] = {}
        pumps = {"buffer_pump": (5000.0, 5000.0), "sample_pump": (1000.0, 1000.0),
                 "stain_pump": (1000.0, 500.0)}
        self.pumps = {n: FakePump(n, clock, v, c) for n, (v, c) in pumps.items()}
        self.light = FakeLight()
        self.stage = FakeStage()
        self.camera = FakeCamera(self.light, self.pumps["sample_pump"])
        self.illuminators = {"led": self.light}
        self.devices: dict[str, Any] = {**self.pumps, "led": self.light, "stage": self.stage,
                                        "camera": self.camera}
        self.safe_state_calls = 0

    def first(self, kind: str) -> Any:
        return {"stage": self.stage, "camera": self.camera, "illuminator": self.light}[kind]

    def safe_state(self) -> list[str]:
        self.safe_state_calls += 1
        for pump in self.pumps.values():
            pump.stop()
        self.light.dark()
        return []


def make_runner(yaml_text: str, time_scale: float = 2000.0,
                parameters: dict[str, str] | None = None) -> tuple[Runner, FakeRig, list[dict]]:
    """A runner over a fake rig; returns it, the rig and the list the event records go to."""
    bench = load_bench(BENCH)
    clock = RunClock(time_scale)
    rig = FakeRig(bench, clock)
    events = RunEvents()
    records: list[dict] = []
    events.record.connect(records.append)
    control = RunControl(clock)
    executor = Executor(rig, control, events,  # type: ignore[arg-type]
                        counter=lambda image: Count(int(image[0, 0])), parameters=parameters)
    protocol = parse_protocol(yaml_text, "test.yaml")
    return Runner(protocol, executor, events), rig, records
