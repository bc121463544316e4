"""`chipctl calibrate`: a run on a reference material of known concentration becomes a capture
calibration file. Per antibody zone, the vesicles the zone really captured (detection-corrected,
isotype-subtracted, whole zone, from the run's own records) over what the mass-transport model
predicts for that run; a bench file that names the file (``chip.calibration``) then multiplies
the model by that ratio, at any flow rate and volume (chipctl.analysis.calibration).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from chipctl.analysis.calibration import CaptureCalibration, ZoneCalibration, calibrate_zone
from chipctl.analysis.capture import BenchCalibration, zone_model
from chipctl.analysis.concentration import ZoneResult, estimate
from chipctl.analysis.evidence import RunEvidence
from chipctl.analysis.zone_detection import imaged_s
from chipctl.runs.folder import RunFolder

COUNT_TERMS = ("counting", "field-to-field", "detection", "control counting",
               "control field-to-field", "control detection")


class CalibrationRefused(ValueError):
    """A run that cannot calibrate (why, in words)."""


def _captured_rsd(zr: ZoneResult) -> float:
    """Relative sd of the zone's captured total: the count terms of its budget."""
    return math.sqrt(sum(zr.budget.get(k, 0.0) ** 2 for k in COUNT_TERMS))


def calibrate_run(run: RunFolder, reference_per_ml: float, reference_rsd: float,
                  material: str, zones: Sequence[str] = ()) -> CaptureCalibration:
    """The calibration a reference run gives (``reference_per_ml`` of the stock, before the
    run's dilution; every antibody zone unless ``zones`` names some)."""
    if not (math.isfinite(reference_per_ml) and reference_per_ml > 0):
        raise CalibrationRefused("the reference concentration must be a number above 0 per mL")
    ev = RunEvidence.of(run)
    ev.calibration = BenchCalibration(None, "")  # calibrate against the model alone
    conc = estimate(ev)
    loaded = reference_per_ml / ev.dilution
    out: dict[str, ZoneCalibration] = {}
    for zr in conc.zones:
        if zones and zr.zone not in zones:
            continue
        if zr.upper_limit_only or zr.zone_total <= 0:
            raise CalibrationRefused(f"zone {zr.zone}: no capture above the isotype control")
        assert ev.bench is not None
        model = zone_model(ev.bench, ev.bench.chip.zones[zr.zone], ev.sizes)
        rows = ev.final[(zr.zone, zr.channel)]
        flows = [f.segment(imaged_s(rows)) for f in ev.flows if f.step <= int(rows[0]["step"])]
        out[zr.zone] = calibrate_zone(zr.zone_total, _captured_rsd(zr), model, flows, loaded,
                                      reference_rsd, zr.detected)
    missing = [z for z in zones if z not in out]
    if missing or not out:
        why = "; ".join(f"{z}: {conc.skipped.get(z, 'not an antibody zone of this run')}"
                        for z in missing) or "; ".join(f"{z}: {w}" for z, w in
                                                     conc.skipped.items())
        raise CalibrationRefused(f"no zone to calibrate ({why or 'no antibody zones'})")
    return CaptureCalibration(reference_material=material,
                              reference_concentration_per_ml=reference_per_ml,
                              reference_concentration_rsd=reference_rsd,
                              measured=str(run.info.get("started") or ""),
                              chip=ev.bench.chip.name if ev.bench else None, zones=out)
