"""The tests' in-memory bench: devices that follow chipctl.devices.interfaces on the run clock,
with fault switches, put in a real Rig (and a real Engine) by injection. No sockets, so these
tests are fast; the same behaviours are tested again on the simulator over real sockets.

- FakePump: pumps on the run clock, keeps its syringe's account; `stall_after_ul` makes it
  stall with an alarm, `fault` raises once on the next poll.
- FakeLight, FakeStage: a light and a stage that remember what they were told.
- SampleCamera: frames whose pixels hold the number of vesicles the sample has brought so far
  (10 per uL infused), read by `pixel_counter`; SpotsCamera: real spot images for the real
  counter, more spots the more frames it took.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from chipctl.config.bench import Bench, load_bench
from chipctl.devices.interfaces import Frame, Syringe
from chipctl.devices.rig import Rig
from chipctl.engine import Engine
from chipctl.protocol import parse_protocol
from chipctl.run.clock import RunClock
from chipctl.run.control import RunControl
from chipctl.run.counting import FrameCounting
from chipctl.run.events import RunEvents
from chipctl.run.executor import Executor
from chipctl.run.runner import Runner
from chipctl.vision.factory import make_pipeline
from chipctl.vision.model import CountParams, CountResult
from drivers.errors import CameraTimeout, PumpStalled

OFFLINE_BENCH = Path(__file__).parent / "data" / "bench_offline.yaml"


class FakePump:
    """A syringe pump on the run clock; `stall_after_ul` makes it stall with an alarm."""

    def __init__(self, name: str, clock: RunClock, syringe: Syringe) -> None:
        self.name, self.clock, self.syringe = name, clock, syringe
        self.lock = threading.Lock()
        self.rate = 0.0
        self.target = 0.0
        self.sign = 1
        self.t0: float | None = None
        self.moved = 0.0
        self.total_infused = 0.0
        self.stall_after_ul: float | None = None
        self.stalled = False
        self.fault: Exception | None = None
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
            if self.fault is not None:
                fault, self.fault = self.fault, None
                raise fault
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


class SampleCamera:
    """Frames whose pixels hold the vesicles the sample pump has brought (10 per uL)."""

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


def pixel_counter(image: np.ndarray, params: CountParams) -> CountResult:
    """The count a SampleCamera frame holds (its pixel value), as that many spots."""
    return CountResult.from_xy(np.zeros((int(image[0, 0]), 2)), shape=image.shape)


def spots_image(n: int, size: int = 256, seed: int = 0) -> np.ndarray:
    """A uint16 frame with `n` bright Gaussian spots on a noisy background."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size, 0:size]
    image = 100 + rng.normal(0, 3, (size, size))
    for x, y in rng.uniform(10, size - 10, (n, 2)):
        image += 400 * np.exp(-((xx - x) ** 2 + (yy - y) ** 2) / (2 * 1.3**2))
    return image.clip(0, 65535).astype(np.uint16)


class SpotsCamera:
    """A camera whose frames hold more spots the more frames it took."""

    def __init__(self, name: str, pixel_size_um: float) -> None:
        self.name, self.pixel_size_um, self.exposure_ms = name, pixel_size_um, 10.0
        self.snaps = 0
        self.lock = threading.Lock()

    def connect(self) -> None: ...

    def close(self) -> None: ...

    def snap(self, timeout_s: float = 5.0) -> Frame:
        with self.lock:
            self.snaps += 1
            n = self.snaps
        return Frame(spots_image(min(5 * n, 200), seed=n), {"exposure_ms": self.exposure_ms})


