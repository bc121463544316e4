"""Brightness of a zone's vesicles: the counter's peak estimate and a truncated log-normal fit.

*Peak model.* The counter reports a spot's photons from the matched-filtered value at the local
maximum nearest the spot. For a vesicle of x photons at a random sub-pixel position that value
is the largest of the 3 x 3 filtered pixels around it, each x H(p) / kappa plus correlated
Gaussian noise (the kernel's autocorrelation). So the estimate is biased up near the threshold
(the maximum of noisy values) and a little low for bright spots (the peak falls between pixels).
Its mean and sd, in units of the noise s_N, are tabulated once per PSF by Monte Carlo from the
kernel alone (``peak_model``); the spot's own shot noise, c x, is added on top.

*Its inputs from a field's spots.* The noise unit s_N is the noise of the estimate, not the
noise the score was divided by: the score is skew-corrected (Cornish-Fisher), so photons / SNR
runs 2-3 % above s_N; ``estimate_noise`` undoes that correction. And the counter's background
(a median of block means, smoothed over 20 px) carries part of the spots' own light, so every
estimate of a field comes out low by the same ``background_carried`` photons: all the light of
a dim spot, less of a bright one (the median passes it over), a share 1 / (1 + r / 8) at
r = photons / s_N (``python -m benchmarks.peak_model`` measures it: within 0.02 from r = 10 up,
0.04-0.16 low at r = 4-6, the more so the sparser the spots). Only detected spots are summed,
so the light of those below the limit is missed too: on the peak test's frames 2.4 photons are
carried by the model against about 3.5 measured at the vesicles.

*Fit.* The photons of spots above a cut are a log-normal population seen through that peak
model, selected above the cut and thinned by crowding (a vesicle survives when no brighter one
lies within the merge radius). Maximum likelihood of (mu, ln sigma), conditional on the cut.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
from numpy.typing import NDArray
from scipy import optimize, special

from chipctl.analysis.crowding import BRIGHTER, Z_GRID, Z_WEIGHTS
from chipctl.vision.kernels import matched_kernel, pixel_psf

FloatArray = NDArray[np.float64]
MAX_FIT_SPOTS = 4000  # a random subset beyond this (the fit's precision is ample)
_R = np.concatenate([np.linspace(0.0, 12.0, 49), np.geomspace(12.5, 4000.0, 50)])
_GH_U, _GH_W = np.polynomial.hermite_e.hermegauss(24)
_GH_W = _GH_W / math.sqrt(2 * math.pi)


CARRY_SCALE = 8.0  # photons / s_N at which the background carries half of a spot's light


def estimate_noise(photons: FloatArray, snr: FloatArray, psf_sigma_px: float) -> float:
    """s_N (photons) of the estimate from a field's spots: photons over each score before its
    Cornish-Fisher skew correction (Poisson background; the skew follows from s_N itself)."""
    ratio = photons / snr
    ok = np.isfinite(ratio) & (ratio > 0)
    photons, snr = photons[ok], snr[ok]
    kernel = matched_kernel(psf_sigma_px)
    per_pixel = kernel.norm * 2 * math.pi * psf_sigma_px**2 / kernel.kappa
    s_n = float(np.median(ratio[ok]))
    for _ in range(2):
        skew = min(kernel.skew_gain * per_pixel / s_n, 0.3)  # pixel skew 1 / pixel sd (e)
        s_n = float(np.median(photons / _plain_score(snr, skew / 6.0)))
    return s_n


def _plain_score(score: FloatArray, k: float) -> FloatArray:
    """u with u - k (min(u, 8)^2 - 1) = score: the score before the skew correction."""
    if k <= 0:
        return score
    low = (1.0 - np.sqrt(np.maximum(1.0 - 4.0 * k * (score - k), 0.0))) / (2.0 * k)
    return np.where(score < 8.0 - 63.0 * k, low, score + 63.0 * k)


def background_carried(photons: FloatArray, noise: float, area_px: float,
                       psf_sigma_px: float) -> float:
    """Photons by which the counter's background lowers every estimate of a field: the share
    of the spots' light (``photons`` over ``area_px``) its median background carries."""
    kernel = matched_kernel(psf_sigma_px)
    share = 1.0 / (1.0 + np.maximum(photons, 0.0) / (CARRY_SCALE * noise))
    light = float(np.sum(share * np.maximum(photons, 0.0))) / area_px  # e per pixel
    return light * 2 * math.pi * psf_sigma_px**2 / kernel.kappa


