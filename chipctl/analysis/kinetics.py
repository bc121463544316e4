"""Capture kinetics of one field during one flow step: first-order approach to saturation.

N(t) = N0 + A (1 - exp(-k t)), t from the start of the flow. Captured vesicles stay, so the
increments between successive frames are independent Poisson arrivals with means
r h_i(k), where r = A k is the initial capture rate and h_i(k) = (exp(-k t_{i-1}) - exp(-k t_i))
/ k (-> t_i - t_{i-1} as k -> 0: the linear regime is the limit k = 0 of the same model).

The fit is quasi-Poisson on the increments (variance phi x mean, phi from the residuals, at
least 1), plus the noise each frame's count has of its own (missed and false spots), which makes
successive increments anti-correlated (estimated from the residuals' lag-1 covariance). For each
k the model is linear in r (generalised least squares), so k, r and the plateau A = r / k all
get profile-likelihood intervals (the union over k of the r intervals whose k is admissible).
When k's interval reaches 0 the data show no curvature: the
regime is *linear*, k has an upper limit only and the plateau a lower limit only. A negative or
non-significant initial slope is flagged.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy import optimize, stats

FloatArray = NDArray[np.float64]
Regime = Literal["saturating", "linear", "no capture"]


@dataclass(frozen=True)
class KineticsFit:
    """Capture kinetics of a field, rates per minute.

    ``k_ci95`` has a lower end of 0 in the linear regime (an upper limit), ``plateau_ci95`` an
    upper end of inf (a lower limit). Rates per mm^2 divide by the zone area inside the field.
    """

    regime: Regime
    points: int
    rate_per_min: float  # initial capture rate r = A k (counts per minute)
    rate_ci95: tuple[float, float]
    k_per_min: float  # rate constant (0 in the linear regime: not measurable)
    k_ci95: tuple[float, float]
    plateau: float  # N0 + A, the count at saturation (inf in the linear regime)
    plateau_ci95: tuple[float, float]
    offset: float  # N0, the count at the start of the flow
    dispersion: float
    slope_z: float  # capture over its standard error (fit against no capture)
    span_min: float  # from the start of the flow to the last frame
    imaged_area_mm2: float | None = None
    flags: tuple[str, ...] = ()

    @property
    def rate_per_mm2_min(self) -> float | None:
        """Initial capture rate per mm^2 of zone."""
        return self.rate_per_min / self.imaged_area_mm2 if self.imaged_area_mm2 else None

    @property
    def plateau_per_mm2(self) -> float | None:
        """Saturation density (per mm^2 of zone): an estimate of the site-limited capacity."""
        if not self.imaged_area_mm2 or not math.isfinite(self.plateau):
            return None
        return self.plateau / self.imaged_area_mm2


def _basis(t: FloatArray, k: float) -> FloatArray:
    """h_i(k) for the intervals between successive times (t in minutes)."""
    if k <= 0:
        return np.diff(t)
    return np.asarray((np.exp(-k * t[:-1]) - np.exp(-k * t[1:])) / k)


def _wls(d: FloatArray, h: FloatArray, w: FloatArray) -> tuple[float, float, float]:
    """Generalised least squares d = r h with inverse covariance ``w``: (r, residual sum of
    squares, h' w h)."""
    s = float(h @ w @ h)
    r = float(h @ w @ d / s) if s > 0 else 0.0
    e = d - r * h
    return r, float(e @ w @ e), s


def _inverse_covariance(mean: FloatArray, frame_var: FloatArray) -> FloatArray:
    """Inverse covariance of the increments: Poisson arrivals (``mean``) plus each frame's own
    count noise (``frame_var`` per frame), which makes successive increments anti-correlated."""
    m = mean.size
    diff = np.eye(m + 1)[1:] - np.eye(m + 1)[:-1]  # increments from frame counts
    cov = np.diag(np.maximum(mean, 1.0)) + diff @ np.diag(frame_var) @ diff.T
    return np.asarray(np.linalg.inv(cov))


def _frame_noise(e: FloatArray, mean: FloatArray, counts: FloatArray) -> FloatArray:
    """Per-frame count variance, kappa x count (missed and false spots scale with the count),
    over the Poisson dispersion, by moments of the residuals: E[e_i^2] = phi mean_i +
    kappa (N_i-1 + N_i) and E[e_i e_(i+1)] = -kappa N_i (least squares for phi and kappa)."""
    if e.size < 4:
        return np.zeros(counts.size)
    lam, n = np.maximum(mean, 1.0), np.maximum(counts, 1.0)
    rows = np.vstack([np.column_stack([lam, n[:-1] + n[1:]]),
                      np.column_stack([np.zeros(e.size - 1), -n[1:-1]])])
    target = np.concatenate([e**2, e[:-1] * e[1:]])
    scale = np.concatenate([lam + n[:-1] + n[1:], n[1:-1]])  # rows of like precision
    (phi, kappa), *_ = np.linalg.lstsq(rows / scale[:, None], target / scale, rcond=None)
    return np.asarray(max(float(kappa), 0.0) / max(float(phi), 1.0) * n)


@dataclass(frozen=True)
class _Profile:
    k: FloatArray
    r: FloatArray
    rss: FloatArray
    info: FloatArray  # sum w h^2


@dataclass(frozen=True)
class _Data:
    t: FloatArray  # minutes from the start of the flow
    d: FloatArray  # increments between frames
    w: FloatArray  # inverse covariance of the increments (up to the dispersion)

    def rss(self, k: float) -> float:
        return _wls(self.d, _basis(self.t, k), self.w)[1]

    def profile(self, grid: FloatArray) -> _Profile:
        fits = [_wls(self.d, _basis(self.t, float(k)), self.w) for k in grid]
        return _Profile(grid, np.array([f[0] for f in fits]), np.array([f[1] for f in fits]),
                        np.array([f[2] for f in fits]))


def _grid(t: FloatArray) -> FloatArray:
    span = float(t[-1] - t[0]) or 1.0
    return np.concatenate([[0.0], np.geomspace(1e-3 / span, 1e2 / span, 300)])


def _best_k(data: _Data, prof: _Profile) -> float:
    """The rate constant of least residual (grid, then refined) among positive rates."""
    ok = prof.r > 0
    if not np.any(ok):
        return 0.0
    i = int(np.argmin(np.where(ok, prof.rss, np.inf)))
    if i == 0 or i == prof.k.size - 1:
        return float(prof.k[i])
    lo, hi = math.log(prof.k[max(i - 1, 1)]), math.log(prof.k[i + 1])
    res = optimize.minimize_scalar(lambda lk: data.rss(math.exp(lk)), bounds=(lo, hi),
                                   method="bounded", options={"xatol": 1e-6})
    return float(math.exp(res.x)) if res.fun <= prof.rss[i] else float(prof.k[i])


def _k_interval(data: _Data, prof: _Profile, k_hat: float, level: float
                ) -> tuple[float, float]:
    """Where the profile residual crosses ``level`` below and above k_hat (0 and inf if not)."""
    def crossing(a: float, b: float) -> float:
        return float(optimize.brentq(lambda k: data.rss(k) - level, a, b, xtol=1e-9 * b))

    below, above = prof.k[prof.k < k_hat], prof.k[prof.k > k_hat]
    outside_lo = below[[data.rss(float(k)) > level for k in below]] if below.size else below
    outside_hi = above[[data.rss(float(k)) > level for k in above]] if above.size else above
    k_lo = crossing(float(outside_lo.max()), k_hat) if outside_lo.size else 0.0
    k_hi = crossing(k_hat, float(outside_hi.min())) if outside_hi.size else math.inf
    return k_lo, k_hi


def fit_kinetics(t_s: ArrayLike, counts: ArrayLike, t0_s: float = 0.0,
                 imaged_area_mm2: float | None = None) -> KineticsFit:
    """Fit N(t) = N0 + A (1 - exp(-k t)) to counts of one field (times in s, flow starts at
    ``t0_s``)."""
    order = np.argsort(np.asarray(t_s, float))
    t = (np.asarray(t_s, float)[order] - t0_s) / 60.0
    n = np.asarray(counts, float)[order]
    if t.size < 3 or len(set(t.tolist())) < 3:
        raise ValueError("a kinetics fit needs counts at three or more different times")
    d = np.diff(n)
    slope = float(np.sum(d) / np.sum(np.diff(t)))
    data = _Data(t, d, _inverse_covariance(slope * np.diff(t), np.zeros(n.size)))
    for _ in range(3):  # covariance from the best model so far (quasi-Poisson + frame noise)
        k_hat = _best_k(data, data.profile(_grid(t)))
        r_hat = _wls(d, _basis(t, k_hat), data.w)[0]
        mean = r_hat * _basis(t, k_hat)
        data = _Data(t, d, _inverse_covariance(mean, _frame_noise(d - mean, mean, n)))
    return _summarise(data, n, slope, imaged_area_mm2)


def _summarise(data: _Data, n: FloatArray, slope: float, area: float | None) -> KineticsFit:
    t, dof = data.t, data.t.size - 3
    prof = data.profile(_grid(t))
    k_hat = _best_k(data, prof)
    r_hat, rss_min, _ = _wls(data.d, _basis(t, k_hat), data.w)
    # Poisson arrivals are at least Poisson-variable: below that the variance is known, not
    # estimated, and the chi-squared quantile applies; above it the F quantile for k - 3 dof
    phi = rss_min / dof if dof > 0 else 1.0
    quantile = float(stats.f.ppf(0.95, 1, dof)) if phi > 1 else float(stats.chi2.ppf(0.95, 1))
    phi = max(phi, 1.0)
    level = rss_min + quantile * phi
    k_lo, k_hi = _k_interval(data, prof, k_hat, level)
    fine = np.concatenate([[0.0] if k_lo == 0 else [],
                           np.geomspace(max(k_lo, prof.k[1]), min(k_hi, prof.k[-1]), 200)])
    r_lo, r_hi, a_lo, a_hi = _unions(data.profile(fine), phi, quantile, rss_min)
    z = math.copysign(math.sqrt(max(float(data.d @ data.w @ data.d) - rss_min, 0.0) / phi),
                      r_hat if slope >= 0 else -1.0)
    flags = _slope_flags(slope, z)
    n0 = float(n[0] - r_hat * _basis(np.array([0.0, t[0]]), k_hat)[0])
    regime: Regime = "no capture" if flags else "saturating"
    if flags:  # no capture to speak of: no rate constant either, never a made-up one
        k_hat, a_hi = 0.0, math.inf
    elif k_lo <= 0:
        regime, k_hat, a_hi = "linear", 0.0, math.inf
        flags = ("no plateau in view: rate constant is an upper limit",)
    elif math.isinf(k_hi):
        flags = ("saturated before the second frame: rate constant is a lower limit",)
    plateau = n0 + r_hat / k_hat if k_hat > 0 else math.inf
    return KineticsFit(regime, int(t.size), r_hat, (r_lo, r_hi), k_hat, (k_lo, k_hi), plateau,
                       (n0 + a_lo, n0 + a_hi), n0, phi, z, float(t[-1]), area, flags)


def _slope_flags(slope: float, z: float) -> tuple[str, ...]:
    if slope < 0:
        return (f"negative slope ({slope:.3g} per min): vesicles lost or bleached between "
                "frames",)
    if z < 1.96:
        return (f"capture not significant ({z:.1f} standard errors above none)",)
    return ()


def _unions(prof: _Profile, phi: float, quantile: float, rss_min: float
            ) -> tuple[float, float, float, float]:
    """Profile intervals of r and of A = r / k: unions over the admissible k."""
    room = quantile * phi - (prof.rss - rss_min)
    admissible = room >= -1e-9 * max(rss_min, 1.0)
    if not admissible.any():
        return 0.0, 0.0, 0.0, math.inf
    half = np.sqrt(np.maximum(room, 0.0) / np.maximum(prof.info, 1e-300))
    lo, hi = (prof.r - half)[admissible], (prof.r + half)[admissible]
    k = prof.k[admissible]
    positive = k > 0  # k = 0 is an infinite plateau: it bounds A from above only
    a_lo = float(np.min(lo[positive] / k[positive])) if positive.any() else math.inf
    a_hi = float(np.max(hi[positive] / k[positive])) if positive.all() else math.inf
    return float(max(lo.min(), 0.0)), float(hi.max()), max(a_lo, 0.0), a_hi
