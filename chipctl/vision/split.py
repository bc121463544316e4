"""Splitting of detections that hold more than one spot (touching vesicles).

Two vesicles closer than about twice the filtered spot width give one local maximum. A spot is
a candidate when its single-emitter fit leaves an elongated residual or a chi-square above
what noise gives, when the matched-filtered frame beside it holds light that no detected spot
explains, or when its amplitude is well above the frame's typical spot. For each candidate a
two-emitter model (positions, amplitudes, shared background, the neighbours' light held
fixed) is fitted by Fisher scoring on a window two pixels larger, and kept when it is better
by a likelihood ratio that single spots rarely reach and both components are significant
(model selection on the local fit, as in DAOSTORM / ThunderSTORM's multi-emitter mode).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from chipctl.vision.background import NoiseModel
from chipctl.vision.fit import profiles, window_radius

_Z_CHI2 = 3.0  # candidate: chi-square excess in standard deviations
_ELONGATION = 12.0  # candidate: quadrupole chi-square (2 dof; 0.25 % of round spots)
_BRIGHT = 1.6  # candidate: amplitude above this multiple of the frame's median spot
LR_THRESHOLD = 24.0  # likelihood-ratio statistic (2 delta log L) needed to split
_MIN_COMPONENT_Z = 3.0  # each component's amplitude in units of its bound
_ITERATIONS = 4
_CHUNK = 512  # candidates fitted together (their window arrays stay in cache)
PAIR_MARGIN = 2  # the pair window's radius exceeds the single fit's by this (px)
_MIN_VARIANCE = 1.0 / 12.0
_EYE7 = np.eye(7)
_POS = [0, 1, 3, 4]  # position parameters: x1, y1, x2, y2


@dataclass(frozen=True)
class Pair:
    """Two-emitter fits of K candidates (frame coordinates, ADU) and the test statistic."""

    x: np.ndarray  # (2, K)
    y: np.ndarray
    amplitude: np.ndarray
    background: np.ndarray  # (K,)
    crlb_x: np.ndarray  # (2, K)
    crlb_y: np.ndarray
    crlb_amplitude: np.ndarray
    lr: np.ndarray  # 2 (log L_pair - log L_single) on the same window


def candidates(chi2: np.ndarray, pixels: np.ndarray, amplitude: np.ndarray,
               elongation: np.ndarray) -> np.ndarray:
    """Spots worth a two-emitter fit: an elongated residual, a chi-square excess, or a
    bright amplitude (each reached by under 1 % of single spots)."""
    dof = np.maximum(pixels - 4.0, 1.0)
    excess = (chi2 - dof) / np.sqrt(2.0 * dof)
    typical = np.median(amplitude) if amplitude.size else 0.0
    return ((elongation > _ELONGATION) | (excess > _Z_CHI2)
            | (amplitude > _BRIGHT * typical))


_RING = np.array([(-3, 0), (3, 0), (0, -3), (0, 3), (-2, -2), (-2, 2), (2, -2), (2, 2)])
Z_RING = 4.0  # candidate: unexplained filtered light beside the spot, in noise sd


def unexplained_light(filtered: np.ndarray, ys: np.ndarray, xs: np.ndarray, pos: np.ndarray,
                      amp: np.ndarray, bg: np.ndarray, sd: np.ndarray, kappa: float,
                      sigma: float, pairs: tuple[np.ndarray, np.ndarray]) -> np.ndarray:
    """Largest excess (in filtered-noise sd) of the matched-filtered frame over what the
    spots explain, on a ring of 8 points about 3 px from each spot at pixel (ys, xs).

    ``pos`` (2, N) and ``amp`` are the fitted positions and peaks, ``pairs`` the (spot,
    neighbour) pairs close enough to light the ring. A spot hiding a neighbour that made no
    maximum of its own shows here.
    """
    h, w = filtered.shape
    py = np.clip(ys[:, None] + _RING[None, :, 1], 0, h - 1)
    px = np.clip(xs[:, None] + _RING[None, :, 0], 0, w - 1)
    seen = filtered[py, px].astype(np.float64)
    spread = 2.0 * (2.0 * sigma**2 + 1.0 / 6.0)  # twice the filtered spot's variance

    def light(src: np.ndarray, at: np.ndarray) -> np.ndarray:
        d2 = (px[at] - pos[0, src, None]) ** 2 + (py[at] - pos[1, src, None]) ** 2
        return kappa * amp[src, None] * np.exp(-d2 / spread)

    expected = bg[:, None] + light(np.arange(len(ys)), np.arange(len(ys)))
    n, m = pairs
    if n.size:
        flat = (n[:, None] * len(_RING) + np.arange(len(_RING))[None, :]).ravel()
        expected += np.bincount(flat, light(m, n).ravel(), expected.size).reshape(
            expected.shape)
    return np.max((seen - expected) / sd[:, None], axis=1)


def fit_pairs(raw: np.ndarray, ys: np.ndarray, xs: np.ndarray, single: np.ndarray,
              others: np.ndarray, noise: NoiseModel, sigma: float) -> Pair:
    """Two-emitter fits around pixels (ys, xs); ``single`` is (4, K): x, y, amplitude and
    background of the single-emitter fit; ``others`` the neighbours' light (w, w, K) on the
    pair window (radius ``window_radius(sigma) + PAIR_MARGIN``).

    Windows are laid out pixel-major, candidate-minor ((w, w, K), as in ``fit``), so every
    numpy operation runs a long contiguous loop, and are fitted ``_CHUNK`` candidates at a
    time, so a chunk's arrays stay in cache through its iterations.
    """
    r = window_radius(sigma) + PAIR_MARGIN
    k = len(ys)
    fits = np.empty((15, k))  # theta (7), the bounds' variances (7), lr
    for a in range(0, k, _CHUNK):
        b = slice(a, a + _CHUNK)
        fits[:, b] = _fit_chunk(raw, ys[b], xs[b], single[:, b],
                                others[..., b].astype(np.float64), noise, sigma, r)
    theta, lr = fits[:7], fits[14]
    sd = np.sqrt(np.maximum(fits[7:14], 0.0))
    return Pair(x=xs + theta[[0, 3]], y=ys + theta[[1, 4]], amplitude=theta[[2, 5]],
                background=theta[6], crlb_x=sd[[0, 3]], crlb_y=sd[[1, 4]],
                crlb_amplitude=sd[[2, 5]], lr=lr)


def _fit_chunk(raw: np.ndarray, ys: np.ndarray, xs: np.ndarray, single: np.ndarray,
               light: np.ndarray, noise: NoiseModel, sigma: float, r: int) -> np.ndarray:
    """(15, K): the pair fit (7), its bounds' variances (7) and lr of a chunk of candidates;
    ``light`` (w, w, K) is the neighbours' light on each window."""
    data, valid = _windows(raw, ys, xs, r)
    theta = _start(data, valid, single, ys, xs, r)
    for _ in range(_ITERATIONS):
        model = _PairModel(theta, sigma, r, light)
        info, score = model.normal(data, valid, noise)
        theta = _step(theta, info, score, r)
    model = _PairModel(theta, sigma, r, light)
    info, _ = model.normal(data, valid, noise)
    var = np.diagonal(np.linalg.inv(info + 1e-9 * _EYE7), axis1=1, axis2=2).T
    one = _single_model(single, ys, xs, sigma, r, light)
    lr = _likelihood_ratio(data, one, model.lam, valid, noise)
    return np.concatenate([theta, var, lr[None, :]])


