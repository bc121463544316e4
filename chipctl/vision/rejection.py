"""Rejection of candidates that are not vesicles: hot pixels, saturated blobs, debris and
aggregates."""

from __future__ import annotations

from functools import lru_cache

import numpy as np

from chipctl.vision.background import NoiseModel
from chipctl.vision.detect import neighbourhood
from chipctl.vision.kernels import MatchedKernel, pixel_psf

_Z_HOT = 3.0
_Z_DEBRIS = 3.0


def hot_pixels(raw: np.ndarray, ys: np.ndarray, xs: np.ndarray, nb: np.ndarray,
               bg: np.ndarray, noise: NoiseModel, kernel: MatchedKernel) -> np.ndarray:
    """True where the brightest pixel of the raw 3x3 window ``nb`` around each candidate
    (ys, xs) is a lone spike, far above what its neighbours imply for the PSF.

    The filtered maximum of a spike can sit on a neighbouring pixel (noise beside it, or
    the mirrored border), so the test moves to the brightest pixel of the window when that
    pixel is significantly brighter than the centre.
    """
    brightest = np.argmax(np.where(np.isfinite(nb), nb, -np.inf), axis=1)
    rise = nb[np.arange(len(nb)), brightest] - nb[:, 4]
    moved = rise > _Z_HOT * np.sqrt(2.0 * noise.variance(bg))
    if moved.any():
        dy, dx = np.divmod(brightest[moved], 3)
        nb = nb.copy()
        nb[moved] = neighbourhood(raw, ys[moved] + dy - 1, xs[moved] + dx - 1)
    return _lone_spike(nb, bg, noise, kernel)


def _lone_spike(nb: np.ndarray, bg: np.ndarray, noise: NoiseModel, kernel: MatchedKernel
                ) -> np.ndarray:
    """True where the centre pixel of raw 3x3 windows ``nb`` is a lone spike."""
    centre = nb[:, 4] - bg
    ring = _finite_mean(np.delete(nb, 4, axis=1)) - bg
    r = kernel.neighbour_ratio
    var = noise.variance(bg)
    sd = np.sqrt(noise.variance(bg + np.maximum(centre, 0)) + var / 8.0 / r**2)
    return (centre - ring / r > _Z_HOT * sd) & (ring < 0.35 * r * centre)


def saturated(nb: np.ndarray, level: float | None) -> np.ndarray:
    """True where any pixel of the raw 3x3 windows ``nb`` reaches the saturation level."""
    if level is None or nb.shape[0] == 0:
        return np.zeros(nb.shape[0], bool)
    return np.any(nb >= level, axis=1)


def debris(raw: np.ndarray, ys: np.ndarray, xs: np.ndarray, bg: np.ndarray, nb: np.ndarray,
           noise: NoiseModel, psf_sigma: float, max_sigma: float) -> np.ndarray:
    """True where the object is significantly broader than a Gaussian of ``max_sigma``.

    The ring around the candidate is split into four sectors; the second-weakest sector
    must exceed what a ``max_sigma`` blob gives, so one or two neighbouring spots do not
    make a vesicle look like debris. Only peaks whose filtered 3x3 window ``nb`` is flatter
    than a point source's are tested.
    """
    out = np.zeros(ys.shape, bool)
    broad = _broad_peaks(nb, bg, psf_sigma)
    if broad.any():
        out[broad] = _ring_test(raw, ys[broad], xs[broad], bg[broad], noise, psf_sigma,
                                max_sigma)
    return out


def _broad_peaks(nb: np.ndarray, bg: np.ndarray, psf_sigma: float) -> np.ndarray:
    """Filtered peaks whose curvature implies a width above 1.2x that of a point source."""
    v = np.maximum(nb - bg[:, None], 1e-6)
    with np.errstate(divide="ignore", invalid="ignore"):
        lv = np.log(v)
        cx = lv[:, 3] - 2 * lv[:, 4] + lv[:, 5]
        cy = lv[:, 1] - 2 * lv[:, 4] + lv[:, 7]
        width2 = -1.0 / np.maximum(cx, cy)  # sigma^2 of the flatter axis
    point2 = 2.0 * psf_sigma**2 + 1.0 / 6.0
    return ~(np.isfinite(width2) & (width2 > 0) & (width2 < 1.44 * point2))


