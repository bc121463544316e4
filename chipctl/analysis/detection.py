"""Detection efficiency measured from the data, per zone and channel, with its uncertainty.

The counter keeps a spot when its matched-filter score, the filtered signal over the filtered
noise sd, exceeds the frame's threshold t. In photons (detected photoelectrons of the whole spot):

- *noise model*: a spot's photon estimate carries noise s_N = sqrt(background + read_noise^2)
  |k| 2 pi sigma^2 / kappa (|k| the filter's L2 norm, kappa its response to a unit-peak PSF),
  plus the spot's own shot noise c N; its mean follows the counter's peak model
  (``brightness``: a little high near the threshold, 2 % low for bright spots), less the light
  of the field's spots its background carried (``FieldNoise.carried_photons``, added back to
  every estimate and limit before the fit);
- *limit of detection*: N_lod = t s_N photons, from the camera calibration, background and PSF,
  or per field from the spots themselves (t x photons / SNR is the noise the counter used);
- *brightness*: the detected spots' photons are a log-normal population seen through that noise.
  Near the limit the counter's own selection is not a clean cut (local background, the maximum
  of a noisy peak), so the fit uses only spots above a cut of its own, ``CUT_MARGIN`` noise sd
  above the field's highest local limit, where every vesicle seen that bright was counted.
  Maximum likelihood of (mu, sigma), conditional on that cut, extrapolates the population below
  it: estimated total = (spots above the cut) / P(above the cut), with the uncertainty of the
  parameters (observed information) and of the share above the cut (binomial);
- *crowding*: where a brighter vesicle lies within the merge radius of a dimmer one the counter
  sees one spot (``crowding``); the density of all vesicles in each field is solved from its
  counted density and the detection curve.

The result says which number is which: *detected* spots, and the *estimated total above N
photons* (N = 0: the whole log-normal population, extrapolated below the limit).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy import special

from chipctl.analysis.brightness import (
    BrightnessFit,
    Spots,
    background_carried,
    estimate_noise,
    fit_brightness,
    peak_model,
    seen_above,
    selection,
)
from chipctl.analysis.crowding import (
    MERGE_RADIUS_RSD,
    Z_GRID,
    counted_share,
    merge_radius_px,
    solve_crowding,
)
from chipctl.analysis.uncertainty import Factor
from chipctl.vision.kernels import matched_kernel, pixel_psf

FloatArray = NDArray[np.float64]
MIN_SPOTS = 50  # fewer above the cut: the brightness distribution is not fitted
CUT_MARGIN = 0.5  # noise sd between the highest local limit and the fit's cut


@dataclass(frozen=True)
class SpotNoise:
    """Noise of a spot's photon estimate under the counter's matched filter."""

    psf_sigma_px: float
    background_e: float = 0.0  # per pixel per frame
    read_noise_e: float = 0.0

    def _constants(self) -> tuple[float, float, float]:
        kernel = matched_kernel(self.psf_sigma_px)
        psf = pixel_psf(self.psf_sigma_px, kernel.ksize // 2)
        area = 2 * math.pi * self.psf_sigma_px**2  # photons per unit continuous peak
        shot = area * float(np.sum(kernel.kernel2d**2 * psf)) / kernel.kappa**2
        return kernel.kappa, kernel.norm, shot

    @property
    def sd_photons(self) -> float:
        """Standard deviation of a spot's photon estimate from background and read noise."""
        kappa, norm, _ = self._constants()
        pixel_sd = math.sqrt(max(self.background_e, 0.0) + self.read_noise_e**2)
        return pixel_sd * norm * 2 * math.pi * self.psf_sigma_px**2 / kappa

    @property
    def shot_factor(self) -> float:
        """Variance added per photon of the spot itself (its shot noise through the filter)."""
        return self._constants()[2]

    def limit_photons(self, threshold: float) -> float:
        """Photons of a spot whose expected score equals the detection threshold."""
        return threshold * self.sd_photons


def photons_from_amplitude(amplitude_adu: ArrayLike, e_per_adu: float, psf_sigma_px: float
                           ) -> FloatArray:
    """A spot's photons from the counter's amplitude (peak ADU of a unit-peak Gaussian PSF)."""
    return np.asarray(amplitude_adu, float) * e_per_adu * 2 * math.pi * psf_sigma_px**2


