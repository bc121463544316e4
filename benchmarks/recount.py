"""Batch re-count benchmark: frames per second re-counting N synthetic runs serially, on the local
process pool and on a local Dask cluster (distributed.LocalCluster).

Run: python -m benchmarks.recount [--runs 4] [--frames 50] [--size 1024] [--quick]

Each run is a real run folder written by chipctl's RunRecorder: a bench file, a protocol, the
event log, the counts table (counted when "recorded" with the bench's counter) and its frames as
OME-TIFF (benchmarks/synth.py frames, 0.2 vesicles per 100 px^2 at SNR 6). Every method runs the
whole `runs recount` path (read, count, write counts.csv, recount.json and the report) on its
own copy of the runs, so the figures compare schedulers, not caches. The reference figure is the
serial rate. Serially, OpenCV spreads each frame over the CPUs itself; on the pool and the
cluster each worker counts with one OpenCV thread and the frames side by side are the
parallelism, which is what scales past a few cores. Reports are written by one thread in the
main process while the next runs are counted.
"""

from __future__ import annotations

import argparse
import logging
import os
import shutil
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks import synth
from chipctl.config.bench import Bench, load_bench
from chipctl.protocol import load_protocol
from chipctl.protocol.model import Protocol
from chipctl.run.counting import CountedFrame
from chipctl.run.events import RunEvents
from chipctl.runs.folder import RunFolder
from chipctl.runs.recorder import RunRecorder
from chipctl.vision.factory import count_params, make_counter, params_record

BENCH = """\
name: recount benchmark bench
devices:
  camera: {driver: sim-camera, url: "socket://127.0.0.1:9", pixel_size_um: 0.65,
           psf_sigma_px: 1.3, e_per_adu: 0.46, offset_adu: 100, read_noise_e: 1.6}
chip:
  zones:
    CD63: {antibody: anti-CD63, center_um: [0, 0], size_um: [1000, 1000]}
    isotype: {antibody: isotype IgG, center_um: [2000, 0], size_um: [1000, 1000]}
"""
PROTOCOL = """\
name: Recount benchmark
steps:
  - image:
      zones: [CD63, isotype]
      fields: {fields}
      channels: [{{channel: AF555, exposure: 50 ms, power: 80 %}}]
"""


def _inputs(folder: Path, fields: int) -> tuple[Protocol, Bench]:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "bench.yaml").write_text(BENCH, encoding="utf-8")
    (folder / "protocol.yaml").write_text(PROTOCOL.format(fields=fields), encoding="utf-8")
    return load_protocol(folder / "protocol.yaml"), load_bench(folder / "bench.yaml")


