"""A run's report: one self-contained HTML file (figures embedded as PNG) plus report.json
with the same numbers."""

from __future__ import annotations

import html
import json
from pathlib import Path
from typing import Any

from chipctl.analysis import plots
from chipctl.analysis.counts import Kinetics, ZoneChannel
from chipctl.analysis.summary import summarize
from chipctl.runs.folder import RunFolder

CSS = """body{font-family:system-ui,sans-serif;max-width:60em;margin:2em auto;color:#222}
table{border-collapse:collapse;margin:.5em 0 1em}td,th{border:1px solid #ccc;padding:2px 8px;
text-align:right}th{background:#f3f3f3}td.l,th.l{text-align:left}h2{border-bottom:1px solid #999}
.flag{color:#a40}.note{color:#666}"""


def fmt(value: Any, digits: int = 3) -> str:
    """A number for people: 3 significant digits, blanks for missing."""
    if value is None:
        return "–"
    if isinstance(value, float):
        return f"{value:.{digits}g}"
    return html.escape(str(value))


def _table(headers: list[str], rows: list[list[Any]], left: int = 1) -> str:
    head = "".join(f"<th class='l'>{h}</th>" if i < left else f"<th>{h}</th>"
                   for i, h in enumerate(headers))
    body = "".join("<tr>" + "".join(
        f"<td class='l'>{fmt(v)}</td>" if i < left else f"<td>{fmt(v)}</td>"
        for i, v in enumerate(row)) + "</tr>" for row in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


def _img(png: str | None, alt: str) -> str:
    if png is None:
        return f"<p class='note'>No data for: {alt}.</p>"
    return f"<img alt='{alt}' src='data:image/png;base64,{png}'>"


def _run_section(data: dict[str, Any]) -> str:
    run = data["run"]
    rows = [[k, run.get(k)] for k in ("run_id", "protocol", "protocol_source",
                                      "protocol_sha256", "bench", "operator", "sample",
                                      "status", "reason", "started", "ended", "keep_frames")]
    params = [[k, v] for k, v in sorted(data["parameters"].items())]
    steps = [[s.get("index", 0) + 1, s.get("label") or s.get("kind"), s.get("kind"),
              s.get("pump"), s.get("rate_ul_min"), "yes" if s["completed"] else "no"]
             for s in data["steps"]]
    software = run.get("versions", {}).get("software", {})
    devices = run.get("versions", {}).get("devices", {})
    return ("<h2>Run</h2>" + _table(["item", "value"], rows, 2)
            + "<h3>Parameters</h3>" + (_table(["name", "value"], params, 2) if params else
                                       "<p class='note'>none entered</p>")
            + "<h3>Protocol steps</h3>"
            + _table(["#", "step", "kind", "pump", "rate uL/min", "completed"], steps, 3)
            + "<h3>Versions</h3>"
            + _table(["software", "version"], [[k, v] for k, v in software.items()], 2)
            + _table(["device", "reported"], [[k, ", ".join(f"{a}={b}" for a, b in v.items())]
                                              for k, v in devices.items()], 2))


def _zones_section(data: dict[str, Any]) -> str:
    zones = [ZoneChannel(**z) for z in data["zones"]]
    geo = data["geometry"]
    area = (f"field {geo['width_px']}×{geo['height_px']} px at {geo['pixel_size_um']:g} µm/px ="
            f" {geo['field_area_mm2']:.4g} mm²" if geo else "field area unknown (no frame size)")
    rows = [[z.zone + (" (control)" if z.is_control else ""), z.channel, z.fields, z.mean_count,
             z.sd_count, z.cv, z.density_per_mm2, z.subtracted_density_per_mm2, z.true_mean_count]
            for z in zones]
    return ("<h2>Counts and densities per capture zone and channel</h2>"
            f"<p>Last imaging of each zone; {html.escape(area)}. Density with the isotype"
            " control's density in the same channel subtracted; CV across fields.</p>"
            + _table(["zone", "channel", "fields", "mean count", "SD", "CV", "per mm²",
                      "per mm² − isotype", "true mean (sim)"], rows, 2)
            + _img(plots.density_bars(zones), "density per zone and channel"))


def _kinetics_section(data: dict[str, Any]) -> str:
    series = [Kinetics(**k) for k in data["kinetics"]]
    rows = [[k.step + 1, k.zone, k.channel, k.field, len(k.t_s), k.rate_per_min,
             k.rate_se_per_min, k.rate_per_mm2_min] for k in series]
    return ("<h2>Capture kinetics</h2><p>Count versus time with a straight-line fit (capture"
            " is linear in time at these concentrations).</p>"
            + (_table(["step", "zone", "channel", "field", "points", "rate /min", "SE /min",
                       "rate /mm²/min"], rows, 3) if rows else "")
            + _img(plots.kinetics_plot(series), "count versus time (a field imaged 3+ times)"))


def _concentration_section(data: dict[str, Any]) -> str:
    rows = [[c["zone"], c["antibody"], c["channel"], c["density_per_mm2"], c["zone_total"],
             c["sample_volume_ul"], c["capture_fraction"], c["concentration_per_ml"],
             c["sd_per_ml"], f"{fmt(c['ci95'][0])} – {fmt(c['ci95'][1])}",
             c["from_true_counts_per_ml"]] for c in data["concentration"]]
    best = data["headline"]
    text = ("<p>Not enough information (sample flow, frame size or chip zones) to estimate"
            " a concentration.</p>")
    if best:
        text = (f"<p><b>{fmt(best['concentration_per_ml'])} ± {fmt(best['sd_per_ml'])}"
                f" {html.escape(best['antibody'])}-captured vesicles per mL</b> (1 SD; a lower"
                " bound on the sample's EV concentration). Uncertainty: counts"
                f" {best['counts_rsd']:.1%} (Poisson and field-to-field scatter), capture"
                f" efficiency {best['efficiency_rsd']:.0%}.</p>")
    ratio = data["particle_protein_ratio_per_ug"]
    if ratio:
        text += f"<p>Particle:protein ratio {fmt(ratio)} particles per µg.</p>"
    return ("<h2>Vesicle concentration in the sample</h2>" + text
            + _table(["zone", "antibody", "channel", "per mm² − isotype", "zone total",
                      "sample µL", "captured fraction", "per mL", "SD", "95 %",
                      "per mL from true counts (sim)"], rows, 3))


def _imagery_section(data: dict[str, Any]) -> str:
    img = data["imagery"]
    notes = "".join(f"<p class='note'>{html.escape(n)}</p>" for n in img["notes"])
    coloc = [[c["zone"], c["channels"], c["particles"], c["positive"], c["fraction"]]
             for c in img["colocalization"]]
    flags = "".join(f"<li class='flag'>{html.escape(f)}</li>" for f in data["qc_flags"])
    return ("<h2>Colocalization of CD9 / CD63 / CD81</h2>" + notes
            + "<p>Spots of one field's channels within 2 px are one particle; for each"
              " combination of channels, the particles positive for all of them.</p>"
            + (_table(["zone", "channels", "particles", "co-positive", "fraction"], coloc, 2)
               if coloc else "<p class='note'>No multi-channel fields with spots.</p>")
            + "<h2>Spot intensities</h2>"
            + _img(plots.intensity_histogram(img["intensities"]), "spot intensity distribution")
            + "<h2>Quality control</h2>"
            + f"<p>{img['frames']} frames kept; checks: focus, saturation, SNR, drift.</p>"
            + (f"<ul>{flags}</ul>" if flags else "<p>No QC flags raised.</p>"))


def _recount_note(data: dict[str, Any]) -> str:
    """Which counter made the counts, when they are a re-count (chipctl runs recount)."""
    info = data.get("recount")
    if not info:
        return ""
    return (f"<p class='note'>Re-counted {html.escape(str(info['ended']))} with counter"
            f" {html.escape(str(info['counter_version']))}: {info['recounted']} of"
            f" {info['frames']} kept frames ({len(info['unreadable'])} unreadable); the run's"
            f" own counts are in its counts.csv.</p>")


def render_html(data: dict[str, Any]) -> str:
    """The report as one HTML document."""
    run = data["run"]
    title = f"chipctl run {html.escape(str(run['run_id']))}"
    misev = _table(["MISEV2018 item", "as entered"],
                   [[m["item"], m["value"]] for m in data["misev"]], 2)
    return (f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>{title}</title>"
            f"<style>{CSS}</style></head><body><h1>{title}</h1>"
            f"<p>{html.escape(str(run['protocol']))} — {html.escape(str(run['status']))}</p>"
            + _recount_note(data)
            + _run_section(data) + _zones_section(data) + _kinetics_section(data)
            + _concentration_section(data) + _imagery_section(data)
            + "<h2>MISEV2018 reporting items</h2>" + misev + "</body></html>")


def write_report(run: RunFolder, out: Path | None = None) -> Path:
    """Write report.html (and report.json beside it); returns the HTML's path."""
    data = summarize(run)
    target = out or run.path / "report.html"
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(render_html(data), encoding="utf-8")
    target.with_suffix(".json").write_text(json.dumps(data, indent=1, default=str),
                                           encoding="utf-8")
    return target