@dataclass(frozen=True)
class FieldNoise:
    """One field of a zone in one channel: its limit of detection, noise and zone area."""

    limit_photons: float  # the highest local limit of detection in the field
    noise_photons: float  # typical sd of a spot's photon estimate there
    area_px: float  # zone area inside the field
    carried_photons: float = 0.0  # every estimate is this much low (the background's share)

    @classmethod
    def from_spots(cls, photons: ArrayLike, snr: ArrayLike, threshold: float, area_px: float,
                   psf_sigma_px: float, quantile: float = 0.95) -> FieldNoise:
        """From the field's spots: photons / SNR is the noise the counter used at each spot
        (the limit), the same before the score's skew correction the estimate's noise, and
        their light the background carried."""
        p, s = np.asarray(photons, float), np.asarray(snr, float)
        ratio = p / s
        ratio = ratio[np.isfinite(ratio) & (ratio > 0)]
        if ratio.size == 0:
            raise ValueError("no spots to measure the noise from: use FieldNoise.from_model")
        noise = estimate_noise(p, s, psf_sigma_px)
        return cls(threshold * float(np.quantile(ratio, quantile)), noise, area_px,
                   background_carried(p[np.isfinite(p)], noise, area_px, psf_sigma_px))

    @classmethod
    def from_model(cls, noise: SpotNoise, threshold: float, area_px: float) -> FieldNoise:
        """From the camera calibration, background and PSF (a uniform background)."""
        return cls(noise.limit_photons(threshold), noise.sd_photons, area_px)


@dataclass(frozen=True)
class DetectionEstimate:
    """Detected spots of a zone's fields in one channel, and the estimated vesicles there.

    ``counted_fraction`` is detected / estimated total above ``floor_photons`` (brightness
    above the limit of detection x survival of crowding); ``measured`` is False when too few
    spots were bright enough to fit and no fit (e.g. pooled over the zones of the channel) was
    supplied: then only crowding is corrected and the estimate is a lower bound.
    """

    detected: int
    limit_photons: float  # median over the fields
    floor_photons: float
    estimated_total: float
    counted_fraction: float
    counted_fraction_rsd: float
    brightness_fraction: float
    crowding_fraction: float
    merge_radius_px: float
    brightness: BrightnessFit | None
    measured: bool

    def describe(self) -> str:
        """Which number is which, in words."""
        above = (f"above {self.floor_photons:.0f} photons" if self.floor_photons > 0
                 else "of any brightness (log-normal extrapolated below the limit)")
        return (f"{self.detected} detected (above the {self.limit_photons:.0f}-photon limit of "
                f"detection); estimated total {above}: {self.estimated_total:.0f} "
                f"({100 * self.counted_fraction:.0f} % counted)")


def _totals(theta: FloatArray, sp: Spots, n_fields: int) -> tuple[float, float]:
    """Estimated vesicles in view: with crowding, and from brightness alone."""
    above = np.bincount(sp.field, minlength=n_fields).astype(float)
    with_crowd = np.maximum(selection(theta, sp), 1e-12)
    bright = np.maximum(selection(theta, sp.crowded(np.zeros_like(sp.crowding))), 1e-12)
    return float(np.sum(above / with_crowd)), float(np.sum(above / bright))


def _above_floor(theta: FloatArray, floor: float) -> float:
    if floor <= 0:
        return 1.0
    return float(special.ndtr((theta[0] - math.log(floor)) / math.exp(theta[1])))


def _solve(theta: FloatArray, sp: Spots, packing: FloatArray, limits: FloatArray) -> FloatArray:
    """Each field's crowding (all vesicles) from its counted packing, for a brightness."""
    detected = seen_above(theta, sp, limits)
    return np.array([solve_crowding(float(c), detected[f]) for f, c in enumerate(packing)])


