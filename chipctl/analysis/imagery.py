"""What the kept frames add to a report: per-frame image quality (focus score, saturated
pixels, SNR), drift, and a thumbnail of each field with its detections drawn.

Spots are the run's own detections (spots.csv: what the run's counter found in each frame as
it ran), never a second count. Without kept frames or recorded detections (a run recorded
before runs kept them), the report says what it could not show. Co-expression is in
chipctl.analysis.coexpression, the QC flags of zones in chipctl.analysis.checks.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from chipctl.analysis.plots import thumbnail
from chipctl.runs.frames import read_frame
from chipctl.vision.focus import focus_metric
from chipctl.vision.model import CountResult

MAX_FRAMES = 240
MAX_THUMBNAILS = 60
COLOC_RADIUS_PX = 2.0
DRIFT_LIMIT_PX = 1.0


@dataclass
class FrameQC:
    """Quality numbers of one kept frame."""

    file: str
    zone: str
    field: int
    channel: str
    saturated_fraction: float
    focus: float
    snr: float | None
    spots: int | None


@dataclass
class Imagery:
    """Everything derived from the kept frames."""

    frames: int = 0
    detections: bool = False
    qc: list[FrameQC] = field(default_factory=list)
    thumbnails: list[dict[str, Any]] = field(default_factory=list)
    drift: list[dict[str, Any]] = field(default_factory=list)
    flags: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def image_snr(image: np.ndarray) -> float:
    """Brightest spots over the background noise (robust)."""
    img = image.astype(np.float64)
    median = float(np.median(img))
    sigma = 1.4826 * float(np.median(np.abs(img - median))) or 1.0
    return (float(np.percentile(img, 99.95)) - median) / sigma


def drift_px(first: np.ndarray, last: np.ndarray, search_px: float = 8.0,
             min_pairs: int = 10) -> tuple[float, float] | None:
    """Shift (x, y) of the spots of `last` against those of `first`: captured vesicles stay
    put, so the offsets between nearby spot pairs pile up at the drift; None if too few."""
    if len(first) < min_pairs or len(last) < min_pairs:
        return None
    offsets = []
    for start in range(0, len(first), 256):
        a = first[start:start + 256]
        d = last[None, :, :] - a[:, None, :]
        near = (d**2).sum(axis=2) <= search_px**2
        offsets.append(d[near])
    pairs = np.concatenate(offsets) if offsets else np.empty((0, 2))
    if len(pairs) < min_pairs:
        return None
    edges = np.arange(-search_px, search_px + 0.5, 0.5)
    hist, xe, ye = np.histogram2d(pairs[:, 0], pairs[:, 1], bins=[edges, edges])
    ix, iy = np.unravel_index(int(np.argmax(hist)), hist.shape)
    if hist[ix, iy] < min_pairs:
        return None
    peak = np.array([(xe[ix] + xe[ix + 1]) / 2, (ye[iy] + ye[iy + 1]) / 2])
    close = pairs[((pairs - peak) ** 2).sum(axis=1) <= 1.0]
    dx, dy = close.mean(axis=0)
    return float(dx), float(dy)


def pair_fraction(a: np.ndarray, b: np.ndarray, radius: float = COLOC_RADIUS_PX) -> int:
    """How many points of `a` have a point of `b` within `radius`."""
    if len(a) == 0 or len(b) == 0:
        return 0
    hits = 0
    for start in range(0, len(a), 512):
        chunk = a[start:start + 512]
        d2 = ((chunk[:, None, :] - b[None, :, :]) ** 2).sum(axis=2)
        hits += int(np.count_nonzero(d2.min(axis=1) <= radius**2))
    return hits


def analyse(folder: Path, frames: list[dict[str, Any]], pixel_size_um: float | None,
            detections: dict[int, CountResult] | None) -> Imagery:
    """Spots, colocalization, intensities and QC flags from a run's kept frames and the
    detections recorded for them (None: the run recorded none)."""
    out = Imagery(frames=len(frames))
    if not frames:
        out.notes.append("no frames were kept (run option --keep-frames), so spot intensities,"
                         " colocalization and image QC are not available")
        return out
    if len(frames) > MAX_FRAMES:
        step = len(frames) / MAX_FRAMES
        frames = [frames[int(i * step)] for i in range(MAX_FRAMES)]
        out.notes.append(f"image QC on {MAX_FRAMES} of {out.frames} kept frames")
    out.detections = detections is not None
    if detections is None:
        out.notes.append("this run recorded no detections (spots.csv; runs before chipctl kept"
                         " them): no per-spot positions, so no colocalization or intensities")
    series: dict[tuple[Any, ...], list[np.ndarray]] = defaultdict(list)
    shown: set[tuple[Any, ...]] = set()
    for entry in frames:
        image, meta = read_frame(folder / entry["file"])
        key = (entry.get("step"), entry.get("zone"), entry.get("field"), entry.get("channel"))
        result = None
        if detections is not None:  # a counted frame without rows had no spots
            result = detections.get(int(entry["seq"]), CountResult.from_xy(np.empty((0, 2))))
        out.qc.append(_qc(entry, image, meta, result))
        channel = str(entry.get("channel"))
        if result is not None:
            xy = np.asarray(result.xy, float).reshape(-1, 2)
            series[(entry.get("zone"), entry.get("field"), channel)].append(xy)
            if len(out.thumbnails) < MAX_THUMBNAILS and key not in shown:
                shown.add(key)
                out.thumbnails.append({"zone": entry.get("zone"), "field": entry.get("field"),
                                       "channel": channel, "spots": int(result.count),
                                       "png": thumbnail(image, xy)})
    out.drift = _drift(series, pixel_size_um)
    out.flags = _flags(out)
    return out


def _qc(entry: dict[str, Any], image: np.ndarray, meta: dict[str, Any], result: Any) -> FrameQC:
    top = np.iinfo(image.dtype).max if np.issubdtype(image.dtype, np.integer) else image.max()
    snr = None
    if result is not None and result.count:
        snr = float(np.median(result.spots["snr"]))
    elif result is None:
        snr = image_snr(image)
    return FrameQC(str(entry.get("file")), str(entry.get("zone")), int(entry.get("field") or 0),
                   str(entry.get("channel")), float(np.mean(image >= top)), focus_metric(image),
                   snr, None if result is None else int(result.count))


def _drift(series: dict[tuple[Any, ...], list[np.ndarray]],
           pixel_size_um: float | None) -> list[dict[str, Any]]:
    """Drift of every field imaged more than once, first frame to last (from spots)."""
    out = []
    for (zone, fld, channel), frames in sorted(series.items(), key=str):
        usable = [xy for xy in frames if len(xy) >= 30]
        if len(usable) < 2:
            continue
        shift = drift_px(usable[0], usable[-1])
        if shift is None:
            continue
        size = float(np.hypot(*shift))
        out.append({"zone": zone, "field": fld, "channel": channel, "frames": len(frames),
                    "dx_px": shift[0], "dy_px": shift[1], "shift_px": size,
                    "shift_um": size * pixel_size_um if pixel_size_um else None})
    return out


def _flags(img: Imagery) -> list[str]:
    """Saturated pixels, low SNR and drift (focus is checked per zone: chipctl.analysis.checks)."""
    flags = []
    for q in img.qc:
        if q.saturated_fraction > 1e-4:
            flags.append(f"saturation: {q.file} has {q.saturated_fraction:.2%} saturated pixels")
        if q.snr is not None and q.snr < 3.0:
            flags.append(f"SNR: {q.file} median spot SNR {q.snr:.1f} (< 3)")
    for d in img.drift:
        if d["shift_px"] > DRIFT_LIMIT_PX:
            flags.append(f"drift: {d['zone']} field {d['field']} {d['channel']} moved "
                         f"{d['shift_px']:.1f} px over {d['frames']} frames")
    return flags
