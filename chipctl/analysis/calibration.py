"""The capture efficiency a concentration divides by: from the transport model with the
uncertainty of what the user entered, or from a calibration file, which overrides the model.

A calibration file is what `chipctl calibrate` writes after running a reference material of
known concentration: per zone, the ratio of the vesicles the zone really captured (detection-
corrected) to what the transport model predicted for that run. Storing the ratio, not the
efficiency, carries it over to other flow rates and volumes through the model. A bench file
names the file; every number in it is checked on loading, and problems name the file and line.

```yaml
kind: capture calibration
reference_material: 100 nm fluorescent liposomes, lot 7
reference_concentration_per_ml: 2.0e9
reference_concentration_rsd: 0.05
measured: 2026-03-02
zones:
  CD63: {factor: 0.82, rsd: 0.06, flow_ul_min: 2.0}
```
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from chipctl.analysis.transport import (
    CaptureModel,
    FlowSegment,
    SizeDistribution,
    captured_ul,
    captured_volume_ml,
)
from chipctl.analysis.uncertainty import Factor
from chipctl.config.sourcefile import Problem, SourceError, line_of, load_yaml


class ZoneCalibration(BaseModel):
    """One zone's measured / model capture ratio and its relative standard uncertainty."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    factor: float = Field(gt=0)
    rsd: float = Field(ge=0)
    flow_ul_min: float | None = Field(default=None, gt=0)  # flow of the calibration run
    detected: int | None = Field(default=None, ge=0)  # spots it rests on


class CaptureCalibration(BaseModel):
    """A calibration file: which reference material, and the ratio per zone."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    kind: Literal["capture calibration"] = "capture calibration"
    reference_material: str = Field(min_length=1)
    reference_concentration_per_ml: float = Field(gt=0)
    reference_concentration_rsd: float = Field(default=0.0, ge=0)
    measured: str | None = None
    chip: str | None = None
    zones: dict[str, ZoneCalibration] = Field(min_length=1)


def load_calibration(path: str | Path) -> CaptureCalibration:
    """Read and check a calibration file; problems raise SourceError naming file and line."""
    data = load_yaml(path, "calibration file")
    if isinstance(data, dict) and "measured" in data and data["measured"] is not None:
        data["measured"] = str(data["measured"])  # YAML reads a bare date as a date
    try:
        return CaptureCalibration.model_validate(data)
    except ValidationError as exc:
        raise SourceError([Problem(str(path), line_of(data, err["loc"]),
                                   f"{'.'.join(str(p) for p in err['loc']) or 'file'}: "
                                   f"{err['msg']}") for err in exc.errors()]) from exc


def dump_calibration(calibration: CaptureCalibration) -> str:
    """The calibration as YAML text (what `chipctl calibrate` writes)."""
    data = calibration.model_dump(exclude_none=True)
    data["zones"] = {k: {n: v for n, v in z.items() if v is not None}
                     for k, z in data["zones"].items()}
    return yaml.safe_dump(data, sort_keys=False)


def calibrate_zone(estimated_captured: float, estimated_rsd: float, model: CaptureModel,
                   segments: Sequence[FlowSegment], reference_per_ml: float,
                   reference_rsd: float, detected: int | None = None) -> ZoneCalibration:
    """The ratio for one zone from a run on the reference material: vesicles the zone captured
    (detection-corrected, whole zone, with relative sd) over the model's prediction."""
    predicted = reference_per_ml * captured_volume_ml(model, segments)
    if predicted <= 0 or estimated_captured <= 0:
        raise ValueError("a calibration needs a captured count and a predicted capture > 0")
    flows = {s.flow_ul_min for s in segments}
    return ZoneCalibration(factor=estimated_captured / predicted,
                           rsd=math.hypot(estimated_rsd, reference_rsd),
                           flow_ul_min=flows.pop() if len(flows) == 1 else None,
                           detected=detected)


@dataclass(frozen=True)
class Tolerances:
    """How well the user knows the model's inputs (absolute um, relative for the rest)."""

    height_um: float = 2.0
    width_um: float = 10.0
    zone_length_um: float = 10.0
    zone_width_um: float = 10.0
    size_rsd: float = 0.05  # of the median diameter
    flow_rsd: float = 0.01  # the pump's flow accuracy
    model_form: float = 0.025  # closed form against the numerical solution (transport tests)


def _efficiency(model: CaptureModel, segments: Sequence[FlowSegment]) -> float:
    volume = sum(s.volume_ul for s in segments)
    return sum(captured_ul(model, s) for s in segments) / volume


def model_rsd(model: CaptureModel, segments: Sequence[FlowSegment],
              tol: Tolerances = Tolerances()) -> dict[str, float]:
    """Relative uncertainty of the modelled efficiency from each input (numerical sensitivity)."""
    base = _efficiency(model, segments)
    ch, zone = model.channel, model.zone
    sizes = SizeDistribution(tuple(d * (1 + tol.size_rsd) for d in model.sizes.diameters_nm),
                             model.sizes.weights)
    variants = {
        "channel height": replace(model, channel=replace(ch, height_um=ch.height_um
                                                         + tol.height_um)),
        "channel width": replace(model, channel=replace(ch, width_um=ch.width_um
                                                        + tol.width_um)),
        "zone length": replace(model, zone=replace(zone, length_um=zone.length_um
                                                   + tol.zone_length_um)),
        "zone width": replace(model, zone=replace(zone, width_um=zone.width_um
                                                  + tol.zone_width_um)),
        "vesicle size": replace(model, sizes=sizes),
    }
    out = {name: abs(_efficiency(m, segments) / base - 1) for name, m in variants.items()}
    faster = [replace(s, flow_ul_min=s.flow_ul_min * (1 + tol.flow_rsd)) for s in segments]
    out["flow rate"] = abs(_efficiency(model, faster) / base - 1)
    out["model form"] = tol.model_form
    return out


def capture_factor(model: CaptureModel, segments: Sequence[FlowSegment], zone_name: str,
                   calibration: CaptureCalibration | None = None, source: str = "",
                   tol: Tolerances = Tolerances()) -> Factor:
    """The zone's capture efficiency for these flow segments, with where it comes from."""
    if not segments or sum(s.volume_ul for s in segments) <= 0:
        raise ValueError("no sample volume flowed over the chip")
    modelled = _efficiency(model, segments)
    zone_cal = calibration.zones.get(zone_name) if calibration is not None else None
    if calibration is not None and zone_cal is not None:
        where = f"calibration {source or '(file)'}: {calibration.reference_material}"
        return Factor("capture efficiency", zone_cal.factor * modelled, zone_cal.rsd, where)
    rsd = math.sqrt(sum(r**2 for r in model_rsd(model, segments, tol).values()))
    kind = ("transport-limited" if model.reaction_velocity_um_s is None
            else f"k_r = {model.reaction_velocity_um_s:g} um/s")
    return Factor("capture efficiency", modelled, rsd, f"mass-transport model ({kind})")

