"""Per-spot measurements of accepted detections: ML position, photons, background, CRLB, width.

``amplitude`` stays the matched filter's estimate of the peak ((filtered - background) /
kappa), the same filtered value the spot's score divides by its noise, so amplitude / snr is
the field's noise level; ``photons`` comes from the maximum-likelihood fit.

The start is the Gaussian (log-parabola) peak of the filtered 3x3 window; the maximum-likelihood
fit (``fit``) refines it. A fit that wanders more than ``_MAX_MOVE_PX`` from its start, or ends
without a positive amplitude, keeps the start position and reports no bound (a noise-level
detection whose likelihood is flat).
"""

from __future__ import annotations

import numpy as np

from chipctl.vision import detect, split
from chipctl.vision.field import Field
from chipctl.vision.fit import (
    SpotFit,
    fit_spots,
    light_of,
    reach_pairs,
    window_radius,
    within,
)
from chipctl.vision.model import empty_spots
from chipctl.vision.rejection import aggregates

_MAX_MOVE_PX = 1.5
_PEAK = "photons"  # holds the fitted peak (ADU) while localizing; converted to electrons last


def localize(fld: Field, psf_sigma: float, ys: np.ndarray, xs: np.ndarray, nb: np.ndarray,
             bg: np.ndarray, snr: np.ndarray) -> tuple[np.ndarray, int]:
    """Spot rows (:data:`~chipctl.vision.model.SPOT_DTYPE`) for maxima at (ys, xs) with
    filtered 3x3 windows ``nb``, background ``bg`` (ADU) and scores ``snr``, and the number
    of maxima rejected as aggregates (before any splitting)."""
    spots = empty_spots(len(ys))
    if len(ys) == 0:
        return spots, 0
    dx, dy = detect.subpixel_offsets(nb, bg)
    spread = 2.0 * psf_sigma**2 + 1.0 / 6.0  # variance of a point source's filtered peak
    amp0 = (nb[:, 4] - bg) / fld.kernel.kappa * np.exp((dx * dx + dy * dy) / (2.0 * spread))
    r = window_radius(psf_sigma)
    near = reach_pairs(ys, xs, ys, xs, 2 * (r + split.PAIR_MARGIN))
    near = (near[0][near[0] != near[1]], near[1][near[0] != near[1]])
    fit = fit_spots(fld.raw, ys, xs, xs + dx, ys + dy, amp0, bg, fld.noise, psf_sigma,
                    pairs=near)
    ok = _usable(fit, xs + dx, ys + dy)
    spots["x"] = np.where(ok, fit.x, xs + dx)
    spots["y"] = np.where(ok, fit.y, ys + dy)
    spots["amplitude"] = (nb[:, 4] - bg) / fld.kernel.kappa  # the score's own estimate
    spots[_PEAK] = np.where(ok, fit.amplitude, amp0)  # the fitted peak (ADU) until the end
    spots["background"] = np.where(ok, fit.background, bg)
    spots["crlb_x"] = np.where(ok, fit.crlb_x, np.nan)
    spots["crlb_y"] = np.where(ok, fit.crlb_y, np.nan)
    spots["snr"] = snr
    spots["width"] = apparent_width(nb, bg, psf_sigma)
    sd = detect.sample_low(fld.sd_low, fld.raw.shape, ys, xs) * fld.scale
    excess = split.unexplained_light(
        fld.filtered, ys, xs, np.stack([spots["x"], spots["y"]]), spots[_PEAK], bg, sd,
        fld.kernel.kappa, psf_sigma, within(near, ys, xs, r + 6))
    cand = ~ok | split.candidates(fit.chi2, fit.pixels, fit.amplitude, fit.elongation) | (
        excess > split.Z_RING)
    clumps = aggregates(spots[_PEAK], spots["width"], psf_sigma)
    if clumps.any():
        keep = ~clumps
        index = np.cumsum(keep) - 1
        sel = keep[near[0]] & keep[near[1]]
        near = (index[near[0][sel]], index[near[1][sel]])
        spots, ys, xs, cand = spots[keep], ys[keep], xs[keep], cand[keep]
    if cand.any():
        spots = _split(fld, psf_sigma, spots, ys, xs, np.flatnonzero(cand), near)
    spots["photons"] = photons(spots[_PEAK], psf_sigma, fld.noise.slope)
    return spots, int(clumps.sum())


