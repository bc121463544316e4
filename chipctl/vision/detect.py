"""Matched filtering, candidate local maxima and sub-pixel peak positions."""

from __future__ import annotations

import cv2
import numpy as np

from chipctl.vision.kernels import MatchedKernel

# 8-neighbourhood in raster order; the first four precede the centre (strict comparison).
NEIGHBOURS = ((-1, -1), (-1, 0), (-1, 1), (0, -1), (0, 1), (1, -1), (1, 0), (1, 1))


def matched_filter(frame: np.ndarray, kernel: MatchedKernel, integer_ok: bool) -> np.ndarray:
    """Gaussian matched filter; integer input stays integer when ``integer_ok`` (faster)."""
    if not (integer_ok and frame.dtype in (np.uint8, np.uint16)):
        frame = frame.astype(np.float32, copy=False)
    k = kernel.ksize
    return cv2.GaussianBlur(frame, (k, k), kernel.sigma, borderType=cv2.BORDER_REFLECT)


def upsample(low: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Bilinear upsampling of a low-resolution map to ``shape`` (pixel-centre aligned)."""
    return cv2.resize(low, (shape[1], shape[0]), interpolation=cv2.INTER_LINEAR)


def sample_low(low: np.ndarray, shape: tuple[int, int], ys: np.ndarray, xs: np.ndarray
               ) -> np.ndarray:
    """Bilinear samples of a low-resolution map at full-resolution pixel positions."""
    lh, lw = low.shape
    fy = np.clip((ys + 0.5) * (lh / shape[0]) - 0.5, 0, lh - 1)
    fx = np.clip((xs + 0.5) * (lw / shape[1]) - 0.5, 0, lw - 1)
    y0 = np.minimum(fy.astype(np.intp), max(lh - 2, 0))
    x0 = np.minimum(fx.astype(np.intp), max(lw - 2, 0))
    y1, x1 = np.minimum(y0 + 1, lh - 1), np.minimum(x0 + 1, lw - 1)
    wy, wx = fy - y0, fx - x0
    top = low[y0, x0] * (1 - wx) + low[y0, x1] * wx
    bottom = low[y1, x0] * (1 - wx) + low[y1, x1] * wx
    return top * (1 - wy) + bottom * wy


def candidates(filtered: np.ndarray, gate: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(rows, cols) of pixels above ``gate`` that are 8-neighbour local maxima."""
    mask = cv2.compare(filtered, gate, cv2.CMP_GT)
    pts = cv2.findNonZero(mask)
    if pts is None:
        return np.empty(0, np.intp), np.empty(0, np.intp)
    pts = pts.reshape(-1, 2)
    xs, ys = pts[:, 0].astype(np.intp), pts[:, 1].astype(np.intp)
    nb = neighbourhood(filtered, ys, xs)
    centre = nb[:, 4]
    keep = np.all(nb[:, :4] < centre[:, None], axis=1) & np.all(nb[:, 5:] <= centre[:, None],
                                                                   axis=1)
    return ys[keep], xs[keep]


def neighbourhood(img: np.ndarray, ys: np.ndarray, xs: np.ndarray, radius: int = 1
                  ) -> np.ndarray:
    """Float64 values of the (2r+1)^2 window around each point (raster order); -inf outside."""
    h, w = img.shape
    d = np.arange(-radius, radius + 1)
    yy = (ys[:, None] + d[None, :])[:, :, None]
    xx = (xs[:, None] + d[None, :])[:, None, :]
    inside = (yy >= 0) & (yy < h) & (xx >= 0) & (xx < w)
    vals = img[np.clip(yy, 0, h - 1), np.clip(xx, 0, w - 1)].astype(np.float64)
    vals = np.where(inside, vals, -np.inf)
    return vals.reshape(len(ys), (2 * radius + 1) ** 2)


def subpixel_offsets(nb: np.ndarray, background: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Gaussian (log-parabola) 3-point peak offsets (dx, dy) from 3x3 filtered windows."""
    v = nb - background[:, None]
    dx = _three_point(v[:, 3], v[:, 4], v[:, 5])
    dy = _three_point(v[:, 1], v[:, 4], v[:, 7])
    return dx, dy


def _three_point(left: np.ndarray, mid: np.ndarray, right: np.ndarray) -> np.ndarray:
    """Peak offset of a Gaussian through three samples; parabola where logs are undefined."""
    with np.errstate(divide="ignore", invalid="ignore"):
        left = np.where(np.isfinite(left), left, mid)
        right = np.where(np.isfinite(right), right, mid)
        positive = (left > 0) & (mid > 0) & (right > 0)
        ll, lm, lr = (np.log(np.where(positive, a, 1.0)) for a in (left, mid, right))
        gauss = 0.5 * (ll - lr) / (ll - 2 * lm + lr)
        para = 0.5 * (left - right) / (left - 2 * mid + right)
        off = np.where(positive, gauss, para)
    return np.clip(np.nan_to_num(off, nan=0.0, posinf=0.0, neginf=0.0), -0.5, 0.5)