@dataclass(frozen=True)
class PeakModel:
    """Mean and sd of the counter's photon estimate of an x-photon spot, in noise units."""

    r: FloatArray  # true photons / s_N
    mean: FloatArray  # E[estimate] / s_N (increasing)
    sd: FloatArray  # sd[estimate] / s_N, without the spot's own shot noise

    def moments(self, x: FloatArray, noise: FloatArray, shot: float
                ) -> tuple[FloatArray, FloatArray]:
        """Mean and sd (photons) of the estimate of x photons under noise s_N (broadcast)."""
        r = x / noise
        top = self.r[-1]
        slope = (self.mean[-1] - self.mean[-2]) / (self.r[-1] - self.r[-2])
        mean = np.where(r <= top, np.interp(r, self.r, self.mean),
                        self.mean[-1] + slope * (r - top))
        rel = self.sd[-1] / top  # beyond the table the sd grows in proportion (sub-pixel loss)
        sd = np.where(r <= top, np.interp(r, self.r, self.sd), rel * r)
        return mean * noise, np.sqrt((sd * noise) ** 2 + shot * np.maximum(x, 0.0))

    def true_photons(self, estimate: FloatArray, noise: FloatArray) -> FloatArray:
        """The x whose mean estimate is ``estimate`` (inverse of the mean)."""
        m = estimate / noise
        top = self.mean[-1]
        slope = (self.r[-1] - self.r[-2]) / (self.mean[-1] - self.mean[-2])
        r = np.where(m <= top, np.interp(m, self.mean, self.r), self.r[-1] + slope * (m - top))
        return np.asarray(r * noise)


def _filtered_profile(sigma: float, offsets: FloatArray) -> FloatArray:
    """H(p) / kappa at pixel offsets -1, 0, 1 (one axis) of a spot at sub-pixel offsets."""
    kernel = matched_kernel(sigma)
    half = kernel.ksize // 2
    grid = np.arange(-half - 1, half + 2)[None, :] - offsets[:, None]
    s = sigma * math.sqrt(2.0)
    psf = (special.erf((grid + 0.5) / s) - special.erf((grid - 0.5) / s)) * (
        sigma * math.sqrt(math.pi / 2.0))
    out = np.column_stack([psf[:, j:j + kernel.ksize] @ kernel.k1 for j in range(3)])
    centre = float(np.sum(kernel.kernel2d * pixel_psf(sigma, half)))
    return out / math.sqrt(centre)  # per axis: the product of two axes is H / kappa


def _noise_covariance(sigma: float) -> FloatArray:
    """Correlation of the normalised filtered noise over a 3 x 3 window (raster order)."""
    k2 = matched_kernel(sigma).kernel2d
    h, w = k2.shape
    cells = [(dy, dx) for dy in (-1, 0, 1) for dx in (-1, 0, 1)]

    def acf(dy: int, dx: int) -> float:
        a = k2[max(dy, 0):h + min(dy, 0), max(dx, 0):w + min(dx, 0)]
        b = k2[max(-dy, 0):h + min(-dy, 0), max(-dx, 0):w + min(-dx, 0)]
        return float((a * b).sum())

    cov = np.array([[acf(a[0] - b[0], a[1] - b[1]) for b in cells] for a in cells])
    return cov / cov[4, 4]