def accepted(pair: Pair, ys: np.ndarray, xs: np.ndarray, sigma: float) -> np.ndarray:
    """Candidates whose pair model is kept."""
    r = window_radius(sigma) + PAIR_MARGIN - 0.5  # the pair window reaches further
    z = pair.amplitude / np.maximum(pair.crlb_amplitude, 1e-12)
    inside = (np.abs(pair.x - xs) <= r) & (np.abs(pair.y - ys) <= r)
    apart = np.hypot(pair.x[0] - pair.x[1], pair.y[0] - pair.y[1]) >= 0.5
    return ((pair.lr > LR_THRESHOLD) & np.all(z > _MIN_COMPONENT_Z, axis=0)
            & np.all(inside, axis=0) & apart & np.isfinite(pair.lr))


def _windows(raw: np.ndarray, ys: np.ndarray, xs: np.ndarray, r: int
             ) -> tuple[np.ndarray, np.ndarray]:
    """(w, w, K) float64 windows around (ys, xs) (zero outside the frame) and their
    in-frame masks."""
    h, w = raw.shape
    d = np.arange(-r, r + 1)
    yy = d[:, None, None] + ys[None, None, :]
    xx = d[None, :, None] + xs[None, None, :]
    valid = (yy >= 0) & (yy < h) & (xx >= 0) & (xx < w)
    data = raw[np.clip(yy, 0, h - 1), np.clip(xx, 0, w - 1)]
    return np.where(valid, data, 0.0).astype(np.float64), valid.astype(np.float64)