def fake_devices(bench: Bench, clock: RunClock, spots: bool = False) -> dict[str, Any]:
    """A fake for every device of a bench: pumps holding its syringes, lights, stages, and
    cameras: a SampleCamera watching the sample pump, or with `spots` a SpotsCamera."""
    devices: dict[str, Any] = {}
    for name, spec in bench.pumps.items():
        syringe = Syringe(spec.syringe.inner_diameter_mm, spec.syringe.volume_ul,
                          spec.syringe.contents_ul, spec.reagent)
        devices[name] = FakePump(name, clock, syringe)
    for name, light in bench.of_kind("illuminator").items():
        devices[name] = FakeLight(name, tuple(getattr(light, "channels", ())))
    for name in bench.of_kind("stage"):
        devices[name] = FakeStage(name)
    lights = [devices[name] for name in bench.of_kind("illuminator")]
    for name in bench.of_kind("camera"):
        devices[name] = (SpotsCamera(name, 0.65) if spots or not lights
                         else SampleCamera(lights[0], devices.get("sample_pump")))
    return devices


class FakeRig(Rig):
    """A real Rig holding fakes (or the `devices` given); the runner tests' light, stage and
    camera by name."""

    def __init__(self, bench: Bench, clock: RunClock, spots: bool = False,
                 devices: dict[str, Any] | None = None) -> None:
        super().__init__(bench, {**fake_devices(bench, clock, spots), **(devices or {})})
        self.light: FakeLight = self.first("illuminator")
        self.stage: FakeStage = self.first("stage")
        self.camera: Any = self.first("camera")


def make_runner(yaml_text: str, time_scale: float = 2000.0,
                parameters: dict[str, str] | None = None, bench: Bench | None = None,
                devices: dict[str, Any] | None = None) -> tuple[Runner, FakeRig, list[dict]]:
    """A runner over a fake rig (on the offline bench unless another is given; `devices`
    replace fakes by name); returns it, the rig and the event records."""
    bench = bench or load_bench(OFFLINE_BENCH)
    clock = RunClock(time_scale)
    rig = FakeRig(bench, clock, devices=devices)
    events = RunEvents()
    records: list[dict] = []
    events.record.connect(records.append)
    control = RunControl(clock)
    counting = FrameCounting(make_pipeline(CountParams(), counter=pixel_counter), events)
    executor = Executor(rig, control, events, counting, parameters=parameters)
    protocol = parse_protocol(yaml_text, "test.yaml")
    return Runner(protocol, executor, control, events), rig, records


GUI_BENCH = {
    "name": "fake bench", "time_scale": 200,
    "devices": {
        "buffer_pump": {"driver": "newera", "url": "fake://0", "reagent": "buffer",
                        "syringe": {"inner_diameter": "12.45 mm", "volume": "5000 uL"}},
        "sample_pump": {"driver": "newera", "url": "fake://0", "reagent": "sample",
                        "syringe": {"inner_diameter": "4.699 mm", "volume": "1000 uL"}},
        "led": {"driver": "coolled", "url": "fake://1",
                "channels": {"AF488": "A", "AF555": "B", "AF647": "C"}},
        "stage": {"driver": "prior", "url": "fake://2"},
        "camera": {"driver": "sim-camera", "url": "fake://3", "pixel_size_um": 0.65,
                   "roi": [0, 0, 256, 256]},  # the fake frames: 256 px, a 166 um field
    },
    "chip": {"zones": {"CD63": {"antibody": "anti-CD63", "center_um": [5000, 0]},
                       "isotype": {"antibody": "isotype IgG", "center_um": [8000, 0]}}},
}


def fake_engine(runs_dir: Path, bench: dict[str, Any] | None = None,
                spots: bool = True) -> Engine:
    """chipctl's Engine over fakes (spot images for the real counter; without `spots`, a
    SampleCamera that notes the light of each snap): the real runner, executor, counter and
    run store, no drivers."""
    spec = Bench.model_validate(bench or GUI_BENCH)
    clock = RunClock(spec.time_scale)
    # every fake bench names the same ports: each test's engine locks them in its own folder
    return Engine(spec, FakeRig(spec, clock, spots=spots), clock=clock, runs_dir=runs_dir,
                  keep_frames="none", lock_dir=runs_dir.parent / "bench-locks")
