"""Vesicle concentration in the sample (particles/mL) from what a zone captured.

For each antibody zone: the isotype-subtracted density of captured vesicles on the imaged part
of the zone (field ∩ zone), corrected for where the fields lie in the zone's flux profile, times
the zone's area, divided by
the sample volume that flowed times the fraction of it the zone captures (transport fraction at
each flow rate x the chip's capture efficiency; chipctl.analysis.capture). That is the
concentration of vesicles carrying the zone's marker. Uncertainty: counts (Poisson, or the
field-to-field scatter where larger) and the capture efficiency's relative uncertainty (run
parameter capture_efficiency_rsd, default 15 %), in quadrature. Each zone is read in the
channel whose detection label binds its marker when the run parameter `labels` says which
(e.g. "AF488=CD9,AF555=CD63,AF647=CD81"), else in its most populated channel.
"""

from __future__ import annotations

import math
import statistics
from dataclasses import asdict, dataclass
from typing import Any

from chipctl.analysis.capture import field_profile, transport_fraction
from chipctl.analysis.counts import (
    Geometry,
    control_zones,
    final_rows,
    imaged_area_mm2,
    zone_table,
)
from chipctl.config.bench import Bench, ZoneSpec

DEFAULT_EFFICIENCY_RSD = 0.15


@dataclass(frozen=True)
class FlowSegment:
    """Sample volume pumped at one rate during one step, and the total flow through the chip
    meanwhile (other pumps of the same step, e.g. a monitor's stain, dilute the sample)."""

    step: int
    pump: str
    volume_ul: float
    rate_ul_min: float
    total_rate_ul_min: float


@dataclass(frozen=True)
class ZoneConcentration:
    """One antibody zone's estimate of the concentration of vesicles carrying its marker."""

    zone: str
    antibody: str
    channel: str
    density_per_mm2: float  # isotype-subtracted, at the zone's mean flux
    zone_total: float
    sample_volume_ul: float
    capture_fraction: float
    concentration_per_ml: float
    sd_per_ml: float
    counts_rsd: float
    efficiency_rsd: float
    from_true_counts_per_ml: float | None  # the same estimate from the simulator's true counts

    @property
    def ci95(self) -> tuple[float, float]:
        """95 % interval (normal approximation)."""
        return (self.concentration_per_ml - 1.96 * self.sd_per_ml,
                self.concentration_per_ml + 1.96 * self.sd_per_ml)

    def as_dict(self) -> dict[str, Any]:
        """JSON-able."""
        return {**asdict(self), "ci95": list(self.ci95)}


def _param(params: dict[str, Any], name: str, default: float) -> float:
    try:
        return float(params.get(name, default))
    except (TypeError, ValueError):
        return default


def sample_flows(events: list[dict[str, Any]], bench: Bench | None,
                 params: dict[str, Any]) -> list[FlowSegment]:
    """Sample volumes that flowed over the chip, by step, from the event log."""
    reagents = {n: s.reagent for n, s in (bench.pumps.items() if bench else [])}
    step, step_pump, step_reagent = -1, "", ""
    rates: dict[str, float] = {}  # pumps started in the current step
    out = []
    for event in events:
        kind, pump = event.get("event"), str(event.get("pump"))
        if kind == "step":
            step, step_pump = int(event.get("index", -1)), str(event.get("pump", ""))
            step_reagent, rates = str(event.get("reagent", "")), {}
        elif kind == "pump_start" and event.get("direction", "infuse") == "infuse":
            rates[pump] = float(event.get("rate_ul_min") or 0.0)
        elif kind == "pump_done":
            reagent = step_reagent if pump == step_pump and step_reagent else reagents.get(pump, "")
            if pump == params.get("sample_pump") or reagent.lower() == "sample":
                volume = abs(float(event.get("delivered_ul") or 0.0))
                rate = rates.get(pump, 0.0)
                out.append(FlowSegment(step, pump, volume, rate, max(sum(rates.values()), rate)))
    return out


def _weights(rows: list[dict[str, Any]], spec: ZoneSpec | None, geo: Geometry, bench: Bench,
             uniform: bool) -> list[float]:
    """Per field: imaged zone area (mm²) x its expected flux relative to the zone's mean."""
    out = []
    half = geo.field_size_um[0] / 2
    for row in rows:
        area = imaged_area_mm2(row, geo, bench)
        if uniform or spec is None or row.get("x_um") is None:
            out.append(area)
            continue
        length = spec.size_um[0]
        zone_x0 = spec.center_um[0] - length / 2
        out.append(area * field_profile(row["x_um"] - half, row["x_um"] + half, zone_x0, length))
    return out


def _density(rows: list[dict[str, Any]], weights: list[float],
             key: str = "count") -> tuple[float, float, float]:
    """Zone-mean density (per mm²) from the fields, its Poisson and empirical variances."""
    pairs = [(float(r[key]), w) for r, w in zip(rows, weights, strict=True)
             if w > 0 and r.get(key) is not None]
    if not pairs:
        return 0.0, 0.0, 0.0
    total, weight = sum(c for c, _ in pairs), sum(w for _, w in pairs)
    scaled = [c / w for c, w in pairs]
    empirical = statistics.variance(scaled) / len(scaled) if len(scaled) > 1 else 0.0
    return total / weight, total / weight**2, empirical


@dataclass(frozen=True)
class _Context:
    bench: Bench
    geo: Geometry
    final: dict[tuple[str, str], list[dict[str, Any]]]
    controls: set[str]
    flows: list[FlowSegment]
    efficiency: float
    efficiency_rsd: float
    diameter_nm: float