def _start(data: np.ndarray, valid: np.ndarray, single: np.ndarray, ys: np.ndarray,
           xs: np.ndarray, r: int) -> np.ndarray:
    """Start (7, K): the two components on the principal axis of the excess light,
    separated according to its excess variance, each with 0.6 of the single amplitude."""
    d = np.arange(-r, r + 1, dtype=float)[:, None]
    cx, cy = single[0] - xs, single[1] - ys
    ux, uy = (d - cx)[None, :, :], (d - cy)[:, None, :]
    light = np.maximum(data - single[3], 0.0) * valid
    total = np.maximum(light.sum(axis=(0, 1)), 1e-9)
    sxx, syy, sxy = ((light * a * b).sum(axis=(0, 1)) / total for a, b in
                     ((ux, ux), (uy, uy), (ux, uy)))
    angle = 0.5 * np.arctan2(2.0 * sxy, sxx - syy)
    spread = np.sqrt(0.25 * (sxx - syy) ** 2 + sxy**2)
    half = np.clip(np.sqrt(2.0 * spread), 0.6, 2.0)
    ox, oy = half * np.cos(angle), half * np.sin(angle)
    amp = np.maximum(single[2], 1e-3) * 0.6
    return np.stack([cx + ox, cy + oy, amp, cx - ox, cy - oy, amp, single[3]])


_FX = (0, 1, 1, 2, 3, 3, 4)  # each parameter's column factor: dPx1 Px1 Px1 dPx2 Px2 Px2 1
_FY = (0, 1, 0, 2, 3, 2, 4)  # and its row factor: Py1 dPy1 Py1 Py2 dPy2 Py2 1
_UPPER = np.triu_indices(7)


def _products(factor: tuple[int, ...]) -> tuple[np.ndarray, np.ndarray, list[int]]:
    """The distinct products of two factors that the upper triangle of J W J^T needs: their
    first and second factors, and which product each (i <= j) entry takes."""
    pairs = [tuple(sorted((factor[i], factor[j]))) for i, j in zip(*_UPPER, strict=True)]
    distinct = sorted(set(pairs))
    return (np.array([a for a, _ in distinct]), np.array([b for _, b in distinct]),
            [distinct.index(c) for c in pairs])


_COL_A, _COL_B, _COL_OF = _products(_FX)
_ROW_A, _ROW_B, _ROW_OF = _products(_FY)


