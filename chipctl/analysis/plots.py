"""Report figures: matplotlib on the Agg backend, embedded as base64 PNG."""

from __future__ import annotations

import base64
import io
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from chipctl.analysis.counts import Kinetics, ZoneChannel  # noqa: E402


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
    """Count versus time with the fitted capture rate."""
    if not series:
        return None
    fig, ax = plt.subplots(figsize=(6.5, 3.4))
    for k in series:
        t = np.array(k.t_s) / 60
        label = f"step {k.step + 1} {k.zone} {k.channel} f{k.field}"
        line = ax.plot(t, k.counts, "o", ms=3, label=label)[0]
        ax.plot(t, k.intercept + k.rate_per_min * t, "-", color=line.get_color(), lw=1)
    ax.set_xlabel("time (min)")
    ax.set_ylabel("vesicles in field")
    ax.legend(fontsize=7)
    return _png(fig)


def intensity_histogram(intensities: dict[str, list[float]]) -> str | None:
    """Spot amplitude distribution per channel."""
    if not any(v > 0 for values in intensities.values() for v in values):
        return None
    fig, ax = plt.subplots(figsize=(6.5, 3.2))
    positive = [v for values in intensities.values() for v in values if v > 0]
    bins = np.geomspace(max(min(positive), 1.0), max(positive) * 1.01, 60)
    for channel, values in sorted(intensities.items()):
        if values:
            ax.hist(values, bins=bins.tolist(), histtype="step",
                    label=f"{channel} (n={len(values)})")
    ax.set_xscale("log")
    ax.set_xlabel("spot amplitude (ADU above background, log scale)")
    ax.set_ylabel("spots")
    ax.legend(fontsize=8)
    return _png(fig)
