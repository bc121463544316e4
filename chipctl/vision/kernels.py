"""Matched-filter kernel and PSF constants for a Gaussian point-spread function."""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from math import ceil, erf, sqrt

import cv2
import numpy as np


@dataclass(frozen=True)
class MatchedKernel:
    """Separable Gaussian matched filter for a pixel-integrated Gaussian PSF.

    ``norm`` is the L2 norm of the 2D kernel (noise gain for unit white noise), ``kappa`` the
    filter response to a centred PSF of unit peak, ``neighbour_ratio`` the mean of the 8
    neighbours of a centred PSF relative to its central pixel.
    """

    sigma: float
    ksize: int
    k1: np.ndarray
    norm: float
    kappa: float
    neighbour_ratio: float
    skew_gain: float  # skewness of the filtered field per unit pixel skewness

    @property
    def kernel2d(self) -> np.ndarray:
        """The 2D kernel (sums to 1)."""
        return np.outer(self.k1, self.k1)


def pixel_psf(sigma: float, radius: int, dx: float = 0.0, dy: float = 0.0) -> np.ndarray:
    """Pixel-integrated Gaussian of unit continuous peak, (2r+1)^2 window, centre offset."""
    ax = np.arange(-radius, radius + 1, dtype=float)
    return np.outer(_integrated(ax - dy, sigma), _integrated(ax - dx, sigma))


def _integrated(u: np.ndarray, sigma: float) -> np.ndarray:
    """Integral of exp(-x^2/2s^2) over [u-0.5, u+0.5]."""
    s = sigma * sqrt(2.0)
    lo = np.array([erf((v - 0.5) / s) for v in u])
    hi = np.array([erf((v + 0.5) / s) for v in u])
    return (hi - lo) * sigma * sqrt(np.pi / 2.0)


@lru_cache(maxsize=16)
def matched_kernel(psf_sigma: float) -> MatchedKernel:
    """The matched filter for ``psf_sigma`` (pixel integration folded into the width)."""
    sigma = sqrt(psf_sigma**2 + 1.0 / 12.0)
    ksize = 2 * int(ceil(2.25 * sigma)) + 1
    k1 = cv2.getGaussianKernel(ksize, sigma).astype(np.float64).ravel()
    k2 = np.outer(k1, k1)
    psf = pixel_psf(psf_sigma, ksize // 2)
    centre = psf[ksize // 2, ksize // 2]
    c = ksize // 2
    ring = psf[c - 1:c + 2, c - 1:c + 2].sum() - centre
    return MatchedKernel(
        sigma=sigma,
        ksize=ksize,
        k1=k1,
        norm=float(np.sqrt((k2**2).sum())),
        kappa=float((k2 * psf).sum()),
        neighbour_ratio=float(ring / 8.0 / centre),
        skew_gain=float((k2**3).sum() / (k2**2).sum() ** 1.5),
    )
