"""The counter's implementations as of main edf5514, kept as the reference the faster code is
checked against (tests/test_vision_pair_equivalence.py, tests/test_runs_detections.py) and
timed beside (benchmarks/bench_crowded.py): the two-emitter pair fit with (K, 7, P) float64
Jacobians, and spots.csv rows written through one dict per spot and csv.DictWriter.

Nothing in chipctl imports this module.
"""

from __future__ import annotations

import csv
from typing import IO, Any

import numpy as np

from chipctl.runs.detections import SPOT_COLUMNS
from chipctl.vision.background import NoiseModel
from chipctl.vision.fit import profiles, window_radius
from chipctl.vision.model import CountResult
from chipctl.vision.split import PAIR_MARGIN, Pair

_ITERATIONS = 4
_MIN_VARIANCE = 1.0 / 12.0
_EYE7 = np.eye(7)
_POS = [0, 1, 3, 4]  # position parameters: x1, y1, x2, y2
_MEASURES = (("amplitude", 3), ("snr", 3), ("photons", 1), ("crlb_x", 4), ("crlb_y", 4))


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


def spot_rows(entry: dict[str, Any], result: CountResult) -> list[dict[str, Any]]:
    """The spots.csv rows of one frame as dicts (the reference writer's input)."""
    where = {key: entry.get(key) for key in ("seq", "file", "step", "zone", "field", "channel")}
    threshold = _cell(result.threshold, 3)
    return [{**where, "x": round(float(s["x"]), 3), "y": round(float(s["y"]), 3),
             **{k: _cell(s[k], nd) for k, nd in _MEASURES}, "multiplicity": int(s["multiplicity"]),
             "threshold": threshold} for s in result.spots]


def _cell(value: float, digits: int) -> float | str:
    return round(float(value), digits) if np.isfinite(value) else ""


def write_spot_rows(handle: IO[str], entry: dict[str, Any], result: CountResult) -> None:
    """Append one frame's spots.csv rows through csv.DictWriter, as the recorder did."""
    csv.DictWriter(handle, SPOT_COLUMNS).writerows(spot_rows(entry, result))
