"""count_frame: vesicle counting as a pure function of one frame and parameters."""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from chipctl.vision import detect, rejection
from chipctl.vision.crowding import crowding
from chipctl.vision.field import Field, build_field
from chipctl.vision.localize import localize, spot_width
from chipctl.vision.model import CountParams, CountResult
from chipctl.vision.nullmodel import NullMaxima, null_maxima
from chipctl.vision.threshold import choose_threshold, fit_tail_scale, safe_threshold

DEFOCUS_RATIO = 1.15  # bright spots this much wider than the PSF: count again with their width
_WIDTH_STEP = 0.05


@dataclass
class _Maxima:
    """Candidate local maxima: positions, background, 3x3 windows, scores, hot-pixel flags."""

    ys: np.ndarray
    xs: np.ndarray
    bg: np.ndarray
    nb: np.ndarray  # filtered 3x3
    raw_nb: np.ndarray  # raw 3x3
    score: np.ndarray
    hot: np.ndarray

    def take(self, keep: np.ndarray) -> _Maxima:
        return _Maxima(*(getattr(self, f)[keep] for f in self.__dataclass_fields__))


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
    """Count the vesicles (diffraction-limited spots) in one frame.

    When the bright spots are clearly wider than ``params.psf_sigma_px`` (the field is out of
    focus), the frame is counted again with the PSF width they show, and the result says so
    (``psf_sigma_px``, ``psf_width_px``).
    """
    params = params or CountParams()
    raw = validate_frame(frame)
    res = _count(raw, params)
    if params.adapt_psf and res.psf_width_px > DEFOCUS_RATIO * params.psf_sigma_px:
        sigma = round(res.psf_width_px / _WIDTH_STEP) * _WIDTH_STEP  # few null models
        res = replace(_count(raw, replace(params, psf_sigma_px=sigma)),
                      psf_width_px=res.psf_width_px, defocused=True)
    return res


def _count(raw: np.ndarray, params: CountParams) -> CountResult:
    fld = build_field(raw, params.psf_sigma_px, params.calibration, params.background_px)
    null = null_maxima(params.psf_sigma_px)
    m = _candidates(fld, null, params)
    t_safe = safe_threshold(null, raw.size, params.blank_fp_per_frame)
    t = params.fixed_threshold
    if t is None:
        t = choose_threshold(m.score[~m.hot], null, raw.size, params.min_threshold, t_safe)
    return _finish(fld, params, m.take(m.score > t), t, float(null.expected(t, raw.size)))


def _candidates(fld: Field, null: NullMaxima, params: CountParams) -> _Maxima:
    """Local maxima above the lowest threshold considered, scored against the noise tail."""
    t_lo = params.min_threshold
    skew = float(np.clip(fld.skew_low.max(), 0, 0.3))
    t_min_gate = t_lo - skew / 6.0 * (t_lo**2 - 1.0) - 0.05  # skew correction can deepen
    h, w = fld.raw.shape
    every = 2 if h >= 8 * detect.STRIP else 1  # large frames: minima in half the strips
    ys, xs, is_max, nb = detect.extrema(fld.filtered, fld.gate(t_lo),
                                        fld.gate(t_min_gate, minima=True), every)
    maps = fld.sample(ys, xs)
    z = fld.scores(ys, xs, nb[:, 4], maps)
    depth = -z[~is_max]
    area = detect.minima_rows(h, every) * w
    tail = fit_tail_scale(depth[depth > t_lo], null, area, t_lo)
    ys, xs, nb, bg = ys[is_max], xs[is_max], nb[is_max], maps[0, is_max]
    raw_nb = detect.neighbourhood(fld.raw, ys, xs)
    score = z[is_max] / tail
    hot = np.zeros(ys.shape, bool)
    if params.reject_hot_pixels and ys.size:
        hot = rejection.hot_pixels(fld.raw, ys, xs, raw_nb, bg, fld.noise, fld.kernel)
    return _Maxima(ys, xs, bg, nb, raw_nb, score, hot)


def _finish(fld: Field, params: CountParams, m: _Maxima, t: float, expected_fp: float
            ) -> CountResult:
    """Apply the remaining rejections to the maxima above threshold and build the result."""
    sat = rejection.saturated(m.raw_nb, _saturation(fld.raw, params)) & ~m.hot
    deb = rejection.debris(fld.raw, m.ys, m.xs, m.bg, m.nb, fld.noise, params.psf_sigma_px,
                           params.debris_sigma_px) & ~m.hot & ~sat
    bad = rejection.exclusion(m.ys, m.xs, deb | sat, 2.0 * params.debris_sigma_px + 4.0)
    deb_all = bad & ~sat & ~m.hot
    rejected = {"hot_pixel": int(m.hot.sum()), "saturated": int(sat.sum()),
                "debris": int(deb_all.sum())}
    m = m.take(~(m.hot | sat | deb_all))
    spots, rejected["aggregate"] = localize(fld, params.psf_sigma_px, m.ys, m.xs, m.nb, m.bg,
                                            m.score)
    shape = fld.raw.shape
    crowd = crowding(np.column_stack([spots["x"], spots["y"]]), shape, params.psf_sigma_px)
    estimated = spots.size + crowd.merged - expected_fp
    return CountResult(
        spots.size, spots, rejected, float(t), expected_fp, shape,
        split=int((spots["multiplicity"] > 1).sum() // 2), estimated_count=float(estimated),
        estimated_count_sd=float(np.sqrt(crowd.merged_sd**2 + expected_fp)),
        crowding=crowd.crowding, psf_sigma_px=params.psf_sigma_px,
        psf_width_px=spot_width(spots))


def _saturation(raw: np.ndarray, params: CountParams) -> float | None:
    if params.saturation_adu is not None:
        return params.saturation_adu
    if raw.dtype.kind == "u":
        return float(np.iinfo(raw.dtype).max)
    return None
