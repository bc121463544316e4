"""Vesicle concentration in the sample (particles/mL) from what a zone captured.

For each antibody zone: the isotype-subtracted count per field, corrected for where the fields
lie in the zone's flux profile and scaled from the imaged area to the zone's area, divided by
the sample volume that flowed times the fraction of it the zone captures (transport fraction at
each flow rate x the chip's capture efficiency; chipctl.runs.capture). That is the
concentration of vesicles carrying the zone's marker. Uncertainty: counts (Poisson, or the
field-to-field scatter where larger) and the capture efficiency's relative uncertainty (run
parameter capture_efficiency_rsd, default 15 %), in quadrature.
"""

from __future__ import annotations

import math
import statistics
from dataclasses import asdict, dataclass
from typing import Any

from chipctl.bench import Bench, ZoneSpec
from chipctl.runs.analysis import Geometry, control_zones, final_rows, zone_table
from chipctl.runs.capture import field_profile, transport_fraction

DEFAULT_EFFICIENCY_RSD = 0.15


@dataclass(frozen=True)
class FlowSegment:
    """Sample volume pumped at one rate during one step."""

    step: int
    pump: str
    volume_ul: float
    rate_ul_min: float


@dataclass(frozen=True)
class ZoneConcentration:
    """One antibody zone's estimate of the concentration of vesicles carrying its marker."""

    zone: str
    antibody: str
    channel: str
    per_field: float
    zone_total: float
    sample_volume_ul: float
    capture_fraction: float
    concentration_per_ml: float
    sd_per_ml: float
    counts_rsd: float
    efficiency_rsd: float
    true_per_field: float | None

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
    reagents = {n: str(s.settings.get("reagent", "")) for n, s in
                (bench.of_kind("pump").items() if bench else [])}
    step, step_pump, step_reagent = -1, "", ""
    rates: dict[str, float] = {}
    out = []
    for event in events:
        kind = event.get("event")
        if kind == "step":
            step, step_pump = int(event.get("index", -1)), str(event.get("pump", ""))
            step_reagent = str(event.get("reagent", ""))
        elif kind == "pump_start":
            rates[str(event.get("pump"))] = float(event.get("rate_ul_min") or 0.0)
        elif kind == "pump_done":
            pump = str(event.get("pump"))
            reagent = step_reagent if pump == step_pump and step_reagent else reagents.get(pump, "")
            if pump == params.get("sample_pump") or reagent.lower() == "sample":
                volume = abs(float(event.get("delivered_ul") or 0.0))
                out.append(FlowSegment(step, pump, volume, rates.get(pump, 0.0)))
    return out


def _profiles(rows: list[dict[str, Any]], spec: ZoneSpec | None, geo: Geometry,
              uniform: bool) -> list[float]:
    if uniform or spec is None:
        return [1.0] * len(rows)
    length = spec.size_um[0]
    zone_x0 = spec.center_um[0] - length / 2
    half = geo.field_size_um[0] / 2
    return [1.0 if r.get("x_um") is None else
            field_profile(r["x_um"] - half, r["x_um"] + half, zone_x0, length) for r in rows]


def _corrected(rows: list[dict[str, Any]], profiles: list[float]) -> tuple[float, float, float]:
    """Mean count per field at the zone's mean flux, its Poisson and empirical variances."""
    counts = [float(r["count"]) for r in rows]
    if not rows:
        return 0.0, 0.0, 0.0
    mean = sum(counts) / sum(profiles)
    poisson = sum(counts) / sum(profiles) ** 2
    scaled = [c / p for c, p in zip(counts, profiles, strict=True)]
    empirical = statistics.variance(scaled) / len(scaled) if len(scaled) > 1 else 0.0
    return mean, poisson, empirical


def estimate(counts: list[dict[str, Any]], events: list[dict[str, Any]], bench: Bench | None,
             geo: Geometry | None, params: dict[str, Any]) -> list[ZoneConcentration]:
    """An estimate per antibody zone (empty without the bench chip or frame geometry)."""
    if bench is None or geo is None or not bench.chip.zones:
        return []
    flows = sample_flows(events, bench, params)
    chip = bench.chip
    efficiency = _param(params, "capture_efficiency", chip.capture_efficiency)
    eff_rsd = _param(params, "capture_efficiency_rsd", DEFAULT_EFFICIENCY_RSD)
    diameter = _param(params, "vesicle_diameter_nm", 100.0)
    final = final_rows(counts)
    controls = control_zones(bench, {z for z, _ in final})
    best = _best_channels(zone_table(counts, geo, bench))
    out = []
    for zone, channel in best.items():
        spec = chip.zones.get(zone)
        used = [f for f in flows if f.step < final[(zone, channel)][0]["step"]]
        if spec is None or not used:
            continue
        fractions = [transport_fraction(f.rate_ul_min, chip.channel.width_um,
                                        chip.channel.height_um, spec.size_um[0], diameter)
                     for f in used]
        uniform = any(fr >= 1.0 for fr in fractions)
        rows = final[(zone, channel)]
        m_z, p_z, e_z = _corrected(rows, _profiles(rows, spec, geo, uniform))
        m_b, p_b, e_b = 0.0, 0.0, 0.0
        bg_rows = [r for c in controls for r in final.get((c, channel), [])]
        if bg_rows:
            bg_spec = chip.zones.get(str(bg_rows[0]["zone"]))
            m_b, p_b, e_b = _corrected(bg_rows, _profiles(bg_rows, bg_spec, geo, uniform))
        per_field = m_z - m_b
        var = max(p_z + p_b, e_z + e_b)
        zone_area_mm2 = spec.size_um[0] * spec.size_um[1] * 1e-6
        total = per_field * zone_area_mm2 / geo.field_area_mm2
        volume = sum(f.volume_ul for f in used)
        captured_volume_ml = sum(f.volume_ul * 1e-3 * efficiency * fr
                                 for f, fr in zip(used, fractions, strict=True))
        if captured_volume_ml <= 0:
            continue
        conc = total / captured_volume_ml
        counts_rsd = math.sqrt(var) / per_field if per_field > 0 else float("inf")
        sd = abs(conc) * math.hypot(counts_rsd, eff_rsd) if per_field > 0 else float("inf")
        truths = [r["true_count"] for r in rows if r.get("true_count") is not None]
        out.append(ZoneConcentration(
            zone, spec.antibody, channel, per_field, total, volume,
            captured_volume_ml * 1e3 / volume, conc, sd, counts_rsd, eff_rsd,
            statistics.fmean(truths) if truths else None))
    return out


def _best_channels(table: list[Any]) -> dict[str, str]:
    """Per antibody zone, the channel with the most (isotype-subtracted) vesicles."""
    best: dict[str, tuple[float, str]] = {}
    for item in table:
        if item.is_control:
            continue
        value = item.subtracted_density_per_mm2
        value = item.density_per_mm2 if value is None else value
        if value is not None and (item.zone not in best or value > best[item.zone][0]):
            best[item.zone] = (value, item.channel)
    return {zone: channel for zone, (_, channel) in best.items()}


def headline(estimates: list[ZoneConcentration]) -> ZoneConcentration | None:
    """The zone with the highest estimate: a lower bound on the sample's EV concentration."""
    usable = [e for e in estimates if math.isfinite(e.sd_per_ml)]
    return max(usable, key=lambda e: e.concentration_per_ml) if usable else None
