"""Several exposures of one field: register them (stage drift), sum them, count once.

Captured vesicles are static, so K exposures of a field summed hold K times the signal of one
with sqrt(K) times its noise: a dim vesicle's SNR grows as sqrt(K). The stage may drift
between exposures; each exposure is registered to the first by the displacement of its
detected spots (a vote, then the median of the agreeing ones: a few hundredths of a pixel from
a thousand spots), then shifted by the nearest whole pixel, so the sum is still a frame of
Poisson + read noise that the counter's noise model describes (a sub-pixel interpolation would
smooth the noise). The camera's hot pixels, fixed to the sensor, are replaced first, or their
shifted copies would sit side by side in the sum. The rest of the drift, under half a pixel,
widens the summed spots: the counter is given that wider PSF. Only the part of the field that
every exposure saw is counted; positions are reported in the first exposure's pixels.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

import cv2
import numpy as np

from chipctl.vision.accumulate import summed_calibration
from chipctl.vision.counter import count_frame, validate_frame
from chipctl.vision.model import CameraCalibration, CountParams, CountResult
from chipctl.vision.neighbors import displacement

_Z_HOT = 8.0


@dataclass(frozen=True)
class Combined:
    """The sum of registered exposures over their common area.

    ``frame`` (float32) covers rows ``origin[1]`` .. and columns ``origin[0]`` .. of the first
    exposure; ``drift`` (K x 2, dx and dy in pixels) is where each exposure saw the sample
    relative to the first, ``shifts`` the whole-pixel part applied; ``psf_sigma_px`` is the
    PSF of the sum (the sub-pixel rest widens it); ``saturation_adu`` the level that marks a
    pixel saturated in any exposure.
    """

    frame: np.ndarray
    calibration: CameraCalibration | None
    origin: tuple[int, int]
    drift: np.ndarray
    shifts: np.ndarray
    psf_sigma_px: float
    saturation_adu: float | None


def register(frames: Sequence[np.ndarray], params: CountParams | None = None,
             max_drift_px: float = 15.0) -> np.ndarray:
    """Drift (K x 2: dx, dy in pixels) of each exposure relative to the first.

    Each exposure is counted on its own; the drift is the mode of the displacements between
    its spots and the first exposure's (a vote on a 0.5 px grid, within ``max_drift_px``),
    refined by the median displacement of the spots that agree with it. An exposure with too
    few agreeing spots keeps drift 0.
    """
    params = params or CountParams()
    ref = count_frame(frames[0], params).xy
    drift = np.zeros((len(frames), 2))
    for k, frame in enumerate(frames[1:], start=1):
        drift[k] = displacement(ref, count_frame(frame, params).xy, max_drift_px)
    return drift


def combine(frames: Sequence[np.ndarray], calibration: CameraCalibration | None = None,
            psf_sigma_px: float = 1.3, drift: np.ndarray | None = None) -> Combined:
    """Register (unless ``drift`` is given), shift by whole pixels and sum ``frames``."""
    frames = _checked(frames)
    if drift is None:
        drift = register(frames, CountParams(psf_sigma_px=psf_sigma_px,
                                             calibration=calibration))
    drift = np.asarray(drift, float).reshape(-1, 2)
    shifts = np.rint(drift).astype(int)
    h, w = frames[0].shape
    x0, y0 = max(0, -shifts[:, 0].min()), max(0, -shifts[:, 1].min())
    x1, y1 = min(w, w - shifts[:, 0].max()), min(h, h - shifts[:, 1].max())
    if x1 - x0 < 1 or y1 - y0 < 1:
        raise ValueError(f"the exposures do not overlap (drift up to {np.abs(drift).max():.0f}"
                         " px)")
    total = np.zeros((y1 - y0, x1 - x0), np.float32)
    saturated = np.zeros(total.shape, bool)
    top = float(np.iinfo(frames[0].dtype).max) if frames[0].dtype.kind == "u" else None
    for frame, (sx, sy) in zip(_without_hot_pixels(frames), shifts, strict=True):
        part = frame[y0 + sy:y1 + sy, x0 + sx:x1 + sx]
        total += part
        if top is not None:
            saturated |= part >= top
    k = len(frames)
    level = None if top is None else top * k
    if level is not None:
        total[saturated] = level
    rest = drift - shifts
    sigma = float(np.sqrt(psf_sigma_px**2 + rest.var(axis=0).mean()))
    return Combined(total, summed_calibration(calibration, k), (int(x0), int(y0)), drift,
                    shifts, sigma, level)


def count_exposures(frames: Sequence[np.ndarray], params: CountParams | None = None,
                    drift: np.ndarray | None = None) -> CountResult:
    """Count the vesicles of one field from several exposures (one exposure: count_frame)."""
    params = params or CountParams()
    frames = _checked(frames)
    if len(frames) == 1:
        return count_frame(frames[0], params)
    comb = combine(frames, params.calibration, params.psf_sigma_px, drift)
    summed = replace(params, calibration=comb.calibration, psf_sigma_px=comb.psf_sigma_px,
                     saturation_adu=comb.saturation_adu)
    res = count_frame(comb.frame, summed)
    spots = res.spots.copy()
    spots["x"] += comb.origin[0]
    spots["y"] += comb.origin[1]
    return replace(res, spots=spots, shape=frames[0].shape, exposures=len(frames))


def count_field(field: np.ndarray | Sequence[np.ndarray], params: CountParams | None = None
                ) -> CountResult:
    """Count one field of view: a frame, or a sequence of exposures of it (registered,
    summed and counted once)."""
    if isinstance(field, np.ndarray) and field.ndim == 2:
        return count_frame(field, params)
    return count_exposures(list(field), params)


def _without_hot_pixels(frames: list[np.ndarray]) -> list[np.ndarray]:
    """The exposures with the camera's hot pixels replaced by their 3x3 median.

    A hot pixel stays on the same sensor pixel in every exposure, so after the drift shifts
    its copies would sit side by side and no longer look like a lone spike. A pixel is hot
    when it stands ``_Z_HOT`` robust sd above its 3x3 median in every exposure (a vesicle's
    spot is wider than one pixel, so it never does).
    """
    medians = [cv2.medianBlur(f, 3) if f.dtype in (np.uint8, np.uint16)
               else cv2.medianBlur(f.astype(np.float32), 3) for f in frames]
    hot = np.ones(frames[0].shape, bool)
    for f, m in zip(frames, medians, strict=True):
        rise = f.astype(np.float32) - m
        spread = 1.4826 * float(np.median(np.abs(rise[::4, ::4]))) + 0.5
        hot &= rise > _Z_HOT * spread
    if not hot.any():
        return frames
    out = []
    for f, m in zip(frames, medians, strict=True):
        f = f.copy()
        f[hot] = m[hot]
        out.append(f)
    return out


def _checked(frames: Sequence[np.ndarray]) -> list[np.ndarray]:
    if len(frames) == 0:
        raise ValueError("no exposures to combine")
    out = [validate_frame(f) for f in frames]
    if any(f.shape != out[0].shape for f in out):
        raise ValueError("exposures of one field must all have the same shape")
    return out
