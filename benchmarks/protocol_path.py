"""Several exposures counted through the protocol path: a protocol file with ``image:
{frames: K}`` run by chipctl's Engine (loader, runner, executor, the run's counting pipeline,
the run store) on a bench whose camera serves the benchmark's frames of one drifting field,
so the count can be scored against the frames' truth."""

from __future__ import annotations

import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from chipctl.config.bench import Bench
from chipctl.devices.interfaces import Frame
from chipctl.devices.rig import Rig
from chipctl.engine import Engine
from chipctl.protocol import parse_protocol
from chipctl.run.clock import RunClock
from chipctl.run.counting import CountedFrame
from chipctl.run.events import RunEvents, RunState
from chipctl.vision import CameraCalibration, CountResult

PROTOCOL = """
name: bench_counting exposures
steps:
  - image: {{zones: [field], frames: {k}, channels: [{{channel: AF555, exposure: 50 ms}}]}}
"""


class _Light:
    def __init__(self, name: str) -> None:
        self.name, self.channels = name, ("AF555",)

    def connect(self) -> None: ...

    def close(self) -> None: ...

    def light(self, channel: str, power_pct: float) -> None: ...

    def dark(self) -> None: ...


class _Stage:
    def __init__(self, name: str) -> None:
        self.name, self.xy, self.z = name, (0.0, 0.0), 0.0

    def connect(self) -> None: ...

    def close(self) -> None: ...

    def move_to(self, x_um: float, y_um: float) -> None:
        self.xy = (x_um, y_um)

    def position(self) -> tuple[float, float]:
        return self.xy

    def focus_to(self, z_um: float) -> None:
        self.z = z_um

    def focus(self) -> float:
        return self.z

    def wait_idle(self, timeout_s: float = 30.0) -> None: ...

    def halt(self) -> None: ...


class _Camera:
    """Serves the given exposures of one field, one per snap."""

    def __init__(self, name: str, frames: Sequence[np.ndarray]) -> None:
        self.name, self.frames, self.exposure_ms, self.taken = name, list(frames), 50.0, 0

    def connect(self) -> None: ...

    def close(self) -> None: ...

    def snap(self, timeout_s: float = 5.0) -> Frame:
        image = self.frames[self.taken % len(self.frames)]
        self.taken += 1
        return Frame(image, {"exposure_ms": self.exposure_ms})


def _bench(cal: CameraCalibration) -> Bench:
    return Bench.model_validate({
        "name": "bench_counting", "time_scale": 1000,
        "devices": {
            "led": {"driver": "coolled", "url": "fake://1", "channels": {"AF555": "B"}},
            "stage": {"driver": "prior", "url": "fake://2"},
            "camera": {"driver": "sim-camera", "url": "fake://3", "pixel_size_um": 0.65,
                       "psf_sigma_px": 1.3, "e_per_adu": cal.e_per_adu,
                       "offset_adu": cal.offset_adu, "read_noise_e": cal.read_noise_e},
        },
        "chip": {"zones": {"field": {"antibody": "anti-CD63", "center_um": [0, 0]}}},
    })


def count_through_protocol(frames: Sequence[np.ndarray], cal: CameraCalibration
                           ) -> CountResult:
    """Run ``image: {frames: len(frames)}`` on one field whose camera serves ``frames``; the
    count the run published."""
    bench = _bench(cal)
    devices: dict[str, Any] = {"led": _Light("led"), "stage": _Stage("stage"),
                               "camera": _Camera("camera", frames)}
    with tempfile.TemporaryDirectory() as runs:
        engine = Engine(bench, Rig(bench, devices), clock=RunClock(bench.time_scale),
                        runs_dir=Path(runs), keep_frames="none")
        events = RunEvents()
        counted: list[CountedFrame] = []
        events.frame.connect(lambda f: counted.append(f) if f.result is not None else None)
        runner = engine.start_run(parse_protocol(PROTOCOL.format(k=len(frames)), "k.yaml"),
                                  {}, events)
        if runner.wait(120) != RunState.COMPLETED:
            raise RuntimeError(f"the protocol run did not complete: {runner.reason}")
        engine.close()
    if len(counted) != 1 or counted[0].result is None:
        raise RuntimeError(f"expected one counted field, got {len(counted)}")
    return counted[0].result
