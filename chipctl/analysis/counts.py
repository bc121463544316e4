"""The numbers of a run's report: counts and densities per zone and channel (isotype control
subtracted, CV across fields) and capture kinetics (first-order fits, chipctl.analysis.kinetics).
Pure functions of the counts table and the frame geometry; concentration is in
chipctl.analysis.concentration.
"""

from __future__ import annotations

import statistics
from collections import defaultdict
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from chipctl.analysis.kinetics import fit_kinetics
from chipctl.config.bench import Bench


@dataclass(frozen=True)
class Geometry:
    """The imaged field: pixel size and frame size give its area."""

    pixel_size_um: float
    width_px: int
    height_px: int

    @property
    def field_area_mm2(self) -> float:
        """Area of one frame on the chip."""
        return self.width_px * self.height_px * (self.pixel_size_um * 1e-3) ** 2

    @property
    def field_size_um(self) -> tuple[float, float]:
        """(width, height) of a field on the chip."""
        return self.width_px * self.pixel_size_um, self.height_px * self.pixel_size_um


def geometry(events: list[dict[str, Any]], bench: Bench | None) -> Geometry | None:
    """From the logged frames (size, pixel size), else the bench camera's settings."""
    frames = [e for e in events if e.get("event") == "frame" and e.get("width")]
    camera = bench.camera if bench is not None else None
    if not frames:
        return None
    last = frames[-1]
    pixel = last.get("pixel_size_um") or (camera.pixel_size_um if camera else None)
    if not pixel:
        return None
    return Geometry(float(pixel), int(last["width"]), int(last["height"]))


@dataclass(frozen=True)
class ZoneChannel:
    """Final counts of one zone in one channel (the last step that imaged it); densities are
    per mm² of zone imaged."""

    zone: str
    channel: str
    step: int
    fields: int
    mean_count: float
    sd_count: float
    cv: float | None
    total_count: int
    density_per_mm2: float | None
    density_sd_per_mm2: float | None
    true_mean_count: float | None
    subtracted_density_per_mm2: float | None = None
    is_control: bool = False

    def as_dict(self) -> dict[str, Any]:
        """JSON-able."""
        return asdict(self)


def imaged_area_mm2(row: dict[str, Any], geo: Geometry, bench: Bench | None) -> float:
    """Area of the zone inside one field (the whole field if its position or zone is unknown;
    a field larger than its zone images the whole zone and bare glass around it)."""
    spec = bench.chip.zones.get(str(row.get("zone"))) if bench is not None else None
    if spec is None or row.get("x_um") is None or row.get("y_um") is None:
        return geo.field_area_mm2
    fw, fh = geo.field_size_um
    (zx, zy), (zw, zh) = spec.center_um, spec.size_um
    dx = min(row["x_um"] + fw / 2, zx + zw / 2) - max(row["x_um"] - fw / 2, zx - zw / 2)
    dy = min(row["y_um"] + fh / 2, zy + zh / 2) - max(row["y_um"] - fh / 2, zy - zh / 2)
    return max(dx, 0.0) * max(dy, 0.0) * 1e-6


def control_zones(bench: Bench | None, zones: set[str]) -> set[str]:
    """The isotype (negative) control zones."""
    if bench is not None and bench.chip.zones:
        found = {name for name, spec in bench.chip.zones.items() if spec.is_control}
        if found:
            return found & zones or found
    return {z for z in zones if "isotype" in z.lower() or "igg" in z.lower()}


def final_rows(counts: list[dict[str, Any]]) -> dict[tuple[str, str], list[dict[str, Any]]]:
    """Per (zone, channel), the rows of the last step that imaged it (one per field)."""
    by_key: dict[tuple[str, str], list[dict[str, Any]]] = defaultdict(list)
    for row in counts:
        by_key[(str(row["zone"]), str(row["channel"]))].append(row)
    final = {}
    for key, rows in by_key.items():
        last_step = max(r["step"] for r in rows)
        latest: dict[Any, dict[str, Any]] = {}
        for row in rows:
            if row["step"] == last_step:
                latest[row["field"]] = row  # a monitor step: the field's last frame
        final[key] = list(latest.values())
    return final


def _mean_sd(values: list[float]) -> tuple[float, float]:
    mean = statistics.fmean(values) if values else 0.0
    sd = statistics.stdev(values) if len(values) > 1 else 0.0
    return mean, sd


