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

    def scores(self, ys: np.ndarray, xs: np.ndarray, values: np.ndarray) -> np.ndarray:
        """Normalised scores of filtered ``values`` at pixels (ys, xs)."""
        shape = self.raw.shape
        bg = detect.sample_low(self.bg_low, shape, ys, xs)
        sd = detect.sample_low(self.sd_low, shape, ys, xs)
        skew = detect.sample_low(self.skew_low, shape, ys, xs)
        return (cornish_fisher((values - bg) / sd, skew) - self.zero) / self.scale

    def gate(self, t_min: float) -> np.ndarray:
        """Full-resolution filtered-value gate at or below score ``t_min`` everywhere."""
        low = self.bg_low + (self.zero + t_min * self.scale) * self.sd_low
        gate = detect.upsample(low.astype(np.float32), self.filtered.shape)
        if self.filtered.dtype == np.float32:
            return gate
        top = float(np.iinfo(self.filtered.dtype).max)
        return np.clip(np.floor(gate), 0, top).astype(self.filtered.dtype)


def cornish_fisher(z: np.ndarray, skew: np.ndarray) -> np.ndarray:
    """Map a skewed standardised variable to an approximately standard normal one."""
    return z - skew / 6.0 * (z * z - 1.0)


def build_field(raw: np.ndarray, psf_sigma: float, cal: CameraCalibration | None) -> Field:
    """Background, noise model, matched filter and empirical normalisation of a frame."""
    kernel = matched_kernel(psf_sigma)
    bg_low = low_res_background(raw)
    noise = noise_model(raw, bg_low, cal)
    var_low = noise.variance(bg_low)
    sd_low = (np.sqrt(var_low) * kernel.norm).astype(np.float32)
    skew_low = (kernel.skew_gain * noise.slope / np.sqrt(var_low)).astype(np.float32)
    integer_ok = float(sd_low.min()) >= _INTEGER_FILTER_MIN_SD
    filtered = detect.matched_filter(raw, kernel, integer_ok)
    fld = Field(raw, filtered, bg_low, sd_low, skew_low, noise, kernel)
    fld.zero, fld.scale = _empirical_normalisation(fld)
    return fld


def _empirical_normalisation(fld: Field) -> tuple[float, float]:
    """Zero and scale of the field from a straight-line fit to its lower quantiles."""
    s = _SAMPLE_STRIDE
    sub = fld.filtered[s // 2::s, s // 2::s].astype(np.float32)
    if sub.size < 1024:
        return 0.0, 1.0
    size = (sub.shape[1], sub.shape[0])
    maps = [cv2.resize(m, size, interpolation=cv2.INTER_LINEAR)
            for m in (fld.bg_low, fld.sd_low, fld.skew_low)]
    z = cornish_fisher((sub - maps[0]) / maps[1], maps[2]).ravel()
    ks = (_QUANTILES * (z.size - 1)).astype(np.intp)
    q = np.partition(z, ks)[ks]
    scale, zero = np.polyfit(_NORMAL_Q, q, 1)
    if not (np.isfinite(scale) and 0.5 <= scale <= 5.0):
        return 0.0, 1.0
    return float(zero), float(scale)
