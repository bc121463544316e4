"""A run's capture: the sample that flowed (from the event log) and each zone's capture model
(chip geometry from the bench file, vesicle sizes from the sample entry), with the capture
efficiency from the mass-transport model (chipctl.analysis.transport) or, where the bench file
names one, a calibration file (chipctl.analysis.calibration), which overrides the model.

Never a number the simulator computed: the bench file carries geometry only.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from chipctl.analysis import transport
from chipctl.analysis.calibration import (
    CaptureCalibration,
    Tolerances,
    capture_factor,
    load_calibration,
)
from chipctl.analysis.uncertainty import Factor
from chipctl.config.bench import Bench, ZoneSpec


@dataclass(frozen=True)
class SampleFlow:
    """Sample volume pumped at one rate during one step, and the total flow through the chip
    meanwhile (other pumps of the same step, e.g. a monitor's stain, dilute the sample)."""

    step: int
    pump: str
    volume_ul: float
    rate_ul_min: float
    total_rate_ul_min: float

    def segment(self) -> transport.FlowSegment:
        """The capture model's view: the sample's volume at the chip's total flow rate."""
        return transport.FlowSegment(self.total_rate_ul_min, self.volume_ul)


def sample_flows(events: list[dict[str, Any]], bench: Bench | None,
                 params: dict[str, Any]) -> list[SampleFlow]:
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
                if volume > 0 and rate > 0:
                    out.append(SampleFlow(step, pump, volume, rate,
                                          max(sum(rates.values()), rate)))
    return out


def zone_model(bench: Bench, spec: ZoneSpec, sizes: transport.SizeDistribution
               ) -> transport.CaptureModel:
    """The zone's closed-form capture model: flow along +x (stage), the zone's x size its
    length, its y size its width (transport-limited: the reaction rate is not known)."""
    ch = bench.chip.channel
    return transport.CaptureModel(transport.Channel(ch.width_um, ch.height_um),
                                  transport.Zone(spec.size_um[0], spec.size_um[1],
                                                 spec.center_um), sizes)


@dataclass(frozen=True)
class BenchCalibration:
    """The calibration file a bench names (None: the model alone) and what to call it."""

    calibration: CaptureCalibration | None
    source: str

    def covers(self, zone: str) -> bool:
        """Whether the file calibrates this zone (its ratio then already holds the labelling
        efficiency of the reference run: seen vesicles over the model's captured ones)."""
        return self.calibration is not None and zone in self.calibration.zones


def bench_calibration(bench: Bench) -> BenchCalibration:
    """Load ``chip.calibration`` (relative to the bench file); SourceError names file:line."""
    name = bench.chip.calibration
    if not name:
        return BenchCalibration(None, "")
    path = Path(name)
    if not path.is_absolute() and bench.path:
        path = Path(bench.path).parent / path
    return BenchCalibration(load_calibration(path), str(path))


def tolerances(bench: Bench, size_rsd: float = Tolerances.size_rsd) -> Tolerances:
    """What the capture model's inputs may be off by: the chip's from the bench file (the
    maker's tolerance), the vesicle size's as entered (provenance.size_rsd), the rest as
    chipctl.analysis.calibration.Tolerances says."""
    tol = bench.chip.tolerance
    return Tolerances(height_um=tol.channel_height_um, width_um=tol.channel_width_um,
                      zone_length_um=tol.zone_size_um, zone_width_um=tol.zone_size_um,
                      size_rsd=size_rsd)


def zone_capture(model: transport.CaptureModel, flows: list[SampleFlow], zone: str,
                 cal: BenchCalibration, tol: Tolerances | None = None) -> Factor:
    """The zone's capture efficiency over the sample that flowed before it was imaged."""
    return capture_factor(model, [f.segment() for f in flows], zone, cal.calibration, cal.source,
                          tol or Tolerances())


def field_shares(model: transport.CaptureModel, flows: list[SampleFlow],
                 footprints: list[transport.Footprint]) -> list[float]:
    """Each field's share of the zone's capture (flux-weighted over the flow segments)."""
    segments = [f.segment() for f in flows]
    weights = [model.efficiency(s.flow_ul_min) * s.volume_ul for s in segments]
    total = sum(weights)
    if total <= 0:
        return [0.0 for _ in footprints]
    return [sum(w * model.field_share(s.flow_ul_min, fp) for w, s in
                zip(weights, segments, strict=True)) / total for fp in footprints]
