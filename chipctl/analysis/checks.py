"""The run's quality-control flags, each computed from what a real bench records (spots, counts,
fits, frames; never simulator truth): counts near the limit of detection, crowding, field CV
beyond Poisson, bleaching between fields, camera saturation, focus, bleed-through, intervals
wider than the estimate, the transport model's range, and kinetics (negative or
non-significant slope, sites filling). The checks themselves are in chipctl.analysis.qc.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import asdict
from typing import Any

import numpy as np

from chipctl.analysis import qc
from chipctl.analysis.concentration import Concentrations, ZoneResult
from chipctl.analysis.counts import Kinetics
from chipctl.analysis.evidence import RunEvidence
from chipctl.analysis.imagery import FrameQC
from chipctl.analysis.kinetics import KineticsFit


def zone_flags(zr: ZoneResult) -> list[qc.Flag]:
    """Detection, dispersion, interval and transport checks of one zone's result."""
    subject = f"{zr.zone} ({zr.channel})"
    found: list[qc.Flag | None] = [qc.field_dispersion(zr.field_counts, subject),
                                   qc.wide_interval(zr.estimate, subject)]
    if zr.detection is not None:
        found += [qc.near_limit_of_detection(zr.detection, subject),
                  qc.crowding(zr.detection, subject)]
    if zr.regime is not None:
        found.append(qc.transport_validity(zr.regime, subject))
    share = zr.field_counts.imaged_share
    if share > 1 + 1e-6:
        found.append(qc.Flag("overlapping-fields", subject,
                             f"the fields' shares of the zone add up to {share:.2f}: they overlap"
                             " (or repeat), so vesicles are counted more than once and the "
                             "concentration is not reliable; image distinct fields", share, 1.0))
    return [f for f in found if f is not None]


def bleaching_flags(ev: RunEvidence, conc: Concentrations) -> list[qc.Flag]:
    """Spots dimmer field after field, per zone and channel (fields in imaging order)."""
    if ev.spots is None:
        return []
    out = []
    for zr in conc.zones:
        rows = sorted(ev.final.get((zr.zone, zr.channel), []), key=lambda r: r.get("t_s") or 0)
        spots = ev.spots.select(zr.zone, zr.channel, int(rows[0]["step"])) if rows else None
        if spots is None:
            continue
        by_field = [spots.photons[spots.field == int(r["field"])] for r in rows]
        flag = qc.bleaching(by_field, f"{zr.zone} ({zr.channel})")
        if flag is not None:
            out.append(flag)
    return out


def saturation_flags(counts: list[dict[str, Any]]) -> list[qc.Flag]:
    """Spots the counter rejected as saturated, per zone and channel."""
    totals: dict[tuple[str, str], list[int]] = defaultdict(lambda: [0, 0])
    for row in counts:
        if row.get("saturated") is not None:
            key = (str(row["zone"]), str(row["channel"]))
            totals[key][0] += int(row["saturated"])
            totals[key][1] += int(row["count"])
    found = (qc.camera_saturation(sat, n, f"{z} ({c})") for (z, c), (sat, n) in
             sorted(totals.items()))
    return [f for f in found if f is not None]


def focus_flags(frames: Sequence[FrameQC]) -> list[qc.Flag]:
    """Frames much less sharp than the median of their zone and channel."""
    groups: dict[tuple[str, str], dict[str, float]] = defaultdict(dict)
    for q in frames:
        groups[(q.zone, q.channel)][f"field {q.field}: {q.file}"] = q.focus
    return [f for (z, c), scores in sorted(groups.items())
            for f in qc.out_of_focus(scores, f"{z} ({c})")]


def kinetics_flags(series: Sequence[Kinetics]) -> list[qc.Flag]:
    """A negative or non-significant capture slope, and binding sites filling."""
    out = []
    for k in series:
        subject = f"step {k.step + 1} {k.zone} ({k.channel}) field {k.field}"
        fit = _as_fit(k)
        for flag in (qc.kinetics(fit, subject), qc.capture_saturation(fit, subject)):
            if flag is not None:
                out.append(flag)
    return out


def _as_fit(k: Kinetics) -> KineticsFit:
    return KineticsFit(k.regime, len(k.t_s), k.rate_per_min, k.rate_ci95,  # type: ignore[arg-type]
                       k.k_per_min, k.k_ci95, k.plateau, k.plateau_ci95, k.offset, 1.0,
                       _slope_z(k), (max(k.t_s) - k.t0_s) / 60.0, k.imaged_area_mm2, k.flags)


def _slope_z(k: Kinetics) -> float:
    lo, hi = k.rate_ci95
    half = (hi - lo) / 2
    return float(k.rate_per_min / (half / 1.96)) if half > 0 else float(np.inf)


def as_dicts(flags: Sequence[qc.Flag]) -> list[dict[str, Any]]:
    """JSON-able flags."""
    return [asdict(f) for f in flags]
