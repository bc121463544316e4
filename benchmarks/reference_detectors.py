"""The reference detectors of the counting benchmark: trackpy.locate and skimage blob_log,
each with its threshold tuned on a separate frame, and the chipctl counter as a detector.

A detector maps a uint16 frame to an N x 2 array of (x, y) positions.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from benchmarks.metrics import score
from benchmarks.synth import SynthFrame
from chipctl.vision import CountParams, count_frame

Detector = Callable[[np.ndarray], np.ndarray]


def chipctl_detector(params: CountParams) -> Detector:
    """The counter with ``params`` (never tuned)."""
    return lambda img: count_frame(img, params).xy


def trackpy_detector(diameter: int, minmass: float) -> Detector:
    """trackpy.locate with ``diameter`` and ``minmass``."""
    import trackpy as tp

    def run(img: np.ndarray) -> np.ndarray:
        f = tp.locate(img, diameter, minmass=minmass)
        return f[["x", "y"]].to_numpy(float)

    return run


def tune_trackpy(frame: SynthFrame, diameter: int) -> float:
    """minmass maximizing F1 on the tuning frame (exact sweep over a permissive run)."""
    import trackpy as tp

    f = tp.locate(frame.image, diameter, minmass=0)
    mass, xy = f["mass"].to_numpy(), f[["x", "y"]].to_numpy(float)
    grid = np.unique(np.quantile(mass, np.linspace(0.0, 0.999, 400)))
    f1 = [score(frame.xy, xy[mass > m]).f1 for m in grid]
    return float(grid[int(np.argmax(f1))])


def blob_log_detector(threshold: float, offset: float) -> Detector:
    """skimage.feature.blob_log, sigma 1-2 in 3 scales, absolute ``threshold`` in ADU above
    ``offset``."""
    from skimage.feature import blob_log

    def run(img: np.ndarray) -> np.ndarray:
        b = blob_log(img.astype(np.float32) - offset, min_sigma=1.0, max_sigma=2.0,
                     num_sigma=3, threshold=threshold)
        return b[:, [1, 0]].astype(float)

    return run


def tune_blob_log(frame: SynthFrame, offset: float) -> float:
    """Absolute LoG threshold maximizing F1 on a 1024 x 1024 crop (coarse-to-fine grid)."""
    n = min(1024, frame.image.shape[0])
    crop = frame.image[:n, :n]
    inside = (frame.xy < n - 0.5).all(axis=1)
    truth = frame.xy[inside]

    def f1(t: float) -> float:
        return score(truth, blob_log_detector(t, offset)(crop)).f1

    grid = np.geomspace(0.5, 40.0, 9)
    best = max(grid, key=f1)
    fine = best * np.geomspace(0.7, 1.4, 5)
    return float(max(fine, key=f1))