def _split(fld: Field, psf_sigma: float, spots: np.ndarray, ys: np.ndarray, xs: np.ndarray,
           cand: np.ndarray, near: tuple[np.ndarray, np.ndarray]) -> np.ndarray:
    """``spots`` with each candidate whose two-emitter model wins replaced by its two spots;
    ``near``: all (spot, neighbour) pairs within reach of a pair window, sorted by spot."""
    r = window_radius(psf_sigma) + split.PAIR_MARGIN
    index = np.full(len(ys), -1)
    index[cand] = np.arange(len(cand))
    sel = index[near[0]] >= 0
    n, m = index[near[0][sel]], near[1][sel]
    others = light_of(ys[cand], xs[cand], r, spots["x"], spots["y"], spots[_PEAK], psf_sigma,
                      (n, m))
    single = np.stack([spots[k][cand] for k in ("x", "y", _PEAK, "background")])
    pair = split.fit_pairs(fld.raw, ys[cand], xs[cand], single, others, fld.noise, psf_sigma)
    won = split.accepted(pair, ys[cand], xs[cand], psf_sigma)
    won &= ~_crowds_a_neighbour(pair, cand, spots, n, m, psf_sigma)
    if not won.any():
        return spots
    parts = np.concatenate([spots[cand[won]]] * 2)
    for name, value in (("x", pair.x), ("y", pair.y), ("amplitude", pair.amplitude),
                        (_PEAK, pair.amplitude), ("crlb_x", pair.crlb_x),
                        ("crlb_y", pair.crlb_y)):
        parts[name] = value[:, won].ravel()
    parts["background"] = np.tile(pair.background[won], 2)
    parts["multiplicity"] = 2
    return np.concatenate([np.delete(spots, cand[won]), parts])


def photons(amplitude: np.ndarray, psf_sigma: float, adu_per_e: float) -> np.ndarray:
    """Total signal in electrons of Gaussian spots of peak ``amplitude`` (ADU); NaN when the
    noise model has no Poisson term (gain unknown)."""
    if adu_per_e <= 0:
        return np.full(np.shape(amplitude), np.nan)
    return np.asarray(amplitude) * 2.0 * np.pi * psf_sigma**2 / adu_per_e


def apparent_width(nb: np.ndarray, bg: np.ndarray, psf_sigma: float) -> np.ndarray:
    """Gaussian sigma (px) of the object under each filtered 3x3 window (mean of the row and
    column log-curvatures, the matched kernel's width removed); NaN where not peaked."""
    v = np.maximum(nb - bg[:, None], 1e-6)
    with np.errstate(divide="ignore", invalid="ignore"):
        lv = np.log(v)
        curv = 0.5 * ((lv[:, 3] - 2 * lv[:, 4] + lv[:, 5]) + (lv[:, 1] - 2 * lv[:, 4] + lv[:, 7]))
        var = -1.0 / curv - psf_sigma**2 - 1.0 / 6.0
    return np.where(np.isfinite(var) & (curv < 0), np.sqrt(np.maximum(var, 0.0)), np.nan)


def _usable(fit: SpotFit, x0: np.ndarray, y0: np.ndarray) -> np.ndarray:
    moved = np.hypot(fit.x - x0, fit.y - y0)
    return (np.isfinite(fit.x) & np.isfinite(fit.y) & (moved <= _MAX_MOVE_PX)
            & (fit.amplitude > 0) & np.isfinite(fit.crlb_x))


def _crowds_a_neighbour(pair: split.Pair, cand: np.ndarray, spots: np.ndarray,
                        n: np.ndarray, m: np.ndarray, psf_sigma: float) -> np.ndarray:
    """True for candidates whose pair puts a component on top of another detected spot
    (that light is the neighbour's, explained twice)."""
    out = np.zeros(len(cand), bool)
    limit = 2.0 * psf_sigma
    for c in (0, 1):
        d = np.hypot(pair.x[c, n] - spots["x"][m], pair.y[c, n] - spots["y"][m])
        np.logical_or.at(out, n[d < limit], True)
    return out


_WIDTH_SNR = 8.0  # spots bright enough for their width to be measured well
_WIDTH_MIN_SPOTS = 30


def spot_width(spots: np.ndarray) -> float:
    """Median apparent PSF sigma (px) of the bright single spots; NaN when too few."""
    sel = (spots["snr"] > _WIDTH_SNR) & (spots["multiplicity"] == 1) & np.isfinite(
        spots["width"])
    return float(np.median(spots["width"][sel])) if sel.sum() >= _WIDTH_MIN_SPOTS else float(
        "nan")
