"""Co-localization of vesicles between two channels of one field, corrected for chance.

1. *Registration* from the data: the offsets of every pair of spots within ``SEARCH_PX`` pile up
   at the shift between the channels on a flat background of chance pairs. A 2-D Gaussian plus
   a uniform background, fitted by expectation-maximisation around the histogram's peak, gives
   the shift and the spread sigma of true pairs (both channels' localisation errors).
2. *Matching*: one-to-one, least total distance (Hungarian, per connected group of candidate
   pairs) within radius r = ``RADIUS_SIGMAS`` sigma, which keeps a fraction q = 1 - exp(-r^2 /
   2 sigma^2) of true pairs; reference spots whose partner would fall outside the other
   channel's frame are left out.
3. *Chance*: a reference spot without a true partner still finds a free spot of the other
   channel within r with probability p_c = 1 - exp(-rho_free pi r^2), rho_free the density of
   the other channel's spots that are not true partners. With f the other channel's detection
   efficiency, the matched share of the reference spots is
   m = pi f q (1 - p_c) + p_c, solved for pi, the fraction of reference vesicles positive for
   the other marker (iterating, since rho_free depends on pi).

The interval combines the binomial uncertainty of the matched share (Wilson), mapped through the
correction, with the uncertainty of the detection efficiency and of q.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy import sparse
from scipy.optimize import linear_sum_assignment
from scipy.sparse.csgraph import connected_components
from scipy.spatial import cKDTree

from chipctl.analysis.uncertainty import Z95, Factor

FloatArray = NDArray[np.float64]
SEARCH_PX = 6.0  # largest channel shift looked for
RADIUS_SIGMAS = 3.5  # matching radius in sigma of true-pair offsets (q = 0.998)
DEFAULT_SIGMA_PX = 0.5  # when the registration cannot be measured
MIN_PAIRS = 20  # true pairs needed to trust a measured registration


@dataclass(frozen=True)
class Registration:
    """Shift (other minus reference, px), per-axis spread of true pairs and the share of true
    pairs within the matching radius (counted: localisation errors are not all alike)."""

    shift_px: tuple[float, float]
    sigma_px: float
    true_pairs: float
    measured: bool
    capture: float = 1.0
    capture_sd: float = 0.0

    @property
    def radius_px(self) -> float:
        """Matching radius."""
        return max(RADIUS_SIGMAS * self.sigma_px, 1.0)


def _gaussian_capture(sigma: float) -> float:
    radius = max(RADIUS_SIGMAS * sigma, 1.0)
    return 1.0 - math.exp(-radius**2 / (2 * sigma**2))


def _offsets(ref: FloatArray, other: FloatArray, radius: float) -> FloatArray:
    """Other minus reference for every pair closer than ``radius``."""
    if len(ref) == 0 or len(other) == 0:
        return np.empty((0, 2))
    near = cKDTree(ref).query_ball_tree(cKDTree(other), radius)
    i = np.repeat(np.arange(len(ref)), [len(n) for n in near])
    j = np.fromiter((k for n in near for k in n), np.intp, count=len(i))
    return np.asarray(other[j] - ref[i], float)


def register(ref_xy: ArrayLike, other_xy: ArrayLike, area_px: float) -> Registration:
    """Estimate the channel shift and the spread of true pairs from two spot sets."""
    ref, other = np.asarray(ref_xy, float).reshape(-1, 2), np.asarray(other_xy, float).reshape(
        -1, 2)
    off = _offsets(ref, other, SEARCH_PX)
    fallback = Registration((0.0, 0.0), DEFAULT_SIGMA_PX, 0.0, False,
                            _gaussian_capture(DEFAULT_SIGMA_PX))
    if len(off) < MIN_PAIRS:
        return fallback
    edges = np.arange(-SEARCH_PX, SEARCH_PX + 0.25, 0.25)
    hist, xe, ye = np.histogram2d(off[:, 0], off[:, 1], bins=[edges, edges])
    ix, iy = np.unravel_index(int(np.argmax(hist)), hist.shape)
    centre = np.array([(xe[ix] + xe[ix + 1]) / 2, (ye[iy] + ye[iy + 1]) / 2])
    background = len(ref) * len(other) / area_px  # chance offsets per px^2
    off = _offsets(ref + centre, other, SEARCH_PX) + centre  # a full disk around the peak
    centre, sigma, pairs = _em(off, centre, background)
    if pairs < MIN_PAIRS or pairs < 5 * math.sqrt(background * math.pi * (4 * sigma) ** 2):
        return fallback
    capture, sd = _counted_capture(_offsets(ref + centre, other, SEARCH_PX), background, sigma)
    return Registration((float(centre[0]), float(centre[1])), sigma, pairs, True, capture, sd)


def _counted_capture(off: FloatArray, background: float, sigma: float) -> tuple[float, float]:
    """Share of true pairs within the matching radius, and its sd. The Gaussian's value unless
    the pairs counted within the radius over those within three times it are significantly
    fewer (localisation errors with a heavy tail: dim spots, vesicles out of focus)."""
    gauss = _gaussian_capture(sigma)
    radius = max(RADIUS_SIGMAS * sigma, 1.0)
    wide = min(3 * radius, SEARCH_PX)
    d = np.hypot(off[:, 0], off[:, 1])
    n_near, n_ring = float(np.sum(d <= radius)), float(np.sum((d > radius) & (d <= wide)))
    near = n_near - background * math.pi * radius**2
    ring = n_ring - background * math.pi * (wide**2 - radius**2)
    if near <= 0 or near + ring <= 0:
        return gauss, 0.0
    far = near + ring
    sd = math.sqrt(ring**2 * n_near + near**2 * n_ring) / far**2
    counted = min(near / far, 1.0)
    return (counted, sd) if counted < gauss - 2 * sd else (gauss, 0.0)


def _em(off: FloatArray, centre: FloatArray, background: float, rounds: int = 60
        ) -> tuple[FloatArray, float, float]:
    """Gaussian (true pairs) + uniform (chance) mixture of offsets near ``centre``."""
    sigma = 0.7
    pairs = 0.0
    for _ in range(rounds):
        window = max(4.0 * sigma, 2.0)
        d2 = np.sum((off - centre) ** 2, axis=1)
        inside = off[d2 <= window**2]
        d2 = d2[d2 <= window**2]
        flat = background * math.pi * window**2
        if len(inside) == 0:
            break
        pairs = max(len(inside) - flat, 1.0)
        gauss = pairs * np.exp(-d2 / (2 * sigma**2)) / (2 * math.pi * sigma**2)
        resp = gauss / (gauss + background)
        total = float(resp.sum())
        if total <= 0:
            break
        centre = (resp[:, None] * inside).sum(axis=0) / total
        sigma = max(math.sqrt(float((resp * d2).sum()) / (2 * total)), 0.05)
        pairs = total
    return centre, sigma, pairs


def match(ref_xy: ArrayLike, other_xy: ArrayLike, radius_px: float
          ) -> tuple[NDArray[np.intp], NDArray[np.intp]]:
    """One-to-one pairs (i, j) within ``radius_px`` of least total distance."""
    ref, other = np.asarray(ref_xy, float).reshape(-1, 2), np.asarray(other_xy, float).reshape(
        -1, 2)
    if len(ref) == 0 or len(other) == 0:
        return np.empty(0, np.intp), np.empty(0, np.intp)
    near = cKDTree(ref).query_ball_tree(cKDTree(other), radius_px)
    i = np.repeat(np.arange(len(ref)), [len(n) for n in near])
    j = np.fromiter((k for n in near for k in n), np.intp, count=len(i))
    if i.size == 0:
        return np.empty(0, np.intp), np.empty(0, np.intp)
    n = len(ref)
    graph = sparse.coo_matrix((np.ones(i.size), (i, n + j)), shape=(n + len(other),) * 2)
    _, label = connected_components(graph, directed=False)
    comp = label[i]
    single = np.bincount(comp)[comp] == 1  # a lone candidate pair is simply a match
    out_i, out_j = [i[single]], [j[single]]
    order = np.argsort(comp[~single], kind="stable")
    ci_all, cj_all, comp_rest = i[~single][order], j[~single][order], comp[~single][order]
    starts = np.flatnonzero(np.diff(comp_rest, prepend=-1))
    for ci, cj in zip(np.split(ci_all, starts[1:]), np.split(cj_all, starts[1:]), strict=True):
        if ci.size == 0:
            continue
        rows, cols = np.unique(ci), np.unique(cj)
        cost = np.full((rows.size, cols.size), 1e6)
        cost[np.searchsorted(rows, ci), np.searchsorted(cols, cj)] = np.hypot(
            *(ref[ci] - other[cj]).T)
        r, c = linear_sum_assignment(cost)
        real = cost[r, c] < 1e6
        out_i.append(rows[r[real]])
        out_j.append(cols[c[real]])
    return np.concatenate(out_i), np.concatenate(out_j)


@dataclass(frozen=True)
class FieldPair:
    """One field's two spot sets (x, y px), its frame shape (rows, columns) and area (px)."""

    ref_xy: FloatArray
    other_xy: FloatArray
    shape: tuple[int, int]

    @property
    def area_px(self) -> float:
        """Frame area."""
        return float(self.shape[0] * self.shape[1])