def make_runs(root: Path, runs: int, frames: int, size: int = 256, seed: int = 0) -> list[Path]:
    """`runs` recorded runs of `frames` frames each (size x size), under `root`."""
    fields = max(1, frames // 2)
    protocol, bench = _inputs(root.parent / f"{root.name}-inputs", fields)
    params = count_params(bench.camera)
    counter = make_counter(params)
    rng = np.random.default_rng(seed)
    folders = []
    for _ in range(runs):
        events = RunEvents()
        recorder = RunRecorder(root, protocol, bench, {"sample": "benchmark"},
                               counting=params_record(params))
        recorder.attach(events)
        events.step_started.emit(0, 1, "image")
        for i in range(frames):
            zone = "CD63" if i % 2 == 0 else "isotype"
            n = int(size * size * 0.002) if zone == "CD63" else int(size * size * 0.0002)
            made = synth.make_frame(synth.SynthConfig(shape=(size, size), n_spots=n, snr=6.0),
                                    rng)
            meta = {"zone": zone, "field": i // 2, "channel": "AF555", "time": 0.5 * i,
                    "stage_x_um": 0.0, "stage_y_um": 0.0, "exposure_ms": 50.0,
                    "truth": {"count": n}}
            result = counter(made.image)
            row = {"t_s": 0.5 * i, "step": 0, "zone": zone, "field": i // 2,
                   "channel": "AF555", "count": result.count, "true_count": n,
                   "exposure_ms": 50.0, "power_pct": 80.0}
            events.frame.emit(CountedFrame(made.image, meta, result=result, row=row))
            events.counted.emit(row)
        events.step_finished.emit(0, "image")
        recorder.finish("completed", "all steps done")
        folders.append(recorder.folder)
    return folders


@dataclass
class Timing:
    """When the first and the last frame were counted, and when the batch ended (s)."""

    first: float = 0.0
    last: float = 0.0
    end: float = 0.0
    frames: int = 0

    def frame(self, start: float) -> None:
        """One more frame counted, now."""
        now = time.perf_counter() - start
        self.first, self.last, self.frames = self.first or now, now, self.frames + 1

    @property
    def rate(self) -> float:
        """Frames per second once counting runs (first frame to last)."""
        return (self.frames - 1) / max(self.last - self.first, 1e-9)


def _time(scheduler_factory: Callable[[], Any], runs: list[Path]) -> Timing:
    from chipctl.analysis.recount import recount

    folders = [RunFolder.open(path) for path in runs]
    timing = Timing()
    start = time.perf_counter()
    scheduler = scheduler_factory()
    try:
        recount(folders, scheduler, on_frame=lambda _: timing.frame(start))
        timing.end = time.perf_counter() - start
    finally:
        scheduler.close()
    return timing


def main() -> None:
    from chipctl.analysis.schedulers import (
        DaskScheduler,
        PoolScheduler,
        SerialScheduler,
        usable_cpus,
    )

    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=4)
    parser.add_argument("--frames", type=int, default=50, help="frames per run")
    parser.add_argument("--size", type=int, default=1024, help="frame side, px")
    parser.add_argument("--workers", type=int, default=usable_cpus())
    parser.add_argument("--quick", action="store_true", help="2 runs x 10 frames of 256 px")
    args = parser.parse_args()
    if args.quick:
        args.runs, args.frames, args.size = 2, 10, 256
    total = args.runs * args.frames
    with tempfile.TemporaryDirectory() as tmp:
        base = make_runs(Path(tmp) / "runs", args.runs, args.frames, args.size)
        load = ", ".join(f"{v:.1f}" for v in os.getloadavg()) if hasattr(os, "getloadavg") else "?"
        print(f"{args.runs} runs x {args.frames} frames of {args.size} x {args.size} px "
              f"= {total} frames; {args.workers} workers on {usable_cpus()} usable CPUs"
              f" (load average {load} before the runs)")

        from distributed import Client, LocalCluster

        cluster = LocalCluster(n_workers=args.workers, threads_per_worker=1, processes=True,
                               dashboard_address=None)
        client = Client(cluster)
        methods: dict[str, Callable[[], Any]] = {
            "serial": SerialScheduler,
            f"local pool ({args.workers} processes)": lambda: PoolScheduler(args.workers),
            f"Dask LocalCluster ({args.workers} workers)": lambda: DaskScheduler(client=client),
        }
        serial: float | None = None
        try:
            for number, (name, factory) in enumerate(methods.items()):
                copy = Path(tmp) / f"copy-{number}"
                shutil.copytree(Path(tmp) / "runs", copy)
                timing = _time(factory, [copy / path.name for path in base])
                serial = serial or timing.rate
                print(f"{name:<32} {timing.rate:6.1f} frames/s counting"
                      f" ({timing.rate / serial:.2f} x serial), first frame after"
                      f" {timing.first:.2f} s; whole command {timing.end:.2f} s ="
                      f" {total / timing.end:.1f} frames/s with counts.csv and reports")
        finally:
            logging.getLogger("distributed").setLevel(logging.CRITICAL)  # shutdown chatter
            client.close()
            cluster.close()


if __name__ == "__main__":
    main()
