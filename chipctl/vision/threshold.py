"""Per-frame choice of the local-SNR threshold from the null distribution of maxima."""

from __future__ import annotations

import numpy as np

from chipctl.vision.nullmodel import REFERENCE_PIXELS, NullMaxima

_STEP = 0.02
_Z_GAIN = 3.0  # significance (in Poisson sd) required to go below the safe threshold
_MODEL_ERROR = 0.25  # relative uncertainty allowed in the expected number of noise maxima


def safe_threshold(null: NullMaxima, n_pixels: int, blank_fp_per_frame: float) -> float:
    """Threshold with ``blank_fp_per_frame`` expected false maxima per 2048 x 2048 pixels."""
    return null.threshold_for(blank_fp_per_frame * n_pixels / REFERENCE_PIXELS, n_pixels)


def choose_threshold(
    scores: np.ndarray, null: NullMaxima, n_pixels: int, t_min: float, t_safe: float
) -> float:
    """The threshold that maximizes the expected F1, or ``t_safe`` unless that is significant.

    Expected false positives at t are the null count E(t); estimated true positives
    N(t) - E(t); the number of real spots is estimated by the largest such estimate.
    """
    if t_min >= t_safe:
        return t_safe
    grid = np.arange(t_min, t_safe + _STEP / 2, _STEP)
    observed = scores.size - np.searchsorted(np.sort(scores), grid, side="right")
    expected = null.expected(grid, n_pixels)
    true_pos = observed - expected
    n_real = max(float(true_pos.max()), 1.0)
    f1 = 2.0 * true_pos / (observed + n_real)
    best = int(np.argmax(f1))
    gain = true_pos[best] - true_pos[-1]
    needed = _Z_GAIN * np.sqrt(expected[best] + 1.0) + _MODEL_ERROR * expected[best]
    return float(grid[best]) if gain > needed else t_safe


_EDGES = np.array([0.0, 0.25, 0.5, 0.75, 1.0])  # bins above t_lo for the tail fit
_SCALES = np.arange(0.85, 1.30001, 0.0025)
_PRIOR_SD = 0.05


def fit_tail_scale(depths: np.ndarray, null: NullMaxima, n_pixels: int, t_lo: float) -> float:
    """Scale s such that the depths of local minima (negated scores) follow E(t / s).

    Noise is symmetric after the skew correction, so the minima show the tail of the noise
    maxima as this frame really has it (background-estimate noise, residual calibration
    error); spots cannot contaminate them. Poisson likelihood of binned counts with a weak
    prior at s = 1.
    """
    edges = t_lo + _EDGES
    observed = np.histogram(depths, bins=np.append(edges, np.inf))[0]
    tails = null.expected(np.outer(1.0 / _SCALES, edges).ravel(), n_pixels).reshape(
        len(_SCALES), len(edges))
    expected = np.maximum(tails - np.append(tails[:, 1:], np.zeros((len(_SCALES), 1)), axis=1),
                          1e-9)
    loglik = (observed * np.log(expected) - expected).sum(axis=1)
    loglik -= 0.5 * ((_SCALES - 1.0) / _PRIOR_SD) ** 2
    return float(_SCALES[int(np.argmax(loglik))])