@dataclass(frozen=True)
class Colocalization:
    """Fraction of the reference channel's vesicles also positive in the other channel."""

    reference_spots: int  # inside the shared frame
    other_spots: int
    matched: int
    chance: float  # p_c, weighted over the fields
    raw_fraction: float  # matched / reference spots (uncorrected)
    fraction: float  # corrected for chance, radius and the other channel's detection
    ci95: tuple[float, float]
    registration: Registration


def _inside(xy: FloatArray, shape: tuple[int, int], shift: FloatArray, margin: float
            ) -> NDArray[np.bool_]:
    """Reference spots whose partner would lie inside the other channel's frame."""
    p = xy + shift
    return np.asarray((p[:, 0] >= margin) & (p[:, 0] <= shape[1] - 1 - margin)
                      & (p[:, 1] >= margin) & (p[:, 1] <= shape[0] - 1 - margin))


def colocalize(fields: Sequence[FieldPair], other_detection: Factor | None = None,
               registration: Registration | None = None) -> Colocalization:
    """Chance-corrected co-positive fraction over a zone's fields (registration pooled from
    all of them unless given)."""
    reg = registration or _pooled_registration(fields)
    shift, radius = np.asarray(reg.shift_px), reg.radius_px
    stats = []
    for fp in fields:
        ref = fp.ref_xy[_inside(fp.ref_xy, fp.shape, shift, radius)] if len(fp.ref_xy) else \
            fp.ref_xy
        i, _ = match(ref, fp.other_xy - shift, radius)
        stats.append((len(ref), len(fp.other_xy), len(i), fp.area_px))
    f = other_detection.value if other_detection else 1.0
    f_rsd = other_detection.rsd if other_detection else 0.0
    return _correct(np.array(stats, float), radius, reg, f, f_rsd)


