"""`chipctl runs compare RUN...`: samples side by side. One row per run and antibody zone
(sample metadata, detected, estimated, density, concentration with its interval, raw, and the
co-expression fractions), written as CSV (and Parquet when pyarrow is installed), an HTML page
with the table and a plot (also as PNG), and a spot-level table per run.
"""

from __future__ import annotations

import base64
import csv
import html
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from chipctl.analysis import plots
from chipctl.analysis.numbers import interval, number, percent
from chipctl.analysis.summary import summarize
from chipctl.runs.detections import SPOTS_NAME
from chipctl.runs.folder import RunFolder

META = ("source", "preprocessing", "separation", "storage", "protein_ug_per_ml", "dilution",
        "operator")
COLUMNS = ["run_id", "sample", "protocol", "started", "status", *META, "zone", "marker",
           "channel", "fields", "detected", "estimated_in_view", "detected_per_mm2",
           "estimated_per_mm2", "per_ml", "ci95_low", "ci95_high", "upper_limit_only",
           "raw_per_ml", "qc_flags"]


@dataclass
class Comparison:
    """The compared runs' rows, and co-expression per run and zone."""

    rows: list[dict[str, Any]] = field(default_factory=list)
    coexpression: list[dict[str, Any]] = field(default_factory=list)
    runs: list[RunFolder] = field(default_factory=list)


def compare(runs: list[RunFolder]) -> Comparison:
    """Every run's results as rows (SourceError / SampleInfoError name the run's problem)."""
    out = Comparison(runs=list(runs))
    for run in runs:
        data = summarize(run)
        params = data["parameters"]
        base = {"run_id": run.run_id, "sample": data["sample"]["name"] or run.run_id,
                "protocol": data["run"]["protocol"], "started": data["run"]["started"],
                "status": data["run"]["status"],
                **{k: params.get(k, "") for k in META}}
        base["dilution"] = data["sample"]["dilution"]
        for r in data["results"]:
            flags = [f["code"] for f in data["qc_flags"] if f["subject"].startswith(r["zone"])]
            out.rows.append({**base, **{k: r[k] for k in COLUMNS if k in r},
                             "ci95_low": r["ci95"][0], "ci95_high": r["ci95"][1],
                             "qc_flags": " ".join(sorted(set(flags)))})
            out.coexpression += [{"run_id": run.run_id, "sample": base["sample"],
                                  **{k: c[k] for k in ("zone", "marker", "other", "fraction",
                                                       "raw_fraction")},
                                  "ci95_low": c["ci95"][0], "ci95_high": c["ci95"][1]}
                                 for c in r["coexpression"]]
    return out


def _csv(path: Path, columns: list[str], rows: list[dict[str, Any]]) -> None:
    with path.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.DictWriter(handle, columns, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)


def write_parquet(path: Path, rows: list[dict[str, Any]]) -> bool:
    """Parquet when pyarrow is installed (the `parquet` extra); False when it is not."""
    try:
        import pyarrow as pa  # noqa: PLC0415 - an optional extra
        import pyarrow.parquet as pq  # noqa: PLC0415
    except ImportError:
        return False
    pq.write_table(pa.Table.from_pylist(rows), path)
    return True


def write_comparison(cmp: Comparison, out: Path) -> list[Path]:
    """compare.csv, coexpression.csv, compare.parquet (if pyarrow), compare.html, compare.png
    and spots-RUN.csv per run, in ``out``; returns what was written."""
    out.mkdir(parents=True, exist_ok=True)
    written = [out / "compare.csv", out / "coexpression.csv"]
    _csv(written[0], COLUMNS, cmp.rows)
    _csv(written[1], ["run_id", "sample", "zone", "marker", "other", "fraction", "ci95_low",
                      "ci95_high", "raw_fraction"], cmp.coexpression)
    if write_parquet(out / "compare.parquet", cmp.rows):
        written.append(out / "compare.parquet")
    png = plots.concentration_bars(cmp.rows)
    if png is not None:
        (out / "compare.png").write_bytes(base64.b64decode(png))
        written.append(out / "compare.png")
    (out / "compare.html").write_text(_html(cmp, png), encoding="utf-8")
    written.append(out / "compare.html")
    for run in cmp.runs:
        written.append(_spot_table(run, out / f"spots-{run.run_id}.csv"))
    return written


def _spot_table(run: RunFolder, target: Path) -> Path:
    """The run's spots.csv with its run id and sample on every row."""
    source = run.path / SPOTS_NAME
    sample = str(run.info.get("sample") or "")
    rows = list(csv.DictReader(source.open(encoding="utf-8"))) if source.is_file() else []
    columns = ["run_id", "sample", *(rows[0].keys() if rows else ["seq", "zone", "channel"])]
    _csv(target, columns, [{"run_id": run.run_id, "sample": sample, **r} for r in rows])
    return target


def _html(cmp: Comparison, png: str | None) -> str:
    head = ["sample", "run", "zone", "marker", "detected", "estimated /mm²", "per mL",
            "95 % interval", "raw per mL", "dilution", "QC"]
    body = "".join(
        "<tr>" + "".join(f"<td>{html.escape(str(v))}</td>" for v in (
            r["sample"], r["run_id"], r["zone"], f"{r['marker']} ({r['channel']})",
            number(r["detected"]), number(r["estimated_per_mm2"]), number(r["per_ml"]),
            interval(r["ci95_low"], r["ci95_high"]), number(r["raw_per_ml"]),
            number(r["dilution"]), r["qc_flags"] or "–")) + "</tr>" for r in cmp.rows)
    coex = "".join(f"<tr><td>{html.escape(c['sample'])}</td><td>{html.escape(c['zone'])}</td>"
                   f"<td>{html.escape(c['marker'])}+ that are {html.escape(c['other'])}+</td>"
                   f"<td>{percent(c['fraction'])}</td><td>{percent(c['ci95_low'])} – "
                   f"{percent(c['ci95_high'])}</td></tr>" for c in cmp.coexpression)
    figure = f"<img alt='concentration' src='data:image/png;base64,{png}'>" if png else ""
    return ("<!DOCTYPE html><html><head><meta charset='utf-8'><title>chipctl: samples compared"
            "</title><style>table{border-collapse:collapse}td,th{border:1px solid #ccc;"
            "padding:2px 8px}</style></head><body><h1>Samples compared</h1>"
            f"<table><tr>{''.join(f'<th>{h}</th>' for h in head)}</tr>{body}</table>{figure}"
            "<h2>Co-expression</h2><table><tr><th>sample</th><th>zone</th><th>fraction of</th>"
            f"<th>estimate</th><th>95 %</th></tr>{coex}</table></body></html>")
