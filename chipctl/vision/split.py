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
    pair window (radius ``window_radius(sigma) + PAIR_MARGIN``)."""
    r = window_radius(sigma) + PAIR_MARGIN
    data, valid = _windows(raw, ys, xs, r)
    light = others.reshape(-1, len(ys)).T.astype(np.float64)
    theta = _start(data, valid, single, ys, xs, r)
    for _ in range(_ITERATIONS):
        lam, jac = _model(theta, sigma, r, light)
        theta = _step(theta, data, valid, lam, jac, noise, r)
    lam, jac = _model(theta, sigma, r, light)
    wgt = valid / np.maximum(noise.slope * lam + noise.intercept, _MIN_VARIANCE)
    info = (jac * wgt[:, None, :]) @ jac.transpose(0, 2, 1)
    var = np.diagonal(np.linalg.inv(info + 1e-9 * np.eye(7)), axis1=1, axis2=2).T
    one = _single_model(single, ys, xs, sigma, r, light)
    lr = _deviance(data, one, valid, noise) - _deviance(data, lam, valid, noise)
    sd = np.sqrt(np.maximum(var, 0.0))
    return Pair(x=xs + theta[[0, 3]], y=ys + theta[[1, 4]], amplitude=theta[[2, 5]],
                background=theta[6], crlb_x=sd[[0, 3]], crlb_y=sd[[1, 4]],
                crlb_amplitude=sd[[2, 5]], lr=lr)


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
    """(K, P) float64 windows (P = (2r+1)^2, raster order) and their in-frame masks."""
    h, w = raw.shape
    d = np.arange(-r, r + 1)
    yy = (ys[:, None, None] + d[None, :, None]) + np.zeros((1, 1, d.size), np.intp)
    xx = (xs[:, None, None] + d[None, None, :]) + np.zeros((1, d.size, 1), np.intp)
    valid = ((yy >= 0) & (yy < h) & (xx >= 0) & (xx < w)).reshape(len(ys), -1)
    data = raw[np.clip(yy, 0, h - 1), np.clip(xx, 0, w - 1)].reshape(len(ys), -1)
    return np.where(valid, data, 0.0).astype(np.float64), valid.astype(np.float64)


def _start(data: np.ndarray, valid: np.ndarray, single: np.ndarray, ys: np.ndarray,
           xs: np.ndarray, r: int) -> np.ndarray:
    """Start (7, K): the two components on the principal axis of the excess light,
    separated according to its excess variance, each with 0.6 of the single amplitude."""
    d = np.arange(-r, r + 1, dtype=float)
    ux = (np.zeros((d.size, 1)) + d[None, :]).ravel()[None, :] - (single[0] - xs)[:, None]
    uy = (d[:, None] + np.zeros((1, d.size))).ravel()[None, :] - (single[1] - ys)[:, None]
    light = np.maximum(data - single[3][:, None], 0.0) * valid
    total = np.maximum(light.sum(axis=1), 1e-9)
    sxx, syy, sxy = ((light * a * b).sum(axis=1) / total for a, b in
                     ((ux, ux), (uy, uy), (ux, uy)))
    angle = 0.5 * np.arctan2(2.0 * sxy, sxx - syy)
    spread = np.sqrt(0.25 * (sxx - syy) ** 2 + sxy**2)
    half = np.clip(np.sqrt(2.0 * spread), 0.6, 2.0)
    ox, oy = half * np.cos(angle), half * np.sin(angle)
    cx, cy = single[0] - xs, single[1] - ys
    amp = np.maximum(single[2], 1e-3) * 0.6
    return np.stack([cx + ox, cy + oy, amp, cx - ox, cy - oy, amp, single[3]])


def _model(theta: np.ndarray, sigma: float, r: int, light: np.ndarray
           ) -> tuple[np.ndarray, np.ndarray]:
    """Mean (K, P) and Jacobian (K, 7, P) of the two-emitter model."""
    k = theta.shape[1]
    w = 2 * r + 1
    p, dp = profiles(theta[[0, 1, 3, 4]].ravel(), sigma, r)
    p = p.astype(np.float64).reshape(w, 4, k).transpose(1, 2, 0)  # (4, K, w)
    dp = dp.astype(np.float64).reshape(w, 4, k).transpose(1, 2, 0)
    jac = np.empty((k, 7, w, w))
    jac[:, 6] = 1.0
    lam = theta[6][:, None] + light
    for c, (ix, iy) in enumerate(((0, 1), (2, 3))):
        amp = theta[3 * c + 2][:, None, None]
        unit = jac[:, 3 * c + 2]
        np.multiply(p[iy][:, :, None], p[ix][:, None, :], out=unit)
        np.multiply(p[iy][:, :, None], dp[ix][:, None, :] * amp, out=jac[:, 3 * c])
        np.multiply(dp[iy][:, :, None] * amp, p[ix][:, None, :], out=jac[:, 3 * c + 1])
        lam = lam + (amp * unit).reshape(k, -1)
    return lam, jac.reshape(k, 7, -1)


def _step(theta: np.ndarray, data: np.ndarray, valid: np.ndarray, lam: np.ndarray,
          jac: np.ndarray, noise: NoiseModel, r: int) -> np.ndarray:
    """One damped Fisher-scoring step, positions kept inside the window."""
    wgt = valid / np.maximum(noise.slope * lam + noise.intercept, _MIN_VARIANCE)
    wj = jac * wgt[:, None, :]
    info = wj @ jac.transpose(0, 2, 1)
    score = wj @ (data - lam)[:, :, None]
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
    unit = (py.T[:, :, None].astype(np.float64) * px.T[:, None, :]).reshape(len(xs), -1)
    return single[3][:, None] + single[2][:, None] * unit + light


def _deviance(data: np.ndarray, lam: np.ndarray, valid: np.ndarray, noise: NoiseModel
              ) -> np.ndarray:
    """Poisson deviance per window, in electrons shifted by the read-noise variance."""
    if noise.slope <= 0:
        var = max(noise.intercept, _MIN_VARIANCE)
        return (valid * (data - lam) ** 2 / var).sum(axis=1)
    g = 1.0 / noise.slope
    shift = noise.intercept * g * g
    d = np.maximum(data * g + shift, 1e-6)
    m = np.maximum(lam * g + shift, 1e-6)
    return (valid * 2.0 * (d * np.log(d / m) - (d - m))).sum(axis=1)