def _pooled_registration(fields: Sequence[FieldPair]) -> Registration:
    offset = 0.0
    refs, others = [], []
    for fp in fields:  # tile the fields side by side so pairs never cross fields
        refs.append(fp.ref_xy + [offset, 0.0])
        others.append(fp.other_xy + [offset, 0.0])
        offset += fp.shape[1] + 2 * SEARCH_PX
    area = sum(fp.area_px for fp in fields)
    return register(np.concatenate(refs) if refs else np.empty((0, 2)),
                    np.concatenate(others) if others else np.empty((0, 2)), area)


def _solve(stats: FloatArray, radius: float, q: float, f: float, observed: float
           ) -> tuple[float, float]:
    """(fraction, spot-weighted chance rate) for a matched share ``observed``."""
    n_ref, n_other, area = stats[:, 0], stats[:, 1], stats[:, 3]
    frac = 0.5
    chance = np.zeros_like(n_ref)
    for _ in range(50):
        free = np.maximum(n_other - frac * f * q * n_ref, 0.0) / area
        chance = -np.expm1(-free * math.pi * radius**2)
        p_c = float(np.sum(n_ref * chance) / max(np.sum(n_ref), 1.0))
        frac = (observed - p_c) / max(f * q * (1 - p_c), 1e-12)
    return frac, p_c


def _correct(stats: FloatArray, radius: float, reg: Registration, f: float, f_rsd: float
             ) -> Colocalization:
    n_ref, matched = float(stats[:, 0].sum()), float(stats[:, 2].sum())
    q = reg.capture
    observed = matched / n_ref if n_ref else 0.0
    frac, p_c = _solve(stats, radius, q, f, observed)
    lo_obs, hi_obs = _wilson(matched, n_ref)
    lo = _solve(stats, radius, q, f, lo_obs)[0]
    hi = _solve(stats, radius, q, f, hi_obs)[0]
    spread = Z95 * abs(frac) * math.hypot(f_rsd, reg.capture_sd / q)
    lo = frac - math.hypot(frac - lo, spread)
    hi = frac + math.hypot(hi - frac, spread)
    clip = min(max(frac, 0.0), 1.0)
    return Colocalization(int(n_ref), int(stats[:, 1].sum()), int(matched), p_c, observed, clip,
                          (min(max(lo, 0.0), 1.0), min(max(hi, 0.0), 1.0)), reg)


def _wilson(k: float, n: float) -> tuple[float, float]:
    """Wilson score 95 % interval of a binomial proportion."""
    if n <= 0:
        return 0.0, 1.0
    p, z2 = k / n, Z95**2
    centre = (p + z2 / (2 * n)) / (1 + z2 / n)
    half = Z95 * math.sqrt(p * (1 - p) / n + z2 / (4 * n * n)) / (1 + z2 / n)
    return centre - half, centre + half
