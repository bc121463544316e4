"""count_frame: vesicle counting as a pure function of one frame and parameters."""

from __future__ import annotations

import numpy as np

from chipctl.vision import detect, rejection
from chipctl.vision.field import Field, build_field
from chipctl.vision.model import SPOT_DTYPE, CountParams, CountResult, empty_spots
from chipctl.vision.nullmodel import NullMaxima, null_maxima
from chipctl.vision.threshold import choose_threshold, fit_tail_scale, safe_threshold


def validate_frame(frame: np.ndarray) -> np.ndarray:
    """Check that ``frame`` is a 2D real image; return it as uint8/uint16/float32."""
    frame = np.asarray(frame)
    if frame.ndim != 2:
        raise ValueError(f"expected a 2D image, got an array of shape {frame.shape}")
    if frame.size == 0:
        raise ValueError("the image is empty")
    if frame.dtype.kind not in "uif" and frame.dtype != np.bool_:
        raise ValueError(f"unsupported pixel type {frame.dtype}")
    if frame.dtype in (np.uint8, np.uint16):
        return frame
    out = frame.astype(np.float32)
    if not np.all(np.isfinite(out)):
        raise ValueError("the image contains NaN or infinite pixel values")
    return out


def count_frame(frame: np.ndarray, params: CountParams | None = None) -> CountResult:
    """Count the vesicles (diffraction-limited spots) in one frame."""
    params = params or CountParams()
    raw = validate_frame(frame)
    fld = build_field(raw, params.psf_sigma_px, params.calibration)
    ys, xs = detect.candidates(fld.filtered, fld.gate(params.min_threshold))
    if ys.size == 0:
        return _empty(raw, params)
    bg = detect.sample_low(fld.bg_low, raw.shape, ys, xs)
    nb = detect.neighbourhood(fld.filtered, ys, xs)
    null = null_maxima(params.psf_sigma_px)
    score = fld.scores(ys, xs, nb[:, 4]) / _tail_scale(fld, null, params.min_threshold)
    hot = _hot(raw, ys, xs, bg, fld, params)
    t_safe = safe_threshold(null, raw.size, params.blank_fp_per_frame)
    t = params.fixed_threshold
    if t is None:
        t = choose_threshold(score[~hot], null, raw.size, params.min_threshold, t_safe)
    above = score > t
    return _finish(fld, params, ys, xs, bg, nb, score, hot, above, t,
                   float(null.expected(t, raw.size)))


def _tail_scale(fld: Field, null: NullMaxima, t_lo: float) -> float:
    """Tail scale of the noise, fitted to the depths of the frame's local minima."""
    margin = float(np.clip(fld.skew_low.max(), 0, 0.3)) / 6.0 * (t_lo**2 - 1.0) + 0.05
    ys, xs = detect.candidates(fld.filtered, fld.gate(t_lo - margin, minima=True), minima=True)
    depth = -fld.scores(ys, xs, fld.filtered[ys, xs].astype(np.float64))
    return fit_tail_scale(depth[depth > t_lo], null, fld.raw.size, t_lo)


def _hot(raw: np.ndarray, ys: np.ndarray, xs: np.ndarray, bg: np.ndarray, fld: Field,
         params: CountParams) -> np.ndarray:
    if not params.reject_hot_pixels:
        return np.zeros(ys.shape, bool)
    return rejection.hot_pixels(raw, ys, xs, bg, fld.noise, fld.kernel)


def _finish(fld: Field, params: CountParams, ys: np.ndarray, xs: np.ndarray, bg: np.ndarray,
            nb: np.ndarray, score: np.ndarray, hot: np.ndarray, above: np.ndarray, t: float,
            expected_fp: float) -> CountResult:
    """Apply the remaining rejections to the maxima above threshold and build the result."""
    ys, xs, bg, nb, score, hot = (a[above] for a in (ys, xs, bg, nb, score, hot))
    sat = rejection.saturated(fld.raw, ys, xs, _saturation(fld.raw, params)) & ~hot
    deb = rejection.debris(fld.raw, ys, xs, bg, fld.noise, params.psf_sigma_px,
                           params.debris_sigma_px) & ~hot & ~sat
    bad = rejection.exclusion(ys, xs, deb | sat, 2.0 * params.debris_sigma_px + 4.0)
    deb_all = bad & ~sat & ~hot
    keep = ~(hot | sat | deb_all)
    dx, dy = detect.subpixel_offsets(nb[keep], bg[keep])
    spots = np.empty(int(keep.sum()), dtype=SPOT_DTYPE)
    spots["x"] = xs[keep] + dx
    spots["y"] = ys[keep] + dy
    spots["amplitude"] = (nb[keep, 4] - bg[keep]) / fld.kernel.kappa
    spots["snr"] = score[keep]
    rejected = {"hot_pixel": int(hot.sum()), "saturated": int(sat.sum()),
                "debris": int(deb_all.sum())}
    return CountResult(spots.size, spots, rejected, float(t), expected_fp, fld.raw.shape)


def _saturation(raw: np.ndarray, params: CountParams) -> float | None:
    if params.saturation_adu is not None:
        return params.saturation_adu
    if raw.dtype.kind == "u":
        return float(np.iinfo(raw.dtype).max)
    return None


def _empty(raw: np.ndarray, params: CountParams) -> CountResult:
    t = params.fixed_threshold
    if t is None:
        t = safe_threshold(null_maxima(params.psf_sigma_px), raw.size, params.blank_fp_per_frame)
    return CountResult(0, empty_spots(), {"hot_pixel": 0, "saturated": 0, "debris": 0},
                       float(t), 0.0, raw.shape)
