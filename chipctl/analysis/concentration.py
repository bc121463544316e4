"""Marker-positive vesicles per mL of the sample, per antibody zone, from a recorded run.

Each antibody zone is read in its marker's label channel (the protocol's stain step,
chipctl.analysis.labels). Then, every term with its value and its source:

    concentration = (detected / detection - isotype density x imaged area) / imaged share
                    / capture efficiency / sample volume x dilution

- *detected*: the run's own counts on the fields that lie on the zone;
- *detection*: the counted fraction measured from the spots (limit of detection, truncated
  brightness fit, crowding; chipctl.analysis.zone_detection);
- *isotype*: the control zone's detection-corrected density in the same channel;
- *imaged share*: the fields' share of the zone's capture (the flux falls along the zone);
- *capture efficiency*: mass-transport model from chip geometry, flow and vesicle size, or the
  bench's calibration file (chipctl.analysis.capture);
- *volume*: the sample the pumps delivered before the zone was imaged (event log); what stood
  over the zone while every pump was stopped adds its diffusive capture (chipctl.analysis.
  standing), from the stop to the next flow or to the zone's frames;
- *dilution*: as entered (``dilution=1:10``).

The 95 % interval comes from the whole error budget on a log scale
(chipctl.analysis.uncertainty), so it never goes below zero; a zone not above its control
gets an upper limit only. "Raw" is the same arithmetic on the detected counts without the
detection and isotype corrections, printed beside it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from typing import Any

from chipctl.analysis.capture import field_shares, tolerances, zone_capture, zone_model
from chipctl.analysis.detection import DetectionEstimate
from chipctl.analysis.evidence import RunEvidence
from chipctl.analysis.labels import zone_channels, zone_marker
from chipctl.analysis.provenance import size_rsd
from chipctl.analysis.transport import TransportRegime
from chipctl.analysis.uncertainty import ConcentrationEstimate, Factor, FieldCounts, concentration
from chipctl.analysis.zone_detection import ChannelDetection, ZoneFields, factor_of, zone_fields
from chipctl.config.bench import ZoneSpec

VOLUME_RSD = 0.02  # a syringe pump's delivered volume


@dataclass(frozen=True)
class ZoneResult:
    """One antibody zone: what was detected, what is estimated, and the concentration."""

    zone: str
    antibody: str
    marker: str
    channel: str
    fields: int
    detected: int
    estimated_in_view: float  # detection-corrected vesicles in the imaged fields
    imaged_area_mm2: float
    detected_per_mm2: float
    estimated_per_mm2: float  # isotype-subtracted, detection-corrected
    control_per_mm2: float | None
    zone_total: float  # specific vesicles on the whole zone
    per_ml: float
    ci95: tuple[float, float]
    log_sd: float
    upper_limit_only: bool
    raw_per_ml: float  # detected counts, no detection or isotype correction
    raw_ci95: tuple[float, float]  # its interval (counting, capture, volume terms only)
    budget: dict[str, float]
    method: dict[str, dict[str, Any]]
    detection_text: str
    sample_volume_ul: float
    field_counts: FieldCounts = field(repr=False, compare=False)
    estimate: ConcentrationEstimate = field(repr=False, compare=False)
    detection: DetectionEstimate | None = field(repr=False, compare=False, default=None)
    regime: TransportRegime | None = field(repr=False, compare=False, default=None)

    def as_dict(self) -> dict[str, Any]:
        """JSON-able (the report's numbers)."""
        skip = {"field_counts", "estimate", "detection", "regime"}
        out = {k: v for k, v in self.__dict__.items() if k not in skip}
        out["ci95"] = list(self.ci95)
        out["raw_ci95"] = list(self.raw_ci95)
        out["kind"] = {"detected": "spots counted on the imaged fields",
                       "estimated_in_view": "estimated total in view (detection-corrected, "
                       "of any brightness)", "per_ml": "estimated marker-positive vesicles per "
                       "mL of the sample as collected (dilution applied)"}
        return out


@dataclass
class Concentrations:
    """Every antibody zone's result, plus why a zone has none."""

    zones: list[ZoneResult]
    skipped: dict[str, str]
    detections: dict[str, ChannelDetection]

    def detection(self, channel: str) -> ChannelDetection | None:
        """The channel's detection estimates (None if the channel was not imaged)."""
        return self.detections.get(channel)


def estimate(ev: RunEvidence) -> Concentrations:
    """Concentration per antibody zone (skipped zones say why)."""
    channels = {c for _, c in ev.final}
    det = {c: ChannelDetection(ev, c) for c in sorted(channels)}
    out = Concentrations([], {}, det)
    if ev.bench is None or ev.geo is None:
        out.skipped["run"] = "no bench file or frame geometry recorded"
        return out
    controls = [n for n, s in ev.bench.chip.zones.items() if s.is_control]
    for zone, channel in zone_channels(ev.bench, ev.labels).items():
        if channel is None:
            out.skipped[zone] = (f"no label for {zone_marker(ev.bench.chip.zones[zone])} in the "
                                 "protocol's stain step: the zone is read in no channel")
            continue
        result = _zone(ev, zone, channel, controls, det.get(channel))
        if isinstance(result, str):
            out.skipped[zone] = result
        else:
            out.zones.append(result)
    return out


def _control(ev: RunEvidence, controls: list[str], channel: str, det: ChannelDetection
             ) -> FieldCounts | None:
    """The isotype zones' fields in the channel, pooled (uniform non-specific capture)."""
    counts, areas, factors = [], [], []
    for name in controls:
        zf = zone_fields(ev, name, channel)
        if zf is None:
            continue
        counts += zf.counts
        areas += zf.areas_mm2
        factors.append(factor_of(det.zone(name)))
    if not counts:
        return None
    total = sum(areas)
    return FieldCounts.of(counts, [a / total for a in areas], areas, factors[0])


def _zone(ev: RunEvidence, zone: str, channel: str, controls: list[str],
          det: ChannelDetection | None) -> ZoneResult | str:
    assert ev.bench is not None
    spec = ev.bench.chip.zones[zone]
    zf = zone_fields(ev, zone, channel)
    if zf is None or det is None:
        return f"not imaged in {channel}, the channel of its label"
    flows = [f for f in ev.flows if f.step <= zf.step]
    if not flows:
        return "no sample flowed before the zone was imaged"
    model = zone_model(ev.bench, spec, ev.sizes)
    shares = field_shares(model, flows, zf.footprints, zf.imaged_s)
    keep = [k for k, s in enumerate(shares) if s > 0]
    if not keep:
        return "no imaged field lies where the zone captures"
    detection = det.zone(zone)
    fc = FieldCounts.of([zf.counts[k] for k in keep], [shares[k] for k in keep],
                        [zf.areas_mm2[k] for k in keep], factor_of(detection))
    capture = _with_labelling(zone_capture(model, flows, zone, ev.calibration,
                                           tolerances(ev.bench, size_rsd(ev.params)),
                                           zf.imaged_s), ev, zone)
    volume_ul = sum(f.volume_ul for f in flows)
    volume = Factor("volume", volume_ul * 1e-3, VOLUME_RSD, "sample pump: delivered volume")
    control = _control(ev, controls, channel, det)
    est = concentration(fc, capture, volume, ev.dilution, control)
    raw = concentration(FieldCounts.of(fc.counts, fc.shares, fc.areas_mm2,
                                       Factor("detection", 1.0, 0.0)), capture, volume,
                        ev.dilution)
    return _result(ev, zf, spec, fc, est, raw, capture, detection, control, volume_ul,
                   model.regime(max(f.total_rate_ul_min for f in flows)))


def _with_labelling(capture: Factor, ev: RunEvidence, zone: str) -> Factor:
    """Only labelled vesicles can be seen: the labelling efficiency divides like capture,
    unless a calibration covers the zone (its ratio, seen over modelled, already holds it)."""
    lab = ev.labelling
    if lab is None:
        return capture
    if ev.calibration.covers(zone):
        return replace(capture, source=f"{capture.source}; labelling efficiency included in the "
                       f"calibration (entered {lab.value:g} not applied again)")
    return Factor(capture.name, capture.value * lab.value, math.hypot(capture.rsd, lab.rsd),
                  f"{capture.source}; x labelling efficiency {lab.value:g} ({lab.source})")


def _result(ev: RunEvidence, zf: ZoneFields, spec: ZoneSpec, fc: FieldCounts,
            est: ConcentrationEstimate, raw: ConcentrationEstimate, capture: Factor,
            detection: DetectionEstimate | None, control: FieldCounts | None,
            volume_ul: float, regime: TransportRegime) -> ZoneResult:
    area = fc.imaged_area_mm2
    total = est.zone_total
    control_density = (control.detected / control.detection.value / control.imaged_area_mm2
                       if control is not None else None)
    method: dict[str, dict[str, Any]] = {
        "detection": {"value": fc.detection.value, "rsd": fc.detection.rsd,
                      "source": fc.detection.source},
        "isotype control": {"value": control_density, "unit": "per mm²",
                            "source": "isotype zone, same channel, detection-corrected"
                            if control is not None else "no isotype zone imaged in this channel"},
        "imaged share": {"value": fc.imaged_share, "source": "share of the zone's capture "
                         "inside the imaged fields (flux-weighted under flow, even while "
                         "standing; transport model)"},
        "capture efficiency": {"value": capture.value, "rsd": capture.rsd,
                               "source": capture.source},
        "diffusivity (vesicle size)": {"value": ev.sizes.effective_diffusivity_um2_s(),
                                       "unit": "µm²/s",
                         "source": ev.size_source},
        "sample volume": {"value": volume_ul, "unit": "µL", "source": "event log"},
        "dilution": {"value": ev.dilution, "source": ev.dilution_source},
        "label": {"value": zf.channel, "source": ev.labels.source},
    }
    return ZoneResult(
        zf.zone, spec.antibody, zone_marker(spec), zf.channel, len(fc.counts), fc.detected,
        fc.detected / fc.detection.value, area, fc.detected / area,
        total.specific_imaged / area, control_density, total.estimate, est.per_ml, est.ci95,
        est.log_sd, est.upper_limit_only, raw.per_ml, raw.ci95, est.budget, method,
        detection.describe() if detection is not None else fc.detection.source, volume_ul,
        fc, est, detection, regime)


def headline(results: list[ZoneResult]) -> ZoneResult | None:
    """The zone with the highest estimate (each zone counts only its own marker)."""
    usable = [r for r in results if not r.upper_limit_only and math.isfinite(r.log_sd)]
    return max(usable, key=lambda r: r.per_ml) if usable else None
