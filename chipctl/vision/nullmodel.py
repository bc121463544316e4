"""Null distribution of local-maximum heights of the normalised matched-filter field.

Under noise alone the matched-filter output, divided by its standard deviation, is a
stationary Gaussian field whose correlation is the kernel's autocorrelation. The density of
its 8-neighbour local maxima above height ``t`` is computed exactly (up to Monte Carlo error
in a conditional probability that is never small): a pixel of height u is a maximum when all
8 neighbours, which are conditionally Gaussian given u, lie below u.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from chipctl.vision.kernels import matched_kernel

_OFFSETS = [(-1, -1), (-1, 0), (-1, 1), (0, -1), (0, 1), (1, -1), (1, 0), (1, 1)]
_GRID = np.arange(0.0, 12.0 + 1e-9, 0.02)
REFERENCE_PIXELS = 2048 * 2048


@dataclass(frozen=True)
class NullMaxima:
    """Expected number of noise maxima above a normalised height, per pixel."""

    grid: np.ndarray
    tail_per_pixel: np.ndarray  # expected maxima per pixel with height > grid

    def expected(self, t: np.ndarray | float, n_pixels: int) -> np.ndarray:
        """Expected number of noise maxima above ``t`` in a frame of ``n_pixels``."""
        logs = np.interp(t, self.grid, np.log(self.tail_per_pixel + 1e-300))
        return np.exp(logs) * n_pixels

    def threshold_for(self, false_positives: float, n_pixels: int) -> float:
        """Smallest height whose expected number of noise maxima is ``false_positives``."""
        target = np.log(max(false_positives, 1e-12) / n_pixels)
        logs = np.log(self.tail_per_pixel + 1e-300)
        return float(np.interp(-target, -logs, self.grid))


@lru_cache(maxsize=16)
def null_maxima(psf_sigma: float, samples: int = 40000, seed: int = 12345) -> NullMaxima:
    """The null model for the matched filter of ``psf_sigma`` (cached; ~0.1 s)."""
    k2 = matched_kernel(psf_sigma).kernel2d
    k2 = k2 / np.sqrt((k2**2).sum())
    rho, cond = _neighbour_covariance(k2)
    rng = np.random.default_rng(seed)
    chol = np.linalg.cholesky(cond + 1e-12 * np.eye(8))
    eps = rng.standard_normal((samples, 8)) @ chol.T
    slack = 1.0 - rho  # maximum iff eps_i < (1 - rho_i) u for all i
    ratio = np.max(eps / slack, axis=1)  # u must exceed this
    q = np.searchsorted(np.sort(ratio), _GRID, side="left") / samples
    density = np.exp(-0.5 * _GRID**2) / np.sqrt(2 * np.pi) * q
    du = _GRID[1] - _GRID[0]
    tail = np.cumsum((density * du)[::-1])[::-1]
    return NullMaxima(grid=_GRID, tail_per_pixel=tail)


def _neighbour_covariance(k2: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Correlation of the centre with its 8 neighbours and their conditional covariance."""
    def acf(dy: int, dx: int) -> float:
        h, w = k2.shape
        a = k2[max(dy, 0):h + min(dy, 0), max(dx, 0):w + min(dx, 0)]
        b = k2[max(-dy, 0):h + min(-dy, 0), max(-dx, 0):w + min(-dx, 0)]
        return float((a * b).sum())

    rho = np.array([acf(dy, dx) for dy, dx in _OFFSETS])
    cov = np.array([[acf(a[0] - b[0], a[1] - b[1]) for b in _OFFSETS] for a in _OFFSETS])
    return rho, cov - np.outer(rho, rho)