@lru_cache(maxsize=8)
def peak_model(psf_sigma_px: float, samples: int = 6000, seed: int = 2024) -> PeakModel:
    """The counter's peak estimate for a PSF, by Monte Carlo over position and noise."""
    rng = np.random.default_rng(seed)
    dx, dy = rng.uniform(-0.5, 0.5, samples), rng.uniform(-0.5, 0.5, samples)
    hx, hy = _filtered_profile(psf_sigma_px, dx), _filtered_profile(psf_sigma_px, dy)
    shape = (hy[:, :, None] * hx[:, None, :]).reshape(samples, 9)  # signal per unit r
    chol = np.linalg.cholesky(_noise_covariance(psf_sigma_px) + 1e-12 * np.eye(9))
    noise = rng.standard_normal((samples, 9)) @ chol.T
    peaks = np.max(_R[:, None, None] * shape[None, :, :] + noise[None, :, :], axis=2)
    mean = np.maximum.accumulate(peaks.mean(axis=1))
    return PeakModel(_R, mean, peaks.std(axis=1))


@dataclass(frozen=True)
class BrightnessFit:
    """Log-normal brightness (true photons) of a zone and channel."""

    mu: float  # mean of ln(photons)
    sigma: float  # sd of ln(photons)
    cov: tuple[tuple[float, float], tuple[float, float]]  # of (mu, ln sigma)
    n_spots: int
    converged: bool

    @property
    def theta(self) -> FloatArray:
        """(mu, ln sigma)."""
        return np.array([self.mu, math.log(self.sigma)])

    @property
    def median_photons(self) -> float:
        """Median brightness of the whole population."""
        return math.exp(self.mu)

    def fraction_above(self, photons: float) -> float:
        """Fraction of the population brighter than ``photons``."""
        if photons <= 0:
            return 1.0
        return float(special.ndtr((self.mu - math.log(photons)) / self.sigma))


@dataclass(frozen=True)
class Spots:
    """Spots above the fit cut, and per field the cut, noise and crowding."""

    photons: FloatArray
    field: NDArray[np.intp]
    cut: FloatArray  # per field
    noise: FloatArray  # per field: s_N
    crowding: FloatArray  # per field: a = rho pi r_m^2 of all vesicles
    shot: float
    peak: PeakModel

    def crowded(self, crowding: FloatArray) -> Spots:
        """The same spots under another crowding."""
        return Spots(self.photons, self.field, self.cut, self.noise, crowding, self.shot,
                     self.peak)

    def subset(self, keep: NDArray[np.intp]) -> Spots:
        """Some of the spots (same fields)."""
        return Spots(self.photons[keep], self.field[keep], self.cut, self.noise, self.crowding,
                     self.shot, self.peak)


def seen_above(theta: FloatArray, sp: Spots, level: FloatArray) -> FloatArray:
    """P(estimate > level_f | z) on the z grid, per field (rows)."""
    x = np.exp(theta[0] + math.exp(theta[1]) * Z_GRID)[None, :]
    mean, sd = sp.peak.moments(x, sp.noise[:, None], sp.shot)
    return np.asarray(special.ndtr((mean - level[:, None]) / sd))


def selection(theta: FloatArray, sp: Spots) -> FloatArray:
    """Per field: probability that a vesicle is seen above the cut and survives crowding."""
    survive = np.exp(-sp.crowding[:, None] * BRIGHTER[None, :])
    return np.asarray((seen_above(theta, sp, sp.cut) * survive) @ Z_WEIGHTS)


@dataclass(frozen=True)
class _Quadrature:
    """The parts of each spot's density integral that do not depend on the parameters."""

    log_x: FloatArray  # (spots, nodes); -inf where x <= 0
    const: FloatArray  # log of the noise kernel, the Jacobian and the weights


