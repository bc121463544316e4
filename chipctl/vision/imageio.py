"""Reading camera images for counting: TIFF (8/16-bit, multi-page) and PNG and other formats
OpenCV reads. Every problem is raised as :class:`ImageError` with a readable message.

An image file cannot exhaust memory or hang the reader: only a regular file is opened (a FIFO
would block), its size is bounded, and the dimensions it declares (TIFF tags, the PNG header)
are checked against MAX_PIXELS and MAX_DECODED_BYTES before anything is decompressed (a 1.8 MB
zlib TIFF declared 9 GB of pixels). Degenerate frames (smaller than MIN_SIDE, boolean, more
than 2-D plus colour) are refused with a message.
"""

from __future__ import annotations

import math
import os
import stat
import struct
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import tifffile

from chipctl.vision.counter import validate_frame

_TIFF_SUFFIXES = {".tif", ".tiff"}
MAX_FILE_BYTES = 4 << 30  # 4 GiB: a long multi-page stack, not more
MAX_PIXELS = 1 << 26  # 64 Mpx per frame (8192 x 8192): larger than any scientific sensor
MAX_DECODED_BYTES = 2 << 30  # every page of a file together, decoded
MAX_PAGES = 10_000
MIN_SIDE = 8  # a frame narrower than a few PSFs holds nothing to count


class ImageError(ValueError):
    """An image file that cannot be used for counting."""


@dataclass(frozen=True)
class Page:
    """One 2D frame of an image file; ``index`` is None for a single-page file."""

    index: int | None
    frame: np.ndarray


def read_pages(path: str | Path) -> list[Page]:
    """All 2D frames of ``path``, validated for counting."""
    p = Path(path)
    _check_file(p)
    arrays = _read_tiff(p) if _is_tiff(p) else [_read_other(p)]
    if not arrays:
        raise ImageError("the file holds no image data")
    frames = [_single_channel(a) for a in arrays]
    try:
        frames = [validate_frame(f) for f in frames]
    except ValueError as exc:
        raise ImageError(str(exc)) from None
    if len(frames) == 1:
        return [Page(None, frames[0])]
    return [Page(i, f) for i, f in enumerate(frames)]


def _check_file(p: Path) -> None:
    try:
        info = os.stat(p)
    except FileNotFoundError:
        raise ImageError("no such file") from None
    except OSError as exc:
        raise ImageError(f"cannot read it ({exc.strerror or exc})") from None
    if stat.S_ISDIR(info.st_mode):
        raise ImageError("is a directory, not an image")
    if not stat.S_ISREG(info.st_mode):
        raise ImageError("not a regular file (a pipe or a device cannot be counted)")
    if info.st_size > MAX_FILE_BYTES:
        raise ImageError(f"{info.st_size / 2**30:.1f} GiB is larger than the "
                         f"{MAX_FILE_BYTES / 2**30:g} GiB an image file may be")


def _is_tiff(p: Path) -> bool:
    with p.open("rb") as fh:
        head = fh.read(4)
    return head[:2] in (b"II", b"MM") or p.suffix.lower() in _TIFF_SUFFIXES


def _check_declared(shape: tuple[int, ...], dtype: np.dtype | None, what: str) -> int:
    """Bytes the frame will take once decoded; ImageError if it may not be decoded at all."""
    if dtype is None:
        raise ImageError(f"{what}: a pixel type this reader does not decode")
    dtype = np.dtype(dtype)
    if dtype == np.bool_:
        raise ImageError(f"{what}: a 1-bit (black and white) image, not a camera frame")
    if len(shape) > 3:
        raise ImageError(f"{what}: {len(shape)}-D data {shape}; expected a 2D frame")
    if len(shape) < 2 or min(shape[:2]) < MIN_SIDE:
        raise ImageError(f"{what}: {' x '.join(map(str, shape))} pixels is too small to count "
                         f"(at least {MIN_SIDE} x {MIN_SIDE})")
    pixels = math.prod(shape[:2])
    if pixels > MAX_PIXELS:
        raise ImageError(f"{what}: declares {shape[1]} x {shape[0]} pixels, more than the "
                         f"{MAX_PIXELS // 2**20} Mpx a frame may have")
    return math.prod(shape) * dtype.itemsize


