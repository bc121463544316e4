"""Small in-memory devices and an engine over them, for GUI tests that need no simulator.

The devices follow chipctl.devices.interfaces' protocols on a RunClock; the engine is chipctl's
own Engine with a rig built from these fakes (so runs use the real runner, executor and run store).
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import numpy as np
from fakerig import FakeLight, FakeStage

from chipctl.config.bench import Bench, DeviceSpec
from chipctl.devices.interfaces import Frame, Syringe
from chipctl.devices.rig import Rig
from chipctl.engine import Engine
from chipctl.run.clock import RunClock

BENCH = {
    "name": "fake bench", "time_scale": 200,
    "devices": {
        "buffer_pump": {"driver": "newera", "url": "fake://0", "reagent": "buffer",
                        "syringe": {"inner_diameter": "12.45 mm", "volume": "5000 uL"}},
        "sample_pump": {"driver": "newera", "url": "fake://0", "reagent": "sample",
                        "syringe": {"inner_diameter": "4.699 mm", "volume": "1000 uL"}},
        "led": {"driver": "coolled", "url": "fake://1",
                "channels": {"AF488": "A", "AF555": "B", "AF647": "C"}},
        "stage": {"driver": "prior", "url": "fake://2"},
        "camera": {"driver": "sim-camera", "url": "fake://3", "pixel_size_um": 0.65},
    },
    "chip": {"zones": {"CD63": {"antibody": "anti-CD63", "center_um": [5000, 0]},
                       "isotype": {"antibody": "isotype IgG", "center_um": [8000, 0]}}},
}


class FakePump:
    """A pump that runs for volume / rate of protocol time."""

    def __init__(self, name: str, syringe: Syringe, clock: RunClock) -> None:
        self.name, self.syringe, self.clock = name, syringe, clock
        self.rate = 0.0
        self.target: float | None = None
        self.started: float | None = None
        self.moved = 0.0
        self.stops = 0
        self.fault: Exception | None = None

    def connect(self) -> None: ...

    def close(self) -> None: ...

    def infuse(self, rate_ul_min: float, volume_ul: float | None = None) -> None:
        self.rate, self.target, self.moved = rate_ul_min, volume_ul, 0.0
        self.started = self.clock.now()

    withdraw = infuse

    def _so_far(self) -> float:
        if self.started is None:
            return self.moved
        moved = self.rate * (self.clock.now() - self.started) / 60
        return min(moved, self.target) if self.target is not None else moved

    def stop(self) -> None:
        self.stops += 1
        self.moved, self.started = self._so_far(), None

    def is_running(self) -> bool:
        if self.fault is not None:
            fault, self.fault = self.fault, None
            raise fault
        if self.started is not None and self.target is not None and self._so_far() >= self.target:
            self.stop()
        return self.started is not None

    def displaced_ul(self) -> float:
        return self._so_far()


def spots_image(n: int, size: int = 256, seed: int = 0) -> np.ndarray:
    """A uint16 frame with `n` bright Gaussian spots on a noisy background."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size, 0:size]
    image = 100 + rng.normal(0, 3, (size, size))
    for x, y in rng.uniform(10, size - 10, (n, 2)):
        image += 400 * np.exp(-((xx - x) ** 2 + (yy - y) ** 2) / (2 * 1.3**2))
    return image.clip(0, 65535).astype(np.uint16)


class FakeCamera:
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


class FakeRig(Rig):
    """chipctl's Rig with fake devices instead of drivers."""

    def _build(self, name: str, spec: DeviceSpec) -> Any:
        clock = RunClock(self.bench.time_scale)
        if spec.kind == "pump":
            return FakePump(name, Syringe(4.7, 1000.0, 1000.0, spec.settings["reagent"]), clock)
        if spec.kind == "illuminator":
            return FakeLight(name, tuple(spec.settings["channels"]))
        if spec.kind == "stage":
            return FakeStage(name)
        return FakeCamera(name, float(spec.settings["pixel_size_um"]))


class FakeEngine(Engine):
    """chipctl's Engine over a FakeRig."""

    def __init__(self, runs_dir: Path, bench: dict[str, Any] | None = None) -> None:
        super().__init__(Bench.model_validate(bench or BENCH), runs_dir, keep_frames="none")
        self.rig = FakeRig(self.bench)  # the drivers built above are never connected
