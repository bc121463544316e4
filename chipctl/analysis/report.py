"""A run's report: one self-contained HTML file (figures embedded as PNG) plus report.json
with the same numbers. Results first, then QC, method, sample, images, kinetics and the record
(chipctl.analysis.report_sections)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from chipctl.analysis import report_sections as sections
from chipctl.analysis.summary import summarize
from chipctl.runs.folder import RunFolder

CSS = """body{font-family:system-ui,sans-serif;max-width:64em;margin:2em auto;color:#222}
table{border-collapse:collapse;margin:.5em 0 1em}td,th{border:1px solid #ccc;padding:2px 8px;
text-align:right}th{background:#f3f3f3}td.l,th.l{text-align:left}h2{border-bottom:1px solid #999}
.flag{color:#a40}.note{color:#666}figcaption{font-size:80%;color:#555}"""


def _recount_note(data: dict[str, Any]) -> str:
    """Which counter made the counts, when they are a re-count (chipctl runs recount)."""
    info = data.get("recount")
    if not info:
        return ""
    return (f"<p class='note'>Re-counted {sections.esc(info['ended'])} with counter"
            f" {sections.esc(info['counter_version'])}: {info['recounted']:,} of"
            f" {info['frames']:,} kept frames ({len(info['unreadable']):,} unreadable); the run's"
            f" own counts are in its counts.csv.</p>")


def render_html(data: dict[str, Any]) -> str:
    """The report as one HTML document."""
    run = data["run"]
    title = f"chipctl run {sections.esc(run['run_id'])}"
    sample = data["sample"]["name"]
    return (f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>{title}</title>"
            f"<style>{CSS}</style></head><body><h1>{title}</h1>"
            f"<p>{sections.esc(run['protocol'])}"
            + (f" — sample {sections.esc(sample)}" if sample else "")
            + f" — {sections.esc(run['status'])}</p>"
            + _recount_note(data) + sections.results(data) + sections.qc_section(data)
            + sections.method(data) + sections.sample_section(data) + sections.images(data)
            + sections.kinetics_section(data) + sections.record(data) + "</body></html>")


def report_json(data: dict[str, Any]) -> str:
    """report.json: the numbers (thumbnails left to the HTML)."""
    imagery = {k: v for k, v in data["imagery"].items() if k != "thumbnails"}
    return json.dumps({**data, "imagery": imagery}, indent=1, default=str)


def write_report(run: RunFolder, out: Path | None = None) -> Path:
    """Write report.html (and report.json beside it); returns the HTML's path."""
    data = summarize(run)
    target = out or run.path / "report.html"
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(render_html(data), encoding="utf-8")
    target.with_suffix(".json").write_text(report_json(data), encoding="utf-8")
    return target