def estimate_detection(photons: ArrayLike, field_index: ArrayLike, fields: Sequence[FieldNoise],
                       psf_sigma_px: float, floor_photons: float = 0.0,
                       brightness: BrightnessFit | None = None,
                       margin: float = CUT_MARGIN) -> DetectionEstimate:
    """Detection efficiency of one zone and channel from its detected spots.

    ``photons`` and ``field_index`` are per spot; ``fields`` describes each field. A
    ``brightness`` fit (e.g. pooled over the zones of a channel) is used instead of fitting
    these spots when given.
    """
    y = np.asarray(photons, float).ravel()
    index = np.asarray(field_index, np.intp).ravel()
    if not fields or min(f.area_px for f in fields) <= 0 or index.shape != y.shape:
        raise ValueError("detection needs one field index per spot and fields of area > 0")
    if index.size and (index.min() < 0 or index.max() >= len(fields)):
        raise ValueError(f"field index outside the {len(fields)} fields given")
    counts = np.bincount(index, minlength=len(fields)).astype(float)
    areas = np.array([f.area_px for f in fields])
    noise = np.array([f.noise_photons for f in fields])
    carried = np.array([f.carried_photons for f in fields])
    y = y + carried[index]  # photons as the peak model has them
    limits = np.array([f.limit_photons for f in fields]) + carried
    cut = limits + margin * noise
    keep = y > cut[index]
    radius = merge_radius_px(psf_sigma_px)
    packing = counts / areas * math.pi * radius**2
    sp = Spots(y[keep], index[keep], cut, noise, np.zeros(len(fields)),
               SpotNoise(psf_sigma_px).shot_factor, peak_model(psf_sigma_px))
    fit, sp = _fit_with_crowding(sp, packing, limits, brightness)
    lod, n = float(np.median(limits)), int(y.size)
    if fit is None:
        crowd = _unfitted_survival(counts, packing)
        return DetectionEstimate(n, lod, floor_photons, n / crowd, crowd, 0.0, 1.0, crowd,
                                 radius, None, False)
    theta = fit.theta
    total, bright_total = _totals(theta, sp, len(fields))
    counted = n / (total * _above_floor(theta, floor_photons))
    rsd = _fraction_rsd(theta, np.asarray(fit.cov), sp, floor_photons, packing, limits, n)
    return DetectionEstimate(n, lod, floor_photons, n / counted, counted, rsd,
                             n / bright_total, bright_total / total, radius, fit, True)


def _fit_with_crowding(sp: Spots, packing: FloatArray, limits: FloatArray,
                       given: BrightnessFit | None) -> tuple[BrightnessFit | None, Spots]:
    """The brightness fit and each field's crowding; each depends on the other, so iterate."""
    fit = given
    for _ in range(3 if np.max(packing, initial=0.0) > 1e-3 else 1):
        if given is None and sp.photons.size >= MIN_SPOTS:
            fit = fit_brightness(sp, start=fit)
        if fit is None:
            break
        sp = sp.crowded(_solve(fit.theta, sp, packing, limits))
    return fit, sp


def _unfitted_survival(counts: FloatArray, packing: FloatArray) -> float:
    """Counted share of the vesicles when their brightness is not known (all detectable)."""
    if not np.sum(counts):
        return 1.0
    ones = np.ones_like(Z_GRID)
    shares = [float(counted_share(np.array([solve_crowding(float(c), ones)]), ones)[0])
              for c in packing]
    return float(np.sum(counts) / np.sum(counts / np.maximum(shares, 1e-12)))


def _fraction_rsd(theta: FloatArray, cov: FloatArray, sp: Spots, floor: float,
                  packing: FloatArray, limits: FloatArray, n: int) -> float:
    """Relative sd of the counted fraction: brightness parameters, the share of spots above
    the cut (binomial) and the merge radius."""
    if not np.all(np.isfinite(cov)) or n == 0:
        return math.inf
    fields = sp.crowding.size

    def log_total(t: FloatArray, spots: Spots = sp) -> float:
        return math.log(_totals(t, spots, fields)[0] * _above_floor(t, floor))

    grad = np.array([(log_total(theta + e) - log_total(theta - e)) / 2e-4
                     for e in np.eye(2) * 1e-4])
    binomial = (1 - sp.photons.size / n) / max(sp.photons.size, 1)
    wider = sp.crowded(_solve(theta, sp, packing * (1 + MERGE_RADIUS_RSD) ** 2, limits))
    radius_term = log_total(theta, wider) - log_total(theta)
    return math.sqrt(float(grad @ cov @ grad) + binomial + radius_term**2)


def detection_factor(estimate: DetectionEstimate) -> Factor:
    """The counted fraction as a term of the concentration's error budget."""
    return Factor("detection", estimate.counted_fraction, estimate.counted_fraction_rsd,
                  estimate.describe())
