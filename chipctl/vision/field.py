"""The normalised matched-filter field: a local SNR that is standard normal under noise.

score = CF((filtered - background) / sd), where sd comes from the Poisson + read-noise model
and CF removes the skewness of Poisson noise (Cornish-Fisher), then the field's empirical
zero and scale (robust fit to its lower quantiles, where spots do not reach) are divided out.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from chipctl.vision import detect
from chipctl.vision.background import NoiseModel, low_res_background, noise_model
from chipctl.vision.kernels import MatchedKernel, matched_kernel
from chipctl.vision.model import CameraCalibration

_INTEGER_FILTER_MIN_SD = 2.5  # filter integer frames in integer arithmetic above this sd
_SAMPLE_STRIDE = 4
_QUANTILES = np.array([0.02, 0.05, 0.1, 0.2, 0.3, 0.4])
_NORMAL_Q = np.array([-2.053749, -1.644854, -1.281552, -0.841621, -0.524401, -0.253347])


@dataclass
class Field:
    """Per-frame maps describing the normalised matched-filter field."""

    raw: np.ndarray
    filtered: np.ndarray
    bg_low: np.ndarray  # background, ADU, 1/8 resolution
    sd_low: np.ndarray  # sd of the filtered value under noise, ADU
    skew_low: np.ndarray  # skewness of the filtered value under noise
    noise: NoiseModel
    kernel: MatchedKernel
    zero: float = 0.0
    scale: float = 1.0

    def sample(self, ys: np.ndarray, xs: np.ndarray) -> np.ndarray:
        """Background, noise sd and skewness maps at pixels (ys, xs): (3, N)."""
        maps = np.stack([self.bg_low, self.sd_low, self.skew_low])
        return detect.sample_low(maps, self.raw.shape, ys, xs)

    def scores(self, ys: np.ndarray, xs: np.ndarray, values: np.ndarray,
               maps: np.ndarray | None = None) -> np.ndarray:
        """Normalised scores of filtered ``values`` at pixels (ys, xs) (``maps``: their
        :meth:`sample`, when already taken)."""
        bg, sd, skew = self.sample(ys, xs) if maps is None else maps
        return (cornish_fisher((values - bg) / sd, skew) - self.zero) / self.scale

    def gate(self, t_min: float, minima: bool = False) -> detect.Gate:
        """Full-resolution gate on filtered values: every pixel whose score is beyond
        ``t_min`` (below ``-t_min`` for minima) is at or beyond the gate."""
        sign = -1.0 if minima else 1.0
        low = self.bg_low + (self.zero + sign * t_min * self.scale) * self.sd_low
        if self.filtered.dtype != np.float32:  # integer output; margin for rounded upsampling
            top = float(np.iinfo(self.filtered.dtype).max)
            low = np.floor(low) - 1.0 if not minima else np.ceil(low) + 1.0
            low = np.clip(low, 0, top).astype(self.filtered.dtype)
        return detect.Gate(low, self.filtered.shape)


def cornish_fisher(z: np.ndarray, skew: np.ndarray) -> np.ndarray:
    """Map a skewed standardised variable to an approximately standard normal one.

    The correction is frozen beyond |z| = 8 so that the map stays monotone.
    """
    zc = np.clip(z, -8.0, 8.0)
    return z - np.clip(skew, 0.0, 0.3) / 6.0 * (zc * zc - 1.0)


def build_field(raw: np.ndarray, psf_sigma: float, cal: CameraCalibration | None,
                background_px: float = 20.0) -> Field:
    """Background, noise model, matched filter and empirical normalisation of a frame."""
    kernel = matched_kernel(psf_sigma)
    bg_low = low_res_background(raw, background_px)
    noise = noise_model(raw, bg_low, cal)
    var_low = noise.variance(bg_low)
    sd_low = (np.sqrt(var_low) * kernel.norm).astype(np.float32)
    integer_ok = float(sd_low.min()) >= _INTEGER_FILTER_MIN_SD  # rounding would not show
    filtered = detect.matched_filter(raw, kernel, integer_ok)
    if noise.slope > 0:  # Poisson: pixel skewness = slope / sd in ADU
        pixel_skew = noise.slope / np.sqrt(var_low)
    else:  # intensity-independent model (uncalibrated flat frame): measure it
        pixel_skew = np.full_like(var_low, _measured_pixel_skew(raw, bg_low, var_low))
    skew_low = (kernel.skew_gain * pixel_skew).astype(np.float32)
    fld = Field(raw, filtered, bg_low, sd_low, skew_low, noise, kernel)
    fld.zero, fld.scale = _empirical_normalisation(fld)
    return fld


def _measured_pixel_skew(raw: np.ndarray, bg_low: np.ndarray, var_low: np.ndarray) -> float:
    """Pixel skewness from the curvature of the lower quantiles of the raw residuals."""
    sub = raw[1::2, 1::2].astype(np.float32)
    if sub.size < 4096:
        return 0.0
    if raw.dtype.kind in "ui":  # dither integer levels so that quantiles are continuous
        sub += np.random.default_rng(0).random(sub.shape, np.float32) - 0.5
    size = (sub.shape[1], sub.shape[0])
    bg = cv2.resize(bg_low, size, interpolation=cv2.INTER_LINEAR)
    var = cv2.resize(var_low.astype(np.float32), size, interpolation=cv2.INTER_LINEAR)
    sd = np.sqrt(var + (1.0 / 12.0 if raw.dtype.kind in "ui" else 0.0))
    z = ((sub - bg) / sd).ravel()
    p = np.array([0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.3, 0.4, 0.5])
    zp = np.array([-2.878, -2.576, -2.326, -2.054, -1.645, -1.282, -0.842, -0.524, -0.253, 0.0])
    ks = (p * (z.size - 1)).astype(np.intp)
    q = np.partition(z, ks)[ks]
    design = np.column_stack([np.ones_like(zp), zp, zp**2 - 1.0])
    a, b, c = np.linalg.lstsq(design, q, rcond=None)[0]
    return float(np.clip(6.0 * c / b, 0.0, 1.0)) if b > 0 else 0.0


def _subsample(img: np.ndarray) -> np.ndarray:
    """Every 8th row and column (4th for small frames), as float32."""
    s = _SAMPLE_STRIDE if img.size < 2**20 else 2 * _SAMPLE_STRIDE
    return img[s // 2::s, s // 2::s].astype(np.float32)


def lower_quantiles(values: np.ndarray, probs: np.ndarray) -> np.ndarray:
    """Order statistics at increasing ``probs`` (all of them low): one partition per
    quantile on a shrinking prefix, much cheaper than one partition with many kth."""
    ks = (np.asarray(probs) * (values.size - 1)).astype(np.intp)
    out = np.empty(len(ks))
    part, end = values, values.size
    for i in range(len(ks) - 1, -1, -1):
        part = np.partition(part[:max(end, ks[i] + 1)], ks[i])  # the smallest values only
        out[i] = part[ks[i]]
        end = ks[i]
    return out


def _empirical_normalisation(fld: Field) -> tuple[float, float]:
    """Zero and scale of the field from a straight-line fit to its lower quantiles."""
    sub = _subsample(fld.filtered)
    if sub.size < 1024:
        return 0.0, 1.0
    size = (sub.shape[1], sub.shape[0])
    maps = [m if m.shape == sub.shape else cv2.resize(m, size, interpolation=cv2.INTER_LINEAR)
            for m in (fld.bg_low, fld.sd_low, fld.skew_low)]
    z = cornish_fisher((sub - maps[0]) / maps[1], maps[2]).ravel()
    scale, zero = np.polyfit(_NORMAL_Q, lower_quantiles(z, _QUANTILES), 1)
    if not (np.isfinite(scale) and 0.5 <= scale <= 5.0):
        return 0.0, 1.0
    return float(zero), float(scale)