class _PairModel:
    """The two-emitter model of K windows at ``theta`` (7, K): its mean ``lam`` (w, w, K)
    and its Jacobian, kept separable: the derivative by parameter q is scale[q] * row
    factor (y) x column factor (x) (``_FY``, ``_FX``), never a (7, w, w, K) array."""

    def __init__(self, theta: np.ndarray, sigma: float, r: int, light: np.ndarray) -> None:
        k = theta.shape[1]
        w = 2 * r + 1
        p, dp = profiles(theta[[0, 1, 3, 4]].ravel(), sigma, r)
        p = np.ascontiguousarray(p.astype(np.float64).reshape(w, 4, k).transpose(1, 0, 2))
        dp = np.ascontiguousarray(dp.astype(np.float64).reshape(w, 4, k).transpose(1, 0, 2))
        one = np.ones((w, k))
        self.fx = np.stack([dp[0], p[0], dp[2], p[2], one])  # (5, w, K)
        self.fy = np.stack([p[1], dp[1], p[3], dp[3], one])
        unit = np.ones(k)
        self.scale = np.stack([theta[2], theta[2], unit, theta[5], theta[5], unit, unit])
        self.lam = theta[6] + light
        for c, (ix, iy) in enumerate(((0, 1), (2, 3))):
            self.lam += p[iy][:, None, :] * (theta[3 * c + 2] * p[ix])[None, :, :]

    def normal(self, data: np.ndarray, valid: np.ndarray, noise: NoiseModel
               ) -> tuple[np.ndarray, np.ndarray]:
        """Fisher information J W J^T (K, 7, 7) and score J W (data - lam) (K, 7, 1): each
        sum over a window is taken over columns with products of column factors, then over
        rows with products of row factors."""
        k = self.lam.shape[2]
        wgt = noise.slope * self.lam
        wgt += noise.intercept
        np.maximum(wgt, _MIN_VARIANCE, out=wgt)
        np.divide(valid, wgt, out=wgt)
        res = data - self.lam
        res *= wgt
        fx, fy = self.fx, self.fy
        columns = np.einsum("ijn,ujn->uin", wgt, fx.take(_COL_A, axis=0) * fx.take(_COL_B, axis=0))
        rows = fy.take(_ROW_A, axis=0) * fy.take(_ROW_B, axis=0)
        i, j = _UPPER
        upper = np.stack([np.einsum("in,in->n", rows[a], columns[b])
                          for a, b in zip(_ROW_OF, _COL_OF, strict=True)])
        upper *= self.scale[i] * self.scale[j]
        info = np.empty((k, 7, 7))
        info[:, i, j] = upper.T
        info[:, j, i] = upper.T
        by_row = np.einsum("ijn,ujn->uin", res, fx)
        score = np.stack([np.einsum("in,in->n", fy[a], by_row[b])
                          for a, b in zip(_FY, _FX, strict=True)]) * self.scale
        return info, score.T[:, :, None]


def _step(theta: np.ndarray, info: np.ndarray, score: np.ndarray, r: int) -> np.ndarray:
    """One damped Fisher-scoring step, positions kept inside the window."""
    diag = np.diagonal(info, axis1=1, axis2=2)
    info += (1e-3 * diag + 1e-9)[:, :, None] * _EYE7
    step = np.linalg.solve(info, score)[:, :, 0].T
    step[_POS] = np.clip(step[_POS], -0.7, 0.7)
    out = theta + step
    out[_POS] = np.clip(out[_POS], -r, r)
    out[[2, 5]] = np.maximum(out[[2, 5]], 1e-3)
    return out


def _single_model(single: np.ndarray, ys: np.ndarray, xs: np.ndarray, sigma: float, r: int,
                  light: np.ndarray) -> np.ndarray:
    px, _ = profiles(single[0] - xs, sigma, r)
    py, _ = profiles(single[1] - ys, sigma, r)
    unit = py[:, None, :].astype(np.float64) * px[None, :, :]
    return single[3] + single[2] * unit + light


def _likelihood_ratio(data: np.ndarray, one: np.ndarray, two: np.ndarray, valid: np.ndarray,
                      noise: NoiseModel) -> np.ndarray:
    """2 (log L_two - log L_one) per window: the Poisson deviance of the single model ``one``
    less that of the pair model ``two``, in electrons shifted by the read-noise variance
    (one logarithm per pixel: the data's own terms cancel)."""
    if noise.slope <= 0:
        var = max(noise.intercept, _MIN_VARIANCE)
        return (valid * ((data - one) ** 2 - (data - two) ** 2) / var).sum(axis=(0, 1))
    g = 1.0 / noise.slope
    shift = noise.intercept * g * g
    d = np.maximum(data * g + shift, 1e-6)
    m1 = np.maximum(one * g + shift, 1e-6)
    m2 = np.maximum(two * g + shift, 1e-6)
    return (valid * 2.0 * (d * np.log(m2 / m1) + (m1 - m2))).sum(axis=(0, 1))
