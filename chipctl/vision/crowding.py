"""Crowding of a field and the count corrected for vesicles hidden in unresolved neighbours.

Captured vesicles land independently of one another (spatially random, a Poisson field at the
local density). Pairs closer than a few PSF sigma are then as common as the density says, and
any that the counter sees fewer of were merged into one spot. The correction counts them: the
expected number of pairs closer than ``_REACH_SIGMA`` PSF sigma (from the density in tiles,
so that a density gradient across the field is followed, and the frame's edges) minus the
pairs found. A merge loses its own pair and, in a crowded field, some of the pairs that its two
vesicles had with third ones (the merged spot keeps one where there were two): each hidden
vesicle accounts for about 1 + (mean neighbours within reach) / 2 missing pairs (on simulated
Poisson fields of 10,000 and 30,000 spots per 2048 x 2048 frame the corrected count is within
1.6 % of the truth where the detected one is 1-9 % low). The uncertainty combines the Poisson
uncertainty of the number of close pairs with a quarter of the correction for the model.

The crowding figure is the fraction of vesicles that have a neighbour within that distance,
1 - exp(-density * pi * d^2). At PSF sigma 1.3 px and SNR 4 it is 0.04 for 2,000 vesicles per
2048 x 2048 frame (detected count 0.2 % low), 0.18 for 10,000 (2.3 % low) and 0.45 for 30,000
(8.4 % low).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from chipctl.vision.fit import reach_pairs

_REACH_SIGMA = 4.0  # pairs closer than this (in PSF sigma) can merge; farther ones do not
_TILES = 8  # tiles per side for the local density
_MODEL_ERROR = 0.25  # relative uncertainty of the pairs-per-hidden-vesicle model


@dataclass(frozen=True)
class Crowding:
    """Crowding of one field (see the module docstring)."""

    crowding: float  # fraction of vesicles with a neighbour within the reach
    expected_pairs: float  # pairs within the reach that a Poisson field of this density has
    found_pairs: int  # pairs within the reach among the detected spots
    merged: float  # estimated vesicles hidden in a neighbour's spot
    merged_sd: float


def crowding(xy: np.ndarray, shape: tuple[int, int], psf_sigma: float) -> Crowding:
    """Crowding of the spots at ``xy`` (N x 2) in a frame of ``shape`` (rows, columns)."""
    h, w = shape
    reach = _REACH_SIGMA * psf_sigma
    n = len(xy)
    if n < 2 or h < 2 * reach or w < 2 * reach:
        return Crowding(0.0, 0.0, 0, 0.0, 0.0)
    found = _close_pairs(xy, reach)
    area = float(h * w)
    edge = (np.pi * reach**2 * area - 4.0 / 3.0 * reach**3 * (h + w) + reach**4 / 2.0) / (
        np.pi * reach**2 * area)
    per_vesicle = np.pi * reach**2 * edge  # area around a vesicle where a pair forms
    expected = 0.5 * _pair_density(xy, shape) * per_vesicle
    merged = 0.0
    for _ in range(4):  # hidden vesicles had partners too: E grows as (n + merged)^2
        grown = expected * ((n + merged) / n) ** 2
        neighbours = 2.0 * grown / (n + merged)  # mean neighbours within reach per vesicle
        # a merge loses its own pair and about half of its partners' pairs with third ones
        merged = max(grown - found, 0.0) / (1.0 + 0.5 * neighbours)
    expected *= ((n + merged) / n) ** 2
    mean_density = (n + merged) / area
    return Crowding(
        crowding=float(1.0 - np.exp(-mean_density * per_vesicle)),
        expected_pairs=float(expected), found_pairs=found, merged=float(merged),
        merged_sd=float(np.sqrt(expected + (_MODEL_ERROR * merged) ** 2)),
    )


def _pair_density(xy: np.ndarray, shape: tuple[int, int]) -> float:
    """Sum over tiles of n (n - 1) / tile area: the frame integral of the squared density
    (a density gradient across the field raises it above n^2 / area)."""
    h, w = shape
    ty = np.clip((xy[:, 1] + 0.5) * _TILES // h, 0, _TILES - 1).astype(np.intp)
    tx = np.clip((xy[:, 0] + 0.5) * _TILES // w, 0, _TILES - 1).astype(np.intp)
    counts = np.bincount(ty * _TILES + tx, minlength=_TILES * _TILES).astype(float)
    return float((counts * (counts - 1.0)).sum() / (h * w / _TILES**2))


def _close_pairs(xy: np.ndarray, reach: float) -> int:
    """Number of unordered pairs of points closer than ``reach``."""
    iy, ix = np.round(xy[:, 1]).astype(np.intp), np.round(xy[:, 0]).astype(np.intp)
    n, m = reach_pairs(iy, ix, iy, ix, int(np.ceil(reach)) + 1)
    n, m = n[n < m], m[n < m]
    return int(np.sum(np.hypot(*(xy[n] - xy[m]).T) <= reach))
