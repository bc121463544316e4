"""Crowded frames: count_frame, the pair fit and the spots.csv rows, old beside new.

Run from the repository root:

    python -m benchmarks.bench_crowded                      # 10,000 and 30,000 spots, SNR 4
    python -m benchmarks.bench_crowded --frame F.ome.tif    # and a recorded frame (its run's
                                                            # PSF sigma: --psf-sigma 1.453)

"old" is the implementation of main edf5514 kept in ``benchmarks/reference_crowded.py``: the
pair fit with (K, 7, P) float64 Jacobians, and one dict per spot through csv.DictWriter.
Everything else count_frame does is the same code, so "old count_frame" is count_frame with
the old pair fit put in its place for the measurement. Each line says whether old and new
gave the same spots (and the same bytes). Times are CPU (thread) and wall ms, min / median
of the repeats, one thread.
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import argparse  # noqa: E402
import io  # noqa: E402
import time  # noqa: E402
from collections.abc import Callable, Iterator  # noqa: E402
from contextlib import contextmanager  # noqa: E402
from dataclasses import replace  # noqa: E402
from typing import Any  # noqa: E402

import cv2  # noqa: E402
import numpy as np  # noqa: E402

from benchmarks import reference_crowded as reference  # noqa: E402
from benchmarks.synth import SynthConfig, make_frame  # noqa: E402
from chipctl.runs.detections import spot_text  # noqa: E402
from chipctl.runs.frames import read_frame  # noqa: E402
from chipctl.vision import (  # noqa: E402
    CameraCalibration,
    CountParams,
    CountResult,
    count_frame,
    split,
)

DENSITIES = (10000, 30000)  # spots per 2048 x 2048 at SNR 4 (the density sweep's crowded end)
BASE = SynthConfig()  # 2048 x 2048, PSF sigma 1.3 px, the sCMOS camera of benchmarks/synth.py
CAL = CameraCalibration(100.0, 0.46, 1.6)  # that camera, as bench_counting tells chipctl
ENTRY = {"seq": 13, "file": "frames/00013-CD63-f1-AF555.ome.tif", "step": 9, "zone": "CD63",
         "field": 1, "channel": "AF555"}


def timed(fn: Callable[[], Any]) -> tuple[Any, float, float]:
    """The result of one call and its CPU and wall milliseconds."""
    t, c = time.perf_counter(), time.thread_time()
    out = fn()
    return out, (time.thread_time() - c) * 1e3, (time.perf_counter() - t) * 1e3


def old_and_new(old: Callable[[], Any], new: Callable[[], Any], repeats: int
                ) -> tuple[Any, Any, dict[str, list[float]]]:
    """Both results and their CPU and wall ms: one call of each to warm up, then
    ``repeats`` turns, old and new taking turns so that load slows both alike."""
    ms: dict[str, list[float]] = {"old cpu": [], "old wall": [], "new cpu": [], "new wall": []}
    a, b = old(), new()
    for _ in range(repeats):
        for name, fn in (("old", old), ("new", new)):
            out, cpu, wall = timed(fn)
            ms[f"{name} cpu"].append(cpu)
            ms[f"{name} wall"].append(wall)
            a, b = (out, b) if name == "old" else (a, out)
    return a, b, ms


def print_times(what: str, ms: dict[str, list[float]]) -> None:
    """Old and new, min / median CPU and wall ms, and the ratio of the CPU minima."""
    for name in ("old", "new"):
        cpu, wall = ms[f"{name} cpu"], ms[f"{name} wall"]
        ratio = (f"   {min(ms['old cpu']) / min(cpu):.1f}x faster (CPU min)"
                 if name == "new" else "")
        print(f"  {what if name == 'old' else '':<15}{name} {min(cpu):7.0f} / "
              f"{np.median(cpu):6.0f} CPU, {min(wall):6.0f} / {np.median(wall):6.0f} wall"
              + ratio)


@contextmanager
def old_pair_fit() -> Iterator[None]:
    """count_frame with the reference pair fit in place of split.fit_pairs."""
    new = split.fit_pairs
    split.fit_pairs = reference.fit_pairs
    try:
        yield
    finally:
        split.fit_pairs = new


@contextmanager
def captured_pair_fit(into: list[tuple[Any, ...]]) -> Iterator[None]:
    """Record the arguments count_frame gives the pair fit."""
    new = split.fit_pairs

    def record(raw: np.ndarray, ys: np.ndarray, xs: np.ndarray, single: np.ndarray,
               others: np.ndarray, noise: Any, sigma: float) -> split.Pair:
        into.append((raw, ys, xs, single, others, noise, sigma))
        return new(raw, ys, xs, single, others, noise, sigma)

    split.fit_pairs = record
    try:
        yield
    finally:
        split.fit_pairs = new


def same_spots(a: CountResult, b: CountResult) -> bool:
    """The same spots within float tolerance (every column, NaN where NaN)."""
    return a.count == b.count and all(
        np.allclose(a.spots[k], b.spots[k], rtol=1e-9, atol=1e-9, equal_nan=True)
        for k in a.spots.dtype.names or ())


def bench_frame(label: str, image: np.ndarray, params: CountParams, repeats: int) -> None:
    """Print old and new count_frame, pair fit and spots.csv times of one frame."""

    def count_old() -> CountResult:
        with old_pair_fit():
            return count_frame(image, params)

    old, new, ms = old_and_new(count_old, lambda: count_frame(image, params), repeats)
    print(f"\n{label}: {new.count} spots ({new.split} split), same spots old and new: "
          f"{'yes' if same_spots(new, old) else 'NO'}")
    print_times("count_frame", ms)
    calls: list[tuple[Any, ...]] = []
    with captured_pair_fit(calls):
        count_frame(image, params)
    if calls:
        args = calls[0]
        pair_old, pair_new, ms = old_and_new(lambda: reference.fit_pairs(*args),
                                             lambda: split.fit_pairs(*args), repeats)
        ys, xs, sigma = args[1], args[2], args[6]
        won = split.accepted(pair_new, ys, xs, sigma)
        agree = np.array_equal(won, split.accepted(pair_old, ys, xs, sigma))
        worst = max(float(np.max(np.abs(getattr(pair_new, k) - getattr(pair_old, k))))
                    for k in ("x", "y", "lr"))
        print(f"  pair fit of {len(ys)} candidates ({int(won.sum())} kept; same kept: "
              f"{'yes' if agree else 'NO'}; largest x, y, lr difference {worst:.1e})")
        print_times("pair fit", ms)

    def rows_old() -> str:
        handle = io.StringIO(newline="")
        reference.write_spot_rows(handle, ENTRY, new)
        return handle.getvalue()

    text_old, text, ms = old_and_new(rows_old, lambda: spot_text(ENTRY, new), repeats)
    print(f"  spots.csv rows ({len(text) / 1e6:.1f} MB; same bytes: "
          f"{'yes' if text_old == text else 'NO'})")
    print_times("spots.csv", ms)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--frame", action="append", default=[], help="a recorded frame to add")
    ap.add_argument("--psf-sigma", type=float, default=1.453,
                    help="PSF sigma (px) for --frame (the panel run's AF555: 1.453)")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args(argv)
    cv2.setNumThreads(1)
    rng = np.random.default_rng(a.seed)
    print("crowded frames, one thread; times in ms, min / median of "
          f"{a.repeats}; load average " + ", ".join(f"{v:.2f}" for v in os.getloadavg())
          + f" on {os.cpu_count()} CPUs")
    for n in DENSITIES:
        frame = make_frame(replace(BASE, snr=4.0, n_spots=n), rng)
        bench_frame(f"{n:,} spots per 2048 x 2048, SNR 4 (benchmarks/synth.py)", frame.image,
                    CountParams(calibration=CAL), a.repeats)
    for path in a.frame:
        image, _ = read_frame(path)
        bench_frame(f"{path} (PSF sigma {a.psf_sigma} px)", image,
                    CountParams(psf_sigma_px=a.psf_sigma), a.repeats)
    print("\nload average at the end: " + ", ".join(f"{v:.2f}" for v in os.getloadavg()))


if __name__ == "__main__":
    main()