def _ring_test(raw: np.ndarray, ys: np.ndarray, xs: np.ndarray, bg: np.ndarray,
               noise: NoiseModel, psf_sigma: float, max_sigma: float) -> np.ndarray:
    """The sector test of :func:`debris` on the given candidates."""
    r1 = max(2.0, 2.0 * psf_sigma)
    radius = int(np.ceil(r1 + 2.0))
    sectors, centre_w = _ring_sectors(radius, r1, r1 + 2.0)
    win = neighbourhood(raw, ys, xs, radius) - bg[:, None]
    centre = _finite_mean(win[:, centre_w])
    means = np.sort(np.stack([_finite_mean(win[:, s]) for s in sectors], axis=1), axis=1)
    ratio = _sector_ratio(max_sigma, radius, r1)
    var = noise.variance(bg)
    sd = np.sqrt(var / (sectors[0].sum()) + ratio**2 * var / centre_w.sum())
    return np.nan_to_num(means[:, 1] - ratio * centre - _Z_DEBRIS * sd, nan=-1.0) > 0


def _finite_mean(a: np.ndarray) -> np.ndarray:
    """Row means over finite entries; NaN for rows without any (outside the frame)."""
    ok = np.isfinite(a)
    n = ok.sum(axis=1)
    total = np.where(ok, a, 0.0).sum(axis=1)
    return np.where(n > 0, total / np.maximum(n, 1), np.nan)


@lru_cache(maxsize=16)
def _ring_sectors(radius: int, r1: float, r2: float) -> tuple[list[np.ndarray], np.ndarray]:
    """Flat boolean masks of 4 ring sectors (N, E, S, W) and of the central 3x3."""
    d = np.arange(-radius, radius + 1)
    yy, xx = np.meshgrid(d, d, indexing="ij")
    rr = np.hypot(yy, xx)
    ring = (rr >= r1) & (rr < r2)
    ang = np.mod(np.arctan2(yy, xx) + np.pi / 4, 2 * np.pi) // (np.pi / 2)
    sectors = [(ring & (ang == k)).ravel() for k in range(4)]
    return sectors, ((np.abs(yy) <= 1) & (np.abs(xx) <= 1)).ravel()


@lru_cache(maxsize=16)
def _sector_ratio(sigma: float, radius: int, r1: float) -> float:
    """Mean sector value over mean centre value for a Gaussian blob of ``sigma``."""
    sectors, centre = _ring_sectors(radius, r1, r1 + 2.0)
    blob = pixel_psf(sigma, radius).ravel()
    return float(blob[sectors[0]].mean() / blob[centre].mean())


def exclusion(ys: np.ndarray, xs: np.ndarray, bad: np.ndarray, distance: float) -> np.ndarray:
    """True for points within ``distance`` of any point flagged ``bad`` (and the bad ones)."""
    out = bad.copy()
    for y, x in zip(ys[bad], xs[bad], strict=True):
        out |= (ys - y) ** 2 + (xs - x) ** 2 <= distance**2
    return out


_CLUMP_WIDTH = 1.2  # an aggregate is this much wider than the PSF ...
_CLUMP_PHOTONS = 6.0  # ... and this much brighter than the frame's median spot


def aggregates(peak: np.ndarray, width: np.ndarray, psf_sigma: float) -> np.ndarray:
    """True for spots (fitted ``peak`` amplitudes, apparent ``width``) that are clumps of
    vesicles (or dye aggregates), not one vesicle: both clearly wider than the PSF and several
    times brighter than the frame's median spot (a bright vesicle is not wider; a defocused
    field is wider but not brighter)."""
    if peak.size == 0:
        return np.zeros(0, bool)
    bright = peak * np.square(np.nan_to_num(width, nan=psf_sigma))
    typical = np.median(peak) * psf_sigma**2
    return (width > _CLUMP_WIDTH * psf_sigma) & (bright > _CLUMP_PHOTONS * typical)