def _quadrature(sp: Spots) -> _Quadrature:
    """Nodes of the integral over x of f(x) T(x) N(y; m(x), v(x)), taken in w = m(x) by
    Gauss-Hermite around w = y (the integrand is then smooth for every spot)."""
    y = sp.photons[:, None]
    noise = sp.noise[sp.field][:, None]
    _, sd_y = sp.peak.moments(sp.peak.true_photons(y, noise), noise, sp.shot)
    w = y + sd_y * _GH_U[None, :]
    x = sp.peak.true_photons(w, noise)
    pos = x > 0
    xs = np.where(pos, x, 1.0)
    dx = np.maximum(sp.peak.true_photons(w + 1e-3 * noise, noise) - x, 1e-12) / (1e-3 * noise)
    _, sd_x = sp.peak.moments(xs, noise, sp.shot)
    const = (-0.5 * ((y - w) / sd_x) ** 2 + 0.5 * _GH_U[None, :] ** 2
             + np.log(sd_y / sd_x * dx / xs) + np.log(_GH_W)[None, :] - 0.5 * math.log(2 * math.pi))
    return _Quadrature(np.where(pos, np.log(xs), -np.inf), np.where(pos, const, -np.inf))


def _log_density(theta: FloatArray, sp: Spots, quad: _Quadrature) -> FloatArray:
    """ln density of each spot's estimate under (mu, ln sigma), crowding included."""
    sigma = math.exp(theta[1])
    z = (quad.log_x - theta[0]) / sigma
    crowd = sp.crowding[sp.field][:, None]
    with np.errstate(invalid="ignore"):
        log_f = quad.const - 0.5 * z**2 - theta[1] - crowd * special.ndtr(-z)
    return np.asarray(special.logsumexp(np.where(np.isfinite(quad.log_x), log_f, -np.inf),
                                        axis=1))


def _neg_loglik(theta: FloatArray, sp: Spots, quad: _Quadrature) -> float:
    sel = np.maximum(selection(theta, sp), 1e-300)[sp.field]
    return float(-np.sum(_log_density(theta, sp, quad)) + np.sum(np.log(sel)))


def _hessian(f: Callable[[FloatArray], float], x: FloatArray, step: float = 1e-3
             ) -> FloatArray:
    """Central-difference Hessian of a scalar function of 2 variables."""
    h = np.zeros((2, 2))
    for i in range(2):
        for j in range(2):
            ei, ej = np.eye(2)[i] * step, np.eye(2)[j] * step
            h[i, j] = (f(x + ei + ej) - f(x + ei - ej) - f(x - ei + ej) + f(x - ei - ej)) / (
                4 * step**2)
    return h


def fit_brightness(sp: Spots, start: BrightnessFit | None = None, rng_seed: int = 0
                   ) -> BrightnessFit:
    """Maximum-likelihood log-normal brightness of the spots above the cut."""
    if sp.photons.size > MAX_FIT_SPOTS:
        sp = sp.subset(np.random.default_rng(rng_seed).choice(sp.photons.size, MAX_FIT_SPOTS,
                                                              False))
    logs = np.log(np.maximum(sp.photons, 1e-9))
    theta0 = start.theta if start is not None else np.array(
        [float(np.median(logs)), math.log(max(float(np.std(logs)), 0.2))])
    quad = _quadrature(sp)
    res = optimize.minimize(_neg_loglik, theta0, args=(sp, quad), method="L-BFGS-B",
                            bounds=[(None, None), (-2.9, 1.4)])
    cov = np.full((2, 2), np.nan)
    hess = _hessian(lambda t: _neg_loglik(t, sp, quad), res.x)
    if np.all(np.isfinite(hess)) and np.linalg.det(hess) > 0 and hess[0, 0] > 0:
        cov = np.linalg.inv(hess)
    return BrightnessFit(float(res.x[0]), math.exp(float(res.x[1])),
                         ((cov[0, 0], cov[0, 1]), (cov[1, 0], cov[1, 1])),
                         int(sp.photons.size), bool(res.success and np.all(np.isfinite(cov))))