def zone_table(counts: list[dict[str, Any]], geo: Geometry | None,
               bench: Bench | None) -> list[ZoneChannel]:
    """Counts and densities per zone and channel, isotype-subtracted, with CV across fields."""
    final = final_rows(counts)
    controls = control_zones(bench, {zone for zone, _ in final})
    table = []
    for (zone, channel), rows in sorted(final.items()):
        values = [float(r["count"]) for r in rows]
        mean, sd = _mean_sd(values)
        density, density_sd = None, None
        if geo is not None:
            areas = [imaged_area_mm2(r, geo, bench) for r in rows]
            densities = [v / a for v, a in zip(values, areas, strict=True) if a > 0]
            density, density_sd = _mean_sd(densities) if densities else (None, None)
        truths = [r["true_count"] for r in rows if r.get("true_count") is not None]
        table.append(ZoneChannel(
            zone, channel, int(rows[0]["step"]), len(rows), mean, sd,
            sd / mean if mean > 0 and len(rows) > 1 else None, int(sum(values)),
            density, density_sd,
            statistics.fmean(truths) if truths else None, is_control=zone in controls))
    return _subtract(table, controls)


def _subtract(table: list[ZoneChannel], controls: set[str]) -> list[ZoneChannel]:
    background: dict[str, list[float]] = {}
    for item in table:
        if item.zone in controls and item.density_per_mm2 is not None:
            background.setdefault(item.channel, []).append(item.density_per_mm2)
    out = []
    for item in table:
        bg = background.get(item.channel)
        sub = None
        if item.density_per_mm2 is not None and bg and not item.is_control:
            sub = item.density_per_mm2 - statistics.fmean(bg)
        out.append(ZoneChannel(**{**asdict(item), "subtracted_density_per_mm2": sub}))
    return out


@dataclass(frozen=True)
class Kinetics:
    """Count versus time in one zone/channel/field during one step, fitted as a first-order
    approach to saturation (chipctl.analysis.kinetics): initial rate, rate constant, plateau,
    each with its 95 % interval; the rate per mm² divides by the zone area inside the field."""

    step: int
    zone: str
    channel: str
    field: int
    t_s: list[float]
    counts: list[int]
    t0_s: float  # when the step's flow started
    regime: str
    rate_per_min: float
    rate_ci95: tuple[float, float]
    k_per_min: float
    k_ci95: tuple[float, float]
    plateau: float
    plateau_ci95: tuple[float, float]
    offset: float
    imaged_area_mm2: float | None
    rate_per_mm2_min: float | None
    flags: tuple[str, ...]

    def as_dict(self) -> dict[str, Any]:
        """JSON-able."""
        return asdict(self)

    def curve(self, t_s: np.ndarray) -> np.ndarray:
        """The fitted count at times ``t_s``."""
        t = np.maximum((np.asarray(t_s, float) - self.t0_s) / 60.0, 0.0)
        if self.k_per_min > 0:
            return np.asarray(self.offset + self.rate_per_min / self.k_per_min
                              * (1 - np.exp(-self.k_per_min * t)))
        return np.asarray(self.offset + self.rate_per_min * t)


def flow_starts(events: list[dict[str, Any]]) -> dict[int, float]:
    """When each step's first pump started (protocol time, s)."""
    starts: dict[int, float] = {}
    step = -1
    for event in events:
        if event.get("event") == "step":
            step = int(event.get("index", -1))
        elif (event.get("event") == "pump_start" and step not in starts
              and event.get("t_s") is not None):
            starts[step] = float(event["t_s"])
    return starts


def kinetics(counts: list[dict[str, Any]], geo: Geometry | None, bench: Bench | None = None,
             events: list[dict[str, Any]] | None = None, min_points: int = 3) -> list[Kinetics]:
    """A first-order capture fit wherever a field was imaged repeatedly within a step (each
    step has its own flow rate, so its own fit)."""
    series: dict[tuple[int, str, str, int], list[dict[str, Any]]] = defaultdict(list)
    for row in counts:
        if row.get("t_s") is not None:
            key = (int(row["step"]), str(row["zone"]), str(row["channel"]), int(row["field"]))
            series[key].append(row)
    starts = flow_starts(events or [])
    out = []
    for (step, zone, channel, fld), rows in sorted(series.items()):
        t = np.array([float(r["t_s"]) for r in rows])
        if len(set(t.tolist())) < min_points:
            continue
        n = np.array([int(r["count"]) for r in rows])
        t0 = min(starts.get(step, float(t.min())), float(t.min()))
        area = imaged_area_mm2(rows[-1], geo, bench) if geo is not None else None
        fit = fit_kinetics(t, n, t0, area or None)
        out.append(Kinetics(step, zone, channel, fld, t.tolist(), n.tolist(), t0, fit.regime,
                            fit.rate_per_min, fit.rate_ci95, fit.k_per_min, fit.k_ci95,
                            fit.plateau, fit.plateau_ci95, fit.offset, area or None,
                            fit.rate_per_mm2_min, fit.flags))
    return out
