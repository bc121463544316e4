"""Everything a run's report says, as one JSON-able dict (written beside the HTML as
report.json, so the report's numbers can be checked and reused): results first (per zone and
marker: detected, estimated total, density, concentration with its interval, co-expression),
then QC, the method (every correction with its value and source), the sample's provenance and
the record."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from chipctl.analysis import checks
from chipctl.analysis.coexpression import coexpression
from chipctl.analysis.concentration import estimate, headline
from chipctl.analysis.counts import kinetics, zone_table
from chipctl.analysis.evidence import RunEvidence, load_run_bench
from chipctl.analysis.imagery import analyse
from chipctl.analysis.provenance import (
    misev_items,
    particle_protein_ratio,
    preclearing,
    protein,
)
from chipctl.runs.folder import RunFolder

__all__ = ["load_run_bench", "summarize"]
RUN_KEYS = ("run_id", "protocol", "protocol_source", "protocol_sha256", "bench", "operator",
            "sample", "status", "reason", "started", "ended", "last_completed_step",
            "steps_total", "keep_frames", "versions")


def summarize(run: RunFolder) -> dict[str, Any]:
    """The report's content (SourceError / SampleInfoError for an unusable entry)."""
    ev = RunEvidence.of(run)
    conc = estimate(ev)
    coex, bleed = coexpression(ev, conc)
    series = kinetics(run.counts, ev.geo, ev.bench, run.events)
    images = analyse(run.path, run.frames(), ev.geo.pixel_size_um if ev.geo else None,
                     run.detections())
    best = headline(conc.zones)
    flags = ([f for zr in conc.zones for f in checks.zone_flags(zr)]
             + checks.bleaching_flags(ev, conc) + checks.saturation_flags(run.counts)
             + checks.focus_flags(images.qc) + bleed + checks.kinetics_flags(series))
    results = [zr.as_dict() | {"coexpression": [c.as_dict() for c in coex if c.zone == zr.zone]}
               for zr in conc.zones]
    return {
        "run": {k: run.info.get(k) for k in RUN_KEYS},
        "parameters": ev.params,
        "results": results,
        "skipped": conc.skipped,
        "headline": best.as_dict() if best else None,
        "qc_flags": checks.as_dicts(flags),
        "image_flags": images.flags,
        "sample": _sample(ev, best),
        "labels": {"dyes": ev.labels.dyes, "source": ev.labels.source},
        "kinetics": [k.as_dict() for k in series],
        "zones": [t.as_dict() for t in zone_table(run.counts, ev.geo, ev.bench)],
        "geometry": asdict(ev.geo) | {"field_area_mm2": ev.geo.field_area_mm2}
        if ev.geo else None,
        "counts_rows": len(run.counts),
        "steps": _steps(run),
        "imagery": {"frames": images.frames, "detections": images.detections,
                    "qc": [asdict(q) for q in images.qc], "drift": images.drift,
                    "notes": images.notes + ev.notes, "photons": _photons(ev),
                    "thumbnails": images.thumbnails},
    }


def _sample(ev: RunEvidence, best: Any) -> dict[str, Any]:
    """The sample's provenance, structured."""
    prot = protein(ev.params)
    ratio = None
    if prot is not None and best is not None:
        ratio = particle_protein_ratio(best.per_ml, best.log_sd, prot)
        if ratio is not None:
            ratio["marker"] = best.marker
    return {"name": ev.params.get("sample", ""), "dilution": ev.dilution,
            "dilution_source": ev.dilution_source, "size_source": ev.size_source,
            "preclearing": preclearing(ev.params), "misev": misev_items(ev.params),
            "particle_protein_ratio": ratio}


def _photons(ev: RunEvidence) -> dict[str, list[float]]:
    """Spot photons per marker (its label's channel, every zone): a relative size proxy."""
    if ev.spots is None:
        return {}
    out = {}
    for marker, dye in sorted(ev.labels.dyes.items()):
        values = ev.spots.photons[ev.spots.channel == dye]
        if values.size:
            out[f"{marker} ({dye})"] = [round(float(v), 1) for v in values]
    if not out:
        for channel in sorted(set(ev.spots.channel.tolist())):
            values = ev.spots.photons[ev.spots.channel == channel]
            out[channel] = [round(float(v), 1) for v in values]
    return out


def _steps(run: RunFolder) -> list[dict[str, Any]]:
    steps = [e for e in run.events if e.get("event") == "step"]
    done = {e.get("index") for e in run.events if e.get("event") == "step_finished"}
    return [{**{k: v for k, v in e.items() if k not in ("event", "wall")},
             "completed": e.get("index") in done} for e in steps]