def _read_tiff(p: Path) -> list[np.ndarray]:
    try:
        with tifffile.TiffFile(p) as tif:
            count = len(tif.pages)
            if count > MAX_PAGES:
                raise ImageError(f"{count} pages; at most {MAX_PAGES}")
            _check_series(tif)
            pages = [page.aspage() for page in tif.pages]
            total = sum(_check_declared(_declared_shape(page), page.dtype, f"page {i}")
                        for i, page in enumerate(pages))
            if total > MAX_DECODED_BYTES:
                raise ImageError(f"{total / 2**30:.1f} GiB once decoded; at most "
                                 f"{MAX_DECODED_BYTES / 2**30:g} GiB")
            arrays = [_channels_last(page) for page in pages]
        if not arrays:
            raise ImageError("not a readable TIFF image (no image pages)")
        return arrays
    except ImageError:
        raise
    except MemoryError:
        raise ImageError("not enough memory to decode it") from None
    except Exception as exc:  # tifffile raises many types for corrupt files
        raise ImageError(f"not a readable TIFF image ({str(exc)[:200]})") from None


def _check_series(tif: tifffile.TiffFile) -> None:
    """Refuse data of more than pages x rows x columns (x colour): a 5-D stack is no frame."""
    for series in tif.series:
        axes = [a for a, n in zip(series.axes, series.shape, strict=True) if n > 1 and a != "S"]
        if len(axes) > 3:
            raise ImageError(f"{len(axes)}-D data (axes {''.join(axes)}, shape "
                             f"{tuple(series.shape)}); expected 2D frames or a stack of them")


def _declared_shape(page: tifffile.TiffPage) -> tuple[int, ...]:
    """(rows, columns[, samples]) as the page's tags declare them (before decoding)."""
    if getattr(page, "imagedepth", 1) > 1:
        raise ImageError(f"a 3-D volume page ({page.imagedepth} deep); expected 2D frames")
    samples = (page.samplesperpixel,) if page.samplesperpixel > 1 else ()
    return (page.imagelength, page.imagewidth, *samples)


def _channels_last(page: tifffile.TiffPage) -> np.ndarray:
    """A TIFF page as an array with any colour samples on the last axis."""
    a = page.asarray()
    planar = page.planarconfig == tifffile.PLANARCONFIG.SEPARATE
    if a.ndim == 3 and page.samplesperpixel > 1 and planar:
        a = np.moveaxis(a, 0, -1)
    return a


def _png_size(p: Path) -> tuple[int, int] | None:
    """(height, width) from a PNG's IHDR, None if the file is not a PNG."""
    with p.open("rb") as fh:
        head = fh.read(24)
    if head[:8] != b"\x89PNG\r\n\x1a\n" or head[12:16] != b"IHDR":
        return None
    width, height = struct.unpack(">II", head[16:24])
    return height, width


def _read_other(p: Path) -> np.ndarray:
    size = _png_size(p)
    if size is not None:
        _check_declared(size, np.dtype(np.uint16), "the PNG")
    elif p.stat().st_size > MAX_PIXELS * 2:
        raise ImageError("too large for a single frame in this format (use TIFF)")
    try:
        img = cv2.imread(str(p), cv2.IMREAD_UNCHANGED)
    except cv2.error as exc:
        raise ImageError(f"not a readable image ({str(exc)[:200]})") from None
    if img is None:
        raise ImageError("not a readable image (TIFF, PNG or another format OpenCV reads)")
    _check_declared(tuple(img.shape), img.dtype, "the image")
    if img.ndim == 3 and img.shape[2] in (3, 4):
        img = img[:, :, :3][:, :, ::-1]  # BGR -> RGB; only equal channels are accepted
    return img


def _single_channel(a: np.ndarray) -> np.ndarray:
    """2D frame from a 2D array, or from channels-last data whose colour channels agree."""
    a = np.asarray(a)
    if a.ndim == 3 and a.shape[-1] in (3, 4):
        rgb = a[..., :3]
        if np.array_equal(rgb[..., 0], rgb[..., 1]) and np.array_equal(rgb[..., 0], rgb[..., 2]):
            return rgb[..., 0]
        raise ImageError("colour image; expected a single-channel (grey) camera frame")
    if a.ndim != 2:
        raise ImageError(f"expected a 2D single-channel image, got shape {a.shape}")
    return a
