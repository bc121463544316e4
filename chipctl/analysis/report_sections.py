"""The sections of a run's report, each a function of summary.summarize's dict: results, QC,
method, sample, images, kinetics and the record."""

from __future__ import annotations

import html
from typing import Any

from chipctl.analysis import plots
from chipctl.analysis.counts import Kinetics, ZoneChannel
from chipctl.analysis.numbers import filled, interval, number, percent


def esc(value: Any) -> str:
    """Text for HTML."""
    return html.escape(str(value))


def table(headers: list[str], rows: list[list[Any]], left: int = 1) -> str:
    """An HTML table: the first ``left`` columns text, the rest numbers for people."""
    def cell(i: int, v: Any, tag: str = "td") -> str:
        text = ("–" if v is None else esc(v)) if i < left or isinstance(v, str) else number(v)
        return f"<{tag} class='l'>{text}</{tag}>" if i < left else f"<{tag}>{text}</{tag}>"

    head = "".join(cell(i, h, "th") if i < left else f"<th>{esc(h)}</th>"
                   for i, h in enumerate(headers))
    body = "".join("<tr>" + "".join(cell(i, v) for i, v in enumerate(row)) + "</tr>"
                   for row in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


def img(png: str | None, alt: str) -> str:
    """An embedded PNG, or a note that there was nothing to draw."""
    if png is None:
        return f"<p class='note'>No data for: {esc(alt)}.</p>"
    return f"<img alt='{esc(alt)}' src='data:image/png;base64,{png}'>"


def results(data: dict[str, Any]) -> str:
    """Per zone and marker: detected, estimated, density, concentration; co-expression."""
    rows = []
    for r in data["results"]:
        conc = ("not above the isotype control: < " if r["upper_limit_only"] else "")
        per_ml = (f"{conc}{number(r['ci95'][1])}" if r["upper_limit_only"]
                  else number(r["per_ml"]))
        rows.append([r["zone"], f"{r['marker']} ({r['channel']})", r["fields"], r["detected"],
                     r["estimated_in_view"], r["detected_per_mm2"], r["estimated_per_mm2"],
                     per_ml, "–" if r["upper_limit_only"] else interval(*r["ci95"]),
                     r["raw_per_ml"]])
    text = "".join(f"<p class='note'>{esc(z)}: {esc(why)}</p>"
                   for z, why in data["skipped"].items())
    best, sample = data["headline"], data["sample"]
    if best:
        text = (f"<p><b>{number(best['per_ml'])} {esc(best['marker'])}+ vesicles per mL</b> "
                f"(95 % interval {interval(*best['ci95'])}) in "
                f"{esc(sample['name'] or 'the sample')}"
                f", estimated from {best['detected']:,} detected on the {esc(best['zone'])} zone"
                f" (dilution 1:{sample['dilution']:g} applied).</p>") + text
    ratio = sample.get("particle_protein_ratio")
    if ratio:
        text += (f"<p>Particle:protein ratio ({esc(ratio['marker'])}+ vesicles):"
                 f" {number(ratio['per_ug'])} per µg (95 % "
                 f"{interval(ratio['ci95_low'], ratio['ci95_high'])}"
                 f"; protein {number(ratio['protein_ug_per_ml'])} µg/mL ± "
                 f"{percent(ratio['protein_rsd'])}).</p>")
    coex = [[c["zone"], f"{c['marker']}+ that are {c['other']}+", percent(c["fraction"]),
             f"{percent(c['ci95'][0])} – {percent(c['ci95'][1])}", percent(c["raw_fraction"]),
             percent(c["chance"], 1), c["reference_spots"], c["radius_px"]]
            for r in data["results"] for c in r["coexpression"]]
    return ("<h2>Results</h2>" + text
            + "<p><i>Detected</i>: spots the counter found. <i>Estimated</i>: corrected for the "
              "vesicles it misses (below the limit of detection, merged with a neighbour) and, "
              "for densities and concentrations, minus the isotype control. <i>Raw</i>: the "
              "same arithmetic on the detected counts, uncorrected.</p>"
            + table(["zone", "marker (label)", "fields", "detected", "estimated in view",
                     "detected /mm²", "estimated /mm² − isotype", "per mL", "95 % interval",
                     "raw per mL"], rows, 2)
            + "<h3>Co-expression</h3>"
            + (table(["zone", "fraction of", "estimate", "95 % interval", "raw matched",
                      "chance", "spots", "radius px"], coex, 2) if coex else
               "<p class='note'>No zone was imaged in more than one label's channel.</p>"))


def qc_section(data: dict[str, Any]) -> str:
    """Every QC flag, with its value and limit."""
    items = [f"<li class='flag'><b>{esc(f['code'])}</b> {esc(f['subject'])}: "
             f"{esc(f['message'])}</li>" for f in data["qc_flags"]]
    items += [f"<li class='flag'>{esc(f)}</li>" for f in data["image_flags"]]
    checks = ("limit of detection, crowding, field-to-field CV against Poisson, bleaching "
              "between fields, camera saturation, focus, bleed-through, interval width, "
              "transport model range, capture kinetics")
    return ("<h2>Quality control</h2>" + f"<p class='note'>Checked: {checks}.</p>"
            + (f"<ul>{''.join(items)}</ul>" if items else "<p>No QC flags raised.</p>"))


def method(data: dict[str, Any]) -> str:
    """Every correction of every zone with its value, uncertainty and source."""
    parts = ["<h2>Method</h2><p>concentration = (detected / detection − isotype density × "
             "imaged area) / imaged share / capture efficiency / sample volume × dilution; "
             "95 % interval from the whole error budget on a log scale (never below zero).</p>",
             f"<p>Labels: {esc(data['labels']['source'])}.</p>"]
    for r in data["results"]:
        rows = [[name, m.get("value") if not isinstance(m.get("value"), str) else m["value"],
                 m.get("unit", ""), percent(m.get("rsd"), 1) if m.get("rsd") is not None
                 else "–", m.get("source", "")] for name, m in r["method"].items()]
        budget = [[name, percent(rsd, 1)] for name, rsd in r["budget"].items()]
        parts.append(f"<h3>{esc(r['zone'])} ({esc(r['marker'])}, {esc(r['channel'])})</h3>"
                     f"<p>{esc(r['detection_text'])}</p>"
                     + table(["correction", "value", "unit", "rel. sd", "source"], rows, 1)
                     + table(["error budget term", "rel. sd"], budget, 1))
    return "".join(parts)


def sample_section(data: dict[str, Any]) -> str:
    """Pre-clearing spins, MISEV2018 items, dilution and vesicle size as entered."""
    s = data["sample"]
    dilution = f"1:{s['dilution']:g} ({s['dilution_source']})"
    spins = [[p["as_entered"], p["g_force"], p["minutes"], p["temperature_c"]]
             for p in s["preclearing"]]
    misev = table(["MISEV2018 item", "as entered"], [[m["item"], m["value"]] for m in s["misev"]],
                  2)
    return ("<h2>Sample</h2>"
            + table(["item", "value"], [["sample", s["name"] or "not named"],
                                        ["dilution", dilution],
                                        ["vesicle size (capture model)", s["size_source"]]], 2)
            + "<h3>Pre-clearing</h3>"
            + (table(["as entered", "× g", "min", "°C"], spins, 1) if spins else
               "<p class='note'>not reported</p>") + misev)


def images(data: dict[str, Any]) -> str:
    """Photon histogram per marker and a thumbnail of each field with its detections."""
    img_data = data["imagery"]
    notes = "".join(f"<p class='note'>{esc(n)}</p>" for n in img_data["notes"])
    thumbs = "".join(f"<figure style='display:inline-block;margin:4px'>"
                     f"{img(t['png'], 'field')}<figcaption>{esc(t['zone'])} field {t['field']} "
                     f"{esc(t['channel'])}: {t['spots']:,} detected</figcaption></figure>"
                     for t in img_data["thumbnails"])
    return ("<h2>Brightness and fields</h2>" + notes
            + img(plots.intensity_histogram(img_data["photons"]), "spot photons per marker")
            + (f"<div>{thumbs}</div>" if thumbs else ""))


def kinetics_section(data: dict[str, Any]) -> str:
    """First-order capture fits per field imaged repeatedly."""
    series = [Kinetics(**{**k, "rate_ci95": tuple(k["rate_ci95"]), "k_ci95": tuple(k["k_ci95"]),
                          "plateau_ci95": tuple(k["plateau_ci95"]), "flags": tuple(k["flags"])})
              for k in data["kinetics"]]
    if not series:
        return ""
    rows = [[k.step + 1, k.zone, k.channel, k.field, len(k.t_s), k.regime, k.rate_per_min,
             interval(*k.rate_ci95), k.rate_per_mm2_min, k.k_per_min, interval(*k.k_ci95),
             k.plateau] for k in series]
    return ("<h2>Capture kinetics</h2><p>N(t) = N0 + A (1 − exp(−k t)) from the start of the "
            "flow; rate per mm² over the zone area in the field.</p>"
            + table(["step", "zone", "channel", "field", "points", "regime", "rate /min",
                     "95 %", "rate /mm²/min", "k /min", "95 %", "plateau"], rows, 3)
            + img(plots.kinetics_plot(series), "count versus time"))


def record(data: dict[str, Any]) -> str:
    """The run as recorded: counts per zone and channel, run, parameters, steps, versions."""
    run, params = data["run"], data["parameters"]
    zones = [ZoneChannel(**z) for z in data["zones"]]
    counts = [[z.zone + (" (control)" if z.is_control else ""), z.channel, z.fields,
               z.total_count, z.mean_count, z.cv, z.density_per_mm2] for z in zones]
    info = [[k, run.get(k)] for k in ("run_id", "protocol", "protocol_source", "protocol_sha256",
                                      "bench", "operator", "sample", "status", "reason",
                                      "started", "ended", "keep_frames")]
    steps = [[s.get("index", 0) + 1, filled(str(s.get("label") or s.get("kind")), params),
              s.get("kind"), s.get("pump"), s.get("rate_ul_min"),
              "yes" if s["completed"] else "no"] for s in data["steps"]]
    versions = run.get("versions") or {}
    return ("<h2>Record</h2><h3>Counts per zone and channel</h3>"
            + table(["zone", "channel", "fields", "detected", "mean per field", "CV",
                     "detected /mm² of zone"], counts, 2)
            + img(plots.density_bars(zones), "density per zone and channel")
            + "<h3>Run</h3>" + table(["item", "value"], info, 2)
            + "<h3>Parameters</h3>" + (table(["name", "value"], [[k, str(v)] for k, v in
                                                                 sorted(params.items())], 2)
                                       if params else "<p class='note'>none entered</p>")
            + "<h3>Protocol steps</h3>"
            + table(["#", "step", "kind", "pump", "rate µL/min", "completed"], steps, 3)
            + "<h3>Versions</h3>"
            + table(["software", "version"], [[k, str(v)] for k, v in
                                              versions.get("software", {}).items()], 2)
            + table(["device", "reported"], [[k, ", ".join(f"{a}={b}" for a, b in v.items())]
                                             for k, v in versions.get("devices", {}).items()], 2))
