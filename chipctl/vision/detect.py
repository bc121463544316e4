"""Matched filtering, candidate local maxima and sub-pixel peak positions."""

from __future__ import annotations

import cv2
import numpy as np

from chipctl.vision.kernels import MatchedKernel

STRIP = 128  # rows per strip in the extrema search


def matched_filter(frame: np.ndarray, kernel: MatchedKernel, integer_ok: bool) -> np.ndarray:
    """Gaussian matched filter; integer input stays integer when ``integer_ok`` (faster).

    A uint16 frame below 32768 ADU is filtered as int16 (OpenCV's fastest 16-bit path: the
    result differs from the uint16 path by at most one rounding step) and returned as uint16.
    """
    k = kernel.ksize
    if integer_ok and frame.dtype == np.uint16 and int(frame.max()) < 32768:
        out = cv2.GaussianBlur(frame.view(np.int16), (k, k), kernel.sigma,
                               borderType=cv2.BORDER_REFLECT)
        return out.view(np.uint16)
    if not (integer_ok and frame.dtype in (np.uint8, np.uint16)):
        frame = frame.astype(np.float32, copy=False)
    return cv2.GaussianBlur(frame, (k, k), kernel.sigma, borderType=cv2.BORDER_REFLECT)


def upsample(low: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Bilinear upsampling of a low-resolution map to ``shape`` (pixel-centre aligned)."""
    return cv2.resize(low, (shape[1], shape[0]), interpolation=cv2.INTER_LINEAR)


class Gate:
    """A low-resolution map upsampled bilinearly to ``shape``, produced a strip of rows at a
    time so that it stays in cache (identical to :func:`upsample` of the whole map)."""

    def __init__(self, low: np.ndarray, shape: tuple[int, int]) -> None:
        self.low, self.shape = low, shape
        h, w = shape
        self.factor = h // low.shape[0] if low.shape[0] else 0
        exact = self.factor >= 2 and h == self.factor * low.shape[0] and (
            w == self.factor * low.shape[1])
        self._full = None if exact else upsample(low, shape)

    def rows(self, a: int, b: int) -> np.ndarray:
        """Rows a..b-1 of the full-resolution map."""
        if self._full is not None:
            return self._full[a:b]
        k = self.factor
        la, lb = max(a // k - 1, 0), min(-(-b // k) + 1, self.low.shape[0])
        block = cv2.resize(self.low[la:lb], (self.shape[1], (lb - la) * k),
                           interpolation=cv2.INTER_LINEAR)
        return block[a - la * k:b - la * k]


def sample_low(low: np.ndarray, shape: tuple[int, int], ys: np.ndarray, xs: np.ndarray
               ) -> np.ndarray:
    """Bilinear samples of a low-resolution map (or a stack of maps, (k, lh, lw)) at
    full-resolution pixel positions."""
    lh, lw = low.shape[-2:]
    fy = np.clip((ys + 0.5) * (lh / shape[0]) - 0.5, 0, lh - 1)
    fx = np.clip((xs + 0.5) * (lw / shape[1]) - 0.5, 0, lw - 1)
    y0 = np.minimum(fy.astype(np.intp), max(lh - 2, 0))
    x0 = np.minimum(fx.astype(np.intp), max(lw - 2, 0))
    y1, x1 = np.minimum(y0 + 1, lh - 1), np.minimum(x0 + 1, lw - 1)
    wy, wx = fy - y0, fx - x0
    top = low[..., y0, x0] * (1 - wx) + low[..., y0, x1] * wx
    bottom = low[..., y1, x0] * (1 - wx) + low[..., y1, x1] * wx
    return top * (1 - wy) + bottom * wy


def extrema(filtered: np.ndarray, gate_hi: Gate, gate_lo: Gate, minima_every: int = 1
            ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """8-neighbour local maxima at or above ``gate_hi`` and minima at or below ``gate_lo``.

    Minima are searched in every ``minima_every``-th strip of ``STRIP`` rows only. Returns
    (rows, cols, is_max, 3x3 windows of the filtered values). Ties are broken in raster
    order (a plateau yields one point: strictly beyond the 4 preceding neighbours, not
    beyond the 4 following ones).
    """
    pts, n_max = _extrema_pixels(filtered, gate_hi, gate_lo, minima_every)
    if pts.size == 0:
        return np.empty(0, np.intp), np.empty(0, np.intp), np.empty(0, bool), np.empty((0, 9))
    xs, ys = pts[:, 0].astype(np.intp), pts[:, 1].astype(np.intp)
    is_max = np.zeros(len(ys), bool)
    is_max[:n_max] = True
    nb = neighbourhood(filtered, ys, xs)
    signed = np.where(is_max[:, None], nb, -nb)
    signed[~np.isfinite(nb)] = -np.inf
    centre = signed[:, 4:5]
    keep = np.all(signed[:, :4] < centre, axis=1) & np.all(signed[:, 5:] <= centre, axis=1)
    return ys[keep], xs[keep], is_max[keep], nb[keep]


def minima_rows(height: int, minima_every: int) -> int:
    """Number of rows searched for minima by :func:`extrema`."""
    return sum(min(STRIP, height - y0) for i, y0 in enumerate(range(0, height, STRIP))
               if i % minima_every == 0)


def _extrema_pixels(filtered: np.ndarray, gate_hi: Gate, gate_lo: Gate, minima_every: int
                    ) -> tuple[np.ndarray, int]:
    """(x, y) of pixels >= all 8 neighbours and >= gate_hi (the first ``n``), then of pixels
    <= all and <= gate_lo. Works in row strips so that the intermediate images stay in
    cache."""
    h = filtered.shape[0]
    box = np.ones((3, 3), np.uint8)
    found: list[list[np.ndarray]] = [[], []]
    for i, y0 in enumerate(range(0, h, STRIP)):
        a, b = max(y0 - 1, 0), min(y0 + STRIP + 1, h)
        f = filtered[a:b]
        inner = slice(y0 - a, y0 - a + min(STRIP, h - y0))
        masks = [cv2.compare(f, cv2.max(cv2.dilate(f, box), gate_hi.rows(a, b)), cv2.CMP_GE)]
        if i % minima_every == 0:
            masks.append(cv2.compare(f, cv2.min(cv2.erode(f, box), gate_lo.rows(a, b)),
                                     cv2.CMP_LE))
        for kind, mask in enumerate(masks):
            pts = cv2.findNonZero(mask[inner])
            if pts is not None:
                pts = pts.reshape(-1, 2)
                pts[:, 1] += y0
                found[kind].append(pts)
    maxima, minima = (np.concatenate(f) if f else np.empty((0, 2), np.int32) for f in found)
    return np.concatenate([maxima, minima]), len(maxima)


def neighbourhood(img: np.ndarray, ys: np.ndarray, xs: np.ndarray, radius: int = 1
                  ) -> np.ndarray:
    """Float64 values of the (2r+1)^2 window around each point (raster order); -inf outside."""
    h, w = img.shape
    d = np.arange(-radius, radius + 1)
    inner = (ys >= radius) & (ys < h - radius) & (xs >= radius) & (xs < w - radius)
    out = np.empty((len(ys), d.size * d.size), np.float64)
    if img.flags.c_contiguous:
        offsets = (d[:, None] * w + d[None, :]).ravel()
        flat = img.ravel()
        out[inner] = flat[(ys[inner] * w + xs[inner])[:, None] + offsets[None, :]]
    else:
        inner[:] = False
    border = ~inner
    if border.any():
        yy = (ys[border, None] + d[None, :])[:, :, None]
        xx = (xs[border, None] + d[None, :])[:, None, :]
        inside = (yy >= 0) & (yy < h) & (xx >= 0) & (xx < w)
        vals = img[np.clip(yy, 0, h - 1), np.clip(xx, 0, w - 1)].astype(np.float64)
        out[border] = np.where(inside, vals, -np.inf).reshape(-1, d.size * d.size)
    return out


def subpixel_offsets(nb: np.ndarray, background: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Gaussian (log-parabola) 3-point peak offsets (dx, dy) from 3x3 filtered windows."""
    v = nb - background[:, None]
    dx = _three_point(v[:, 3], v[:, 4], v[:, 5])
    dy = _three_point(v[:, 1], v[:, 4], v[:, 7])
    return dx, dy


def _three_point(left: np.ndarray, mid: np.ndarray, right: np.ndarray) -> np.ndarray:
    """Peak offset of a Gaussian through three samples; parabola where logs are undefined."""
    edge = ~(np.isfinite(left) & np.isfinite(right))
    with np.errstate(divide="ignore", invalid="ignore"):
        left = np.where(np.isfinite(left), left, mid)
        right = np.where(np.isfinite(right), right, mid)
        positive = (left > 0) & (mid > 0) & (right > 0)
        ll, lm, lr = (np.log(np.where(positive, a, 1.0)) for a in (left, mid, right))
        gauss = 0.5 * (ll - lr) / (ll - 2 * lm + lr)
        para = 0.5 * (left - right) / (left - 2 * mid + right)
        off = np.where(edge, 0.0, np.where(positive, gauss, para))
    return np.clip(np.nan_to_num(off, nan=0.0, posinf=0.0, neginf=0.0), -0.5, 0.5)
