"""Reading camera images for counting: TIFF (8/16-bit, multi-page) and PNG and other formats
OpenCV reads. Every problem is raised as :class:`ImageError` with a readable message."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import tifffile

from chipctl.vision.counter import validate_frame

_TIFF_SUFFIXES = {".tif", ".tiff"}


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
    if not p.exists():
        raise ImageError("no such file")
    if p.is_dir():
        raise ImageError("is a directory, not an image")
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


def _is_tiff(p: Path) -> bool:
    with p.open("rb") as fh:
        head = fh.read(4)
    return head[:2] in (b"II", b"MM") or p.suffix.lower() in _TIFF_SUFFIXES


def _read_tiff(p: Path) -> list[np.ndarray]:
    try:
        with tifffile.TiffFile(p) as tif:
            arrays = [_channels_last(page.aspage()) for page in tif.pages]
        if not arrays:
            raise ImageError("not a readable TIFF image (no image pages)")
        return arrays
    except ImageError:
        raise
    except Exception as exc:  # tifffile raises many types for corrupt files
        raise ImageError(f"not a readable TIFF image ({exc})") from None


def _channels_last(page: tifffile.TiffPage) -> np.ndarray:
    """A TIFF page as an array with any colour samples on the last axis."""
    a = page.asarray()
    planar = page.planarconfig == tifffile.PLANARCONFIG.SEPARATE
    if a.ndim == 3 and page.samplesperpixel > 1 and planar:
        a = np.moveaxis(a, 0, -1)
    return a


def _read_other(p: Path) -> np.ndarray:
    img = cv2.imread(str(p), cv2.IMREAD_UNCHANGED)
    if img is None:
        raise ImageError("not a readable image (TIFF, PNG or another format OpenCV reads)")
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
