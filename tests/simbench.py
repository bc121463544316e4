"""The simulated bench in-process for end-to-end tests: devices on real TCP sockets, asserted
through the simulator's JSON control channel (what an outside observer of the bench sees)."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import yaml

from chipctl.config.bench import load_bench
from chipctl.engine import Engine
from hardware_sim.bench import SimBench
from hardware_sim.control import request

# Tests image a 512 x 512 region of the sensor: 16x less to render, send and count, same physics.
TEST_ROI = [768, 768, 512, 512]
# ... and flow a sample diluted 1:100 (1e7 EVs/mL): a few thousand vesicles on the chip instead of
# hundreds of thousands keeps the simulated capture and labelling cheap at high speed factors.
TEST_SAMPLE_PER_ML = 1e7


@contextmanager
def simulated_bench(folder: Path, speed: float, seed: int = 1, roi: list[int] | None = TEST_ROI,
                    sample_per_ml: float = TEST_SAMPLE_PER_ML) -> Iterator[tuple[SimBench, Path]]:
    """A running simulated bench and the bench file that describes it."""
    bench = SimBench(speed=speed, seed=seed)
    reagents = bench.world.reagents
    reagents["sample"] = dataclasses.replace(reagents["sample"], vesicles_per_ml=sample_per_ml)
    bench.start()
    try:
        path = bench.write_bench_file(folder / "bench.yaml")
        if roi is not None:
            document = yaml.safe_load(path.read_text())
            document["devices"]["camera"]["roi"] = roi
            path.write_text(yaml.safe_dump(document, sort_keys=False))
        yield bench, path
    finally:
        bench.stop()


@contextmanager
def sim_engine(folder: Path, speed: float, seed: int = 1) -> Iterator[tuple[Engine, SimBench]]:
    """A connected Engine on a simulated bench; runs go to folder/runs."""
    with simulated_bench(folder, speed, seed) as (bench, path):
        engine = Engine(load_bench(path), runs_dir=folder / "runs")
        engine.connect()
        try:
            yield engine, bench
        finally:
            engine.close()


def status(bench: SimBench) -> dict[str, Any]:
    """Every device's state, from the control channel."""
    reply = request(bench.control.address, {"cmd": "status"}, token=bench.control.token)
    assert reply["ok"], reply
    return reply["devices"]  # type: ignore[no-any-return]


def fault(bench: SimBench, device: str, name: str, value: float = 1) -> None:
    """Inject a fault through the control channel (`value`: a count, seconds or a level)."""
    reply = request(bench.control.address,
                    {"cmd": "fault", "device": device, "fault": name, "value": value},
                    token=bench.control.token)
    assert reply["ok"], reply


def pumps_running(devices: dict[str, Any]) -> list[str]:
    """Names of simulated pumps that are moving."""
    return [name for name, snap in devices.items() if "infused_ul" in snap and snap["running"]]


def lights_on(devices: dict[str, Any]) -> list[Any]:
    """What the simulated illuminator emits."""
    return [emitting for snap in devices.values() for emitting in snap.get("emission", [])]
