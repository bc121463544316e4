"""Everything a run's report says, as one JSON-able dict (written beside the HTML as
report.json, so the report's numbers can be checked and reused)."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from chipctl.analysis import concentration as conc
from chipctl.analysis.counts import geometry, kinetics, zone_table
from chipctl.analysis.imagery import analyse
from chipctl.config.bench import Bench, load_bench
from chipctl.config.sourcefile import SourceError
from chipctl.config.units import UnitError, to_unit
from chipctl.runs.folder import RunFolder

# MISEV2018 (Théry et al., J Extracell Vesicles 7:1535750) items an operator enters as run
# parameters: (label, parameter names accepted).
MISEV_ITEMS = [
    ("EV source (biofluid / cell type, culture conditions)", ("source", "sample_source")),
    ("Collection and pre-processing (e.g. 300 x g / 2,000 x g / 10,000 x g clearing)",
     ("preprocessing", "pre_processing", "pre-processing", "clearing")),
    ("Separation / concentration method", ("separation", "isolation", "method")),
    ("Storage (temperature, time, freeze-thaw cycles)", ("storage",)),
    ("Starting volume", ("starting_volume", "volume")),
    ("Dilution before loading", ("dilution",)),
    ("Protein concentration (for the particle:protein ratio)", ("protein", "protein_ug_per_ml")),
]


def load_run_bench(run: RunFolder) -> Bench | None:
    """The bench file as it was when the run started (None if unreadable)."""
    path = run.path / "bench.yaml"
    if not path.is_file() or not path.read_text(encoding="utf-8").strip():
        return None
    try:
        return load_bench(path)
    except SourceError:
        return None


def misev_items(params: dict[str, Any]) -> list[dict[str, str]]:
    """Each MISEV2018 item with what the operator entered (or "not reported")."""
    out = []
    for label, names in MISEV_ITEMS:
        value = next((str(params[n]) for n in names if params.get(n)), "")
        out.append({"item": label, "value": value or "not reported"})
    return out


def protein_ug_per_ml(params: dict[str, Any]) -> float | None:
    """The sample's protein concentration, if entered (a number is taken as ug/mL)."""
    for name in ("protein_ug_per_ml", "protein"):
        value = params.get(name)
        if value in (None, ""):
            continue
        try:
            return float(value)
        except (TypeError, ValueError):
            try:
                return to_unit(value, "ug/mL")
            except UnitError:
                return None
    return None


def summarize(run: RunFolder) -> dict[str, Any]:
    """The report's content."""
    bench = load_run_bench(run)
    params = dict(run.info.get("parameters") or {})
    geo = geometry(run.events, bench)
    table = zone_table(run.counts, geo, bench)
    series = kinetics(run.counts, geo)
    estimates = conc.estimate(run.counts, run.events, bench, geo, params)
    best = conc.headline(estimates)
    images = analyse(run.path, run.frames(), geo.pixel_size_um if geo else None,
                     run.detections())
    protein = protein_ug_per_ml(params)
    ratio = best.concentration_per_ml / protein if best and protein else None
    flags = list(images.flags) + _count_flags(run)
    return {
        "run": {k: run.info.get(k) for k in ("run_id", "protocol", "protocol_source",
                                             "protocol_sha256", "bench", "operator", "sample",
                                             "status", "reason", "started", "ended",
                                             "last_completed_step", "steps_total",
                                             "keep_frames", "versions")},
        "parameters": params,
        "steps": _steps(run),
        "geometry": asdict(geo) | {"field_area_mm2": geo.field_area_mm2} if geo else None,
        "counts_rows": len(run.counts),
        "zones": [t.as_dict() for t in table],
        "kinetics": [k.as_dict() for k in series],
        "sample_flows": [asdict(f) for f in conc.sample_flows(run.events, bench, params)],
        "concentration": [e.as_dict() for e in estimates],
        "headline": best.as_dict() if best else None,
        "particle_protein_ratio_per_ug": ratio,
        "imagery": {"frames": images.frames, "detections": images.detections,
                    "qc": [asdict(q) for q in images.qc], "colocalization": images.coloc,
                    "drift": images.drift, "notes": images.notes,
                    "intensities": images.intensities},
        "qc_flags": flags,
        "misev": misev_items(params),
    }


def _steps(run: RunFolder) -> list[dict[str, Any]]:
    steps = [e for e in run.events if e.get("event") == "step"]
    done = {e.get("index") for e in run.events if e.get("event") == "step_finished"}
    return [{**{k: v for k, v in e.items() if k not in ("event", "wall")},
             "completed": e.get("index") in done} for e in steps]


def _count_flags(run: RunFolder) -> list[str]:
    """Counting accuracy against the simulator's truth, where frames carried it."""
    pairs = [(r["count"], r["true_count"]) for r in run.counts if r.get("true_count") is not None]
    if not pairs:
        return []
    counted, true = sum(p[0] for p in pairs), sum(p[1] for p in pairs)
    if true and abs(counted - true) / true > 0.1:
        return [f"counting: {counted} counted vs {true} true vesicles (simulator truth),"
                f" {100 * (counted - true) / true:+.0f} %"]
    return []