def _subtracted(ctx: _Context, zone: str, channel: str, uniform: bool,
                key: str) -> tuple[float, float]:
    """Zone density minus the isotype zones' density in the same channel, and its variance."""
    zones = ctx.bench.chip.zones
    rows = ctx.final[(zone, channel)]
    d_z, p_z, e_z = _density(rows, _weights(rows, zones.get(zone), ctx.geo, ctx.bench, uniform),
                             key)
    bg_rows = [r for c in ctx.controls for r in ctx.final.get((c, channel), [])]
    d_b = p_b = e_b = 0.0
    if bg_rows:
        spec = zones.get(str(bg_rows[0]["zone"]))
        d_b, p_b, e_b = _density(bg_rows, _weights(bg_rows, spec, ctx.geo, ctx.bench, uniform),
                                 key)
    return d_z - d_b, max(p_z + p_b, e_z + e_b)


def _zone_estimate(ctx: _Context, zone: str, channel: str) -> ZoneConcentration | None:
    chip = ctx.bench.chip
    spec = chip.zones.get(zone)
    used = [f for f in ctx.flows if f.step <= ctx.final[(zone, channel)][0]["step"]]
    if spec is None or not used:
        return None
    fractions = [transport_fraction(f.total_rate_ul_min, chip.channel.width_um,
                                    chip.channel.height_um, spec.size_um[0], ctx.diameter_nm,
                                    spec.size_um[1]) for f in used]
    uniform = any(fr >= min(1.0, spec.size_um[1] / chip.channel.width_um) for fr in fractions)
    density, var = _subtracted(ctx, zone, channel, uniform, "count")
    zone_area_mm2 = spec.size_um[0] * spec.size_um[1] * 1e-6
    volume = sum(f.volume_ul for f in used)
    captured_ml = sum(f.volume_ul * 1e-3 * ctx.efficiency * fr
                      for f, fr in zip(used, fractions, strict=True))
    if captured_ml <= 0 or volume <= 0:
        return None
    conc = density * zone_area_mm2 / captured_ml
    counts_rsd = math.sqrt(var) / density if density > 0 else float("inf")
    sd = abs(conc) * math.hypot(counts_rsd, ctx.efficiency_rsd) if density > 0 else float("inf")
    rows = ctx.final[(zone, channel)]
    truth = None
    if all(r.get("true_count") is not None for r in rows):
        true_density, _ = _subtracted(ctx, zone, channel, uniform, "true_count")
        truth = true_density * zone_area_mm2 / captured_ml
    return ZoneConcentration(zone, spec.antibody, channel, density, density * zone_area_mm2,
                             volume, captured_ml * 1e3 / volume, conc, sd, counts_rsd,
                             ctx.efficiency_rsd, truth)


def estimate(counts: list[dict[str, Any]], events: list[dict[str, Any]], bench: Bench | None,
             geo: Geometry | None, params: dict[str, Any]) -> list[ZoneConcentration]:
    """An estimate per antibody zone (empty without the bench chip or frame geometry)."""
    if bench is None or geo is None or not bench.chip.zones:
        return []
    final = final_rows(counts)
    ctx = _Context(bench, geo, final, control_zones(bench, {z for z, _ in final}),
                   sample_flows(events, bench, params),
                   _param(params, "capture_efficiency", _calibrated_efficiency(bench)),
                   _param(params, "capture_efficiency_rsd", DEFAULT_EFFICIENCY_RSD),
                   _param(params, "vesicle_diameter_nm", 100.0))
    best = _best_channels(zone_table(counts, geo, bench), bench,
                          parse_labels(str(params.get("labels", ""))))
    found = (_zone_estimate(ctx, zone, channel) for zone, channel in best.items())
    return [e for e in found if e is not None]


def _calibrated_efficiency(bench: Bench) -> float:
    """The chip's reaction efficiency where its bench file states one (a calibration the lab
    made); else 1: capture as fast as mass transport allows (transport_fraction, computed here
    from the chip's geometry and the flow), never a number the simulator computed."""
    if "capture_efficiency" in bench.chip.model_fields_set:
        return bench.chip.capture_efficiency
    return 1.0


def parse_labels(text: str) -> dict[str, str]:
    """Run parameter `labels`, e.g. "AF488=CD9, AF555=CD63, AF647=CD81": channel -> marker."""
    pairs = (item.replace(":", "=").partition("=") for item in text.split(","))
    return {k.strip(): v.strip() for k, sep, v in pairs if sep and k.strip() and v.strip()}


def _best_channels(table: list[Any], bench: Bench, labels: dict[str, str]) -> dict[str, str]:
    """Per antibody zone, the channel whose detection label binds the zone's marker (run
    parameter `labels`), else the channel with the most (isotype-subtracted) vesicles."""
    best: dict[str, tuple[float, str]] = {}
    for item in table:
        if item.is_control:
            continue
        value = item.subtracted_density_per_mm2
        value = item.density_per_mm2 if value is None else value
        spec = bench.chip.zones.get(item.zone)
        marker = labels.get(item.channel, "")
        if marker and spec is not None and marker.lower() in spec.antibody.lower():
            value = float("inf")
        if value is not None and (item.zone not in best or value > best[item.zone][0]):
            best[item.zone] = (value, item.channel)
    return {zone: channel for zone, (_, channel) in best.items()}


def headline(estimates: list[ZoneConcentration]) -> ZoneConcentration | None:
    """The zone with the highest estimate: a lower bound on the sample's EV concentration."""
    usable = [e for e in estimates if math.isfinite(e.sd_per_ml)]
    return max(usable, key=lambda e: e.concentration_per_ml) if usable else None
