"""Render benchmark: ms per 2048 x 2048 uint16 frame with ~2000 labelled vesicles in view.

Run: python benchmarks/bench_render.py [--frames N]
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np

from hardware_sim.chip import Zone, default_chip
from hardware_sim.optics import Renderer, View


def populated_chip(n: int = 2000, seed: int = 1):
    """A chip whose CD9 zone carries `n` AF488-labelled vesicles (plus its debris)."""
    chip = default_chip(seed=seed)
    zone: Zone = chip.zones[0]
    rng = np.random.default_rng(seed)
    x0, y0, _, _ = zone.bounds
    sites = rng.integers(1, 30, (n, 3))
    chip.vesicles.append(
        x=x0 + zone.width_um * rng.random(n),
        y=y0 + zone.height_um * rng.random(n),
        t=np.zeros(n),
        zone=np.zeros(n, np.int16),
        positive=np.ones((n, 3), bool),
        sites=sites,
        dyes=sites * 4,
        labelled=np.ones((n, 3), bool),
    )
    return chip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--frames", type=int, default=30)
    args = parser.parse_args()
    chip = populated_chip()
    renderer = Renderer(seed=2)
    view = View(0.0, 0.0, 0.0, [("AF488", 0.5)], exposure_s=0.05)
    image, truth = renderer.render(chip, view)  # warm-up
    times = []
    for _ in range(args.frames):
        start = time.perf_counter()
        image, truth = renderer.render(chip, view)
        times.append((time.perf_counter() - start) * 1e3)
    print(
        f"render {image.shape[1]}x{image.shape[0]} {image.dtype}, {truth['count']} vesicles "
        f"+ {len(truth['debris_xy'])} debris in view: median {statistics.median(times):.1f} "
        f"ms/frame (min {min(times):.1f}, max {max(times):.1f}) over {args.frames} frames"
        f" (reference: 50 ms, the frame interval at 20 fps)"
    )


if __name__ == "__main__":
    main()
