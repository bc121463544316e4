"""Report figures: matplotlib on the Agg backend, embedded as base64 PNG."""

from __future__ import annotations

import base64
import io
from typing import Any

import cv2
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from PIL import Image  # noqa: E402

from chipctl.analysis.counts import Kinetics, ZoneChannel  # noqa: E402

THUMB_PX = 200


def _png(fig: Any) -> str:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=110, bbox_inches="tight")
    plt.close(fig)
    return base64.b64encode(buffer.getvalue()).decode("ascii")


def density_bars(table: list[ZoneChannel]) -> str | None:
    """Density per zone, one bar per channel, field SD as error bars."""
    rows = [t for t in table if t.density_per_mm2 is not None]
    if not rows:
        return None
    zones = sorted({t.zone for t in rows})
    channels = sorted({t.channel for t in rows})
    fig, ax = plt.subplots(figsize=(6.5, 3.4))
    width = 0.8 / len(channels)
    for i, channel in enumerate(channels):
        values = {t.zone: t for t in rows if t.channel == channel}
        x = np.arange(len(zones)) + i * width
        heights = [(values[z].density_per_mm2 or 0.0) if z in values else 0.0 for z in zones]
        ax.bar(x, heights, width,
               yerr=[values[z].density_sd_per_mm2 if z in values else 0 for z in zones],
               label=channel, capsize=2)
    ax.set_xticks(np.arange(len(zones)) + 0.4 - width / 2, zones)
    ax.set_ylabel("vesicles per mm²")
    ax.legend(fontsize=8)
    return _png(fig)


def kinetics_plot(series: list[Kinetics]) -> str | None:
    """Count versus time with the fitted first-order capture curve."""
    if not series:
        return None
    fig, ax = plt.subplots(figsize=(6.5, 3.4))
    for k in series:
        t = np.array(k.t_s)
        label = f"step {k.step + 1} {k.zone} {k.channel} field {k.field} ({k.regime})"
        line = ax.plot(t / 60, k.counts, "o", ms=3, label=label)[0]
        fine = np.linspace(k.t0_s, t.max(), 100)
        ax.plot(fine / 60, k.curve(fine), "-", color=line.get_color(), lw=1)
    ax.set_xlabel("time (min)")
    ax.set_ylabel("vesicles in field")
    ax.legend(fontsize=7)
    return _png(fig)


def intensity_histogram(photons: dict[str, list[float]]) -> str | None:
    """Spot photons per marker (log scale): brightness grows with a vesicle's surface, so this
    is a relative size distribution."""
    positive = [v for values in photons.values() for v in values if v > 0]
    if not positive:
        return None
    fig, ax = plt.subplots(figsize=(6.5, 3.2))
    bins = np.geomspace(max(min(positive), 1.0), max(positive) * 1.01, 60)
    for name, values in sorted(photons.items()):
        if values:
            ax.hist(values, bins=bins.tolist(), histtype="step",
                    label=f"{name} (n = {len(values):,})")
    ax.set_xscale("log")
    ax.set_xlabel("spot photons (log scale; relative vesicle size)")
    ax.set_ylabel("spots")
    ax.legend(fontsize=8)
    return _png(fig)


def thumbnail(image: np.ndarray, xy: np.ndarray, size: int = THUMB_PX) -> str:
    """A field shrunk to ``size`` px (1st-99.8th percentile grey of the frame, area-averaged)
    with each detection circled."""
    img = np.asarray(image)
    step = max(1, min(img.shape) // 512)  # the grey levels from every step-th pixel suffice
    lo, hi = (float(v) for v in np.percentile(img[::step, ::step], [1.0, 99.8]))
    scale = size / max(img.shape)
    shape = (max(1, round(img.shape[0] * scale)), max(1, round(img.shape[1] * scale)))
    small = cv2.resize(img.astype(np.float32), shape[::-1], interpolation=cv2.INTER_AREA)
    grey = np.clip((small - lo) * (255 / max(hi - lo, 1e-9)), 0, 255).astype(np.uint8)
    rgb = np.repeat(grey[:, :, None], 3, axis=2)
    ring = _ring(max(2.0, 3 * scale))
    centres = np.rint(np.asarray(xy, float).reshape(-1, 2) * scale).astype(np.intp)
    pts = (centres[:, None, :] + ring[None, :, :]).reshape(-1, 2)
    inside = (pts[:, 0] >= 0) & (pts[:, 0] < shape[1]) & (pts[:, 1] >= 0) & (pts[:, 1] < shape[0])
    rgb[pts[inside, 1], pts[inside, 0]] = (255, 60, 60)
    buffer = io.BytesIO()
    Image.fromarray(rgb).save(buffer, format="PNG", compress_level=1)
    return base64.b64encode(buffer.getvalue()).decode("ascii")


def _ring(radius: float) -> np.ndarray:
    """(dx, dy) of the pixels on a circle's outline."""
    r = int(np.ceil(radius)) + 1
    dy, dx = np.mgrid[-r:r + 1, -r:r + 1]
    on = np.abs(np.hypot(dx, dy) - radius) < 0.5
    return np.column_stack([dx[on], dy[on]])


def concentration_bars(rows: list[dict[str, Any]]) -> str | None:
    """Concentration per sample and marker with its 95 % interval (log scale): ``rows`` have
    sample, marker, per_ml, ci95_low, ci95_high."""
    rows = [r for r in rows if r.get("per_ml")]
    if not rows:
        return None
    samples = list(dict.fromkeys(str(r["sample"]) for r in rows))
    markers = sorted({str(r["marker"]) for r in rows})
    fig, ax = plt.subplots(figsize=(max(6.5, 1.2 * len(samples) * len(markers)), 3.6))
    width = 0.8 / len(markers)
    for i, marker in enumerate(markers):
        got = {str(r["sample"]): r for r in rows if r["marker"] == marker}
        x = np.arange(len(samples)) + i * width
        y = [got[s]["per_ml"] if s in got else np.nan for s in samples]
        err = [[(got[s]["per_ml"] - got[s]["ci95_low"]) if s in got else 0 for s in samples],
               [(got[s]["ci95_high"] - got[s]["per_ml"]) if s in got else 0 for s in samples]]
        ax.bar(x, y, width, yerr=err, capsize=2, label=marker)
    ax.set_xticks(np.arange(len(samples)) + 0.4 - width / 2, samples, rotation=20, ha="right")
    ax.set_yscale("log")
    ax.set_ylabel("marker-positive vesicles per mL (95 % interval)")
    ax.legend(fontsize=8)
    return _png(fig)
