"""The one focus metric (autofocus and the report's image QC): sharp spots score higher than
the same spots defocused, and far higher than noise alone."""

from __future__ import annotations

import numpy as np

from chipctl.vision.focus import focus_metric


def spots(sigma_px: float, n: int = 60, size: int = 256, seed: int = 1) -> np.ndarray:
    """`n` spots of 2000 photons with a Gaussian PSF of `sigma_px`, on 100, shot noise."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size, 0:size]
    image = np.full((size, size), 100.0)
    for x, y in np.random.default_rng(99).uniform(10, size - 10, (n, 2)):
        image += 2000 / (2 * np.pi * sigma_px**2) * np.exp(
            -((xx - x) ** 2 + (yy - y) ** 2) / (2 * sigma_px**2))
    return rng.poisson(image).astype(np.uint16)


def test_in_focus_spots_score_above_defocused_ones_and_noise() -> None:
    sharp, defocused, blank = spots(1.3), spots(3.0), spots(1.3, n=0)
    assert focus_metric(sharp) > 2 * focus_metric(defocused)
    assert focus_metric(defocused) > 2 * focus_metric(blank)


def test_the_metric_does_not_depend_on_the_noise_draw() -> None:
    values = [focus_metric(spots(1.3, seed=seed)) for seed in range(5)]
    assert max(values) - min(values) < 0.05 * np.mean(values)
