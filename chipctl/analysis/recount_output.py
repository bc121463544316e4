"""Batch re-analysis, the output: one run's re-count written in a new folder of its own.

counts.csv (each row's previous count beside the new one), spots.csv (the new detections),
recount.json and the report. The folder is filled under a hidden `.NAME.partial` name and
renamed when complete. The report is the run's usual report on the re-counted table and
detections, with a line saying which counter made them.
"""

from __future__ import annotations

import csv
import hashlib
import json
import shutil
from pathlib import Path
from typing import Any

import chipctl
from chipctl.analysis.recount_plan import (
    RECOUNT_COLUMNS,
    RecountResult,
    RunPlan,
    params_json,
    publish,
    stamp,
)
from chipctl.analysis.report import render_html, report_json
from chipctl.analysis.summary import summarize
from chipctl.runs.detections import SPOT_COLUMNS, spot_text
from chipctl.runs.folder import RunFolder
from chipctl.runs.recorder import now_iso
from chipctl.vision.model import CountResult


class RecountedRun(RunFolder):
    """The run as its re-count's report sees it: the record, with the re-counted table and
    detections, and only the frames that could be read this time."""

    detected: dict[int, CountResult]

    def frames(self) -> list[dict[str, Any]]:
        """The kept frames that were re-counted."""
        return [e for e in super().frames() if int(e["seq"]) in self.detected]

    def detections(self) -> dict[int, CountResult] | None:
        """Per frame number, the re-count's spots."""
        return self.detected


def recounted(plan: RunPlan) -> list[tuple[dict[str, Any], dict[str, Any], CountResult]]:
    """(frame entry, counts row, new result) of every frame that could be counted."""
    out = []
    for j, task in enumerate(plan.tasks):
        result = plan.outcomes[j].result
        if result is not None:
            row = {**task.row, "previous_count": task.row.get("count"),
                   "count": int(result.count), **result.measures(), "file": task.file}
            out.append((task.entry, row, result))
    return out


def _sha256(path: Path) -> str | None:
    return hashlib.sha256(path.read_bytes()).hexdigest() if path.is_file() else None


def _info(plan: RunPlan, version: str, scheduler: str, started: str,
          unreadable: list[tuple[str, str]], rows: list[dict[str, Any]]) -> dict[str, Any]:
    previous = [r["previous_count"] for r in rows if r.get("previous_count") is not None]
    return {
        "run_id": plan.run.run_id, "run_folder": str(plan.run.path),
        "counter_version": version, "chipctl": chipctl.__version__,
        "parameters": params_json(plan.params), "scheduler": scheduler,
        "started": started, "ended": now_iso(),
        "frames": len(plan.tasks), "recounted": len(rows),
        "unreadable": [{"file": path, "error": why} for path, why in unreadable],
        "previous_total": sum(previous), "new_total": sum(int(r["count"]) for r in rows),
        "original_counts_sha256": _sha256(plan.run.path / "counts.csv"),
    }


def _write_csv(path: Path, columns: list[str], rows: list[dict[str, Any]]) -> None:
    with path.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.DictWriter(handle, columns, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)


def _write_report(folder: Path, plan: RunPlan, rows: list[dict[str, Any]],
                  detected: dict[int, CountResult], info: dict[str, Any]) -> None:
    view = RecountedRun(plan.run.path, plan.run.info, _events=plan.run.events,
                        _counts=[dict(r) for r in rows])
    view.detected = detected
    data = summarize(view)
    data["recount"] = info
    (folder / "report.html").write_text(render_html(data), encoding="utf-8")
    (folder / "report.json").write_text(report_json(data), encoding="utf-8")


def write_recount(plan: RunPlan, version: str, scheduler: str) -> RecountResult:
    """Write the run's re-count and return what it holds (unreadable frames included)."""
    started = now_iso()
    unreadable = [(o.path, o.error) for _, o in sorted(plan.outcomes.items()) if o.error]
    done = recounted(plan)
    rows = [row for _, row, _ in done]
    result = RecountResult(plan.run.run_id, frames=len(plan.tasks), recounted=len(rows),
                           unreadable=unreadable,
                           previous_total=sum(int(r["previous_count"] or 0) for r in rows),
                           new_total=sum(int(r["count"]) for r in rows))
    if not rows:
        result.error = "no frame could be read"
        return result
    name = f"{version}-{stamp()}"
    partial = plan.target / f".{name}.partial"
    partial.mkdir(parents=True)
    try:
        info = _info(plan, version, scheduler, started, unreadable, rows)
        _write_csv(partial / "counts.csv", RECOUNT_COLUMNS, rows)
        with (partial / "spots.csv").open("w", encoding="utf-8", newline="") as handle:
            csv.writer(handle).writerow(SPOT_COLUMNS)
            handle.writelines(spot_text(entry, found) for entry, _, found in done)
        try:
            _write_report(partial, plan, rows,
                          {int(entry["seq"]): found for entry, _, found in done}, info)
        except Exception as exc:  # noqa: BLE001 - the counts stand without their report
            info["report_error"] = result.report_error = f"{type(exc).__name__}: {exc}"
        (partial / "recount.json").write_text(json.dumps(info, indent=2), encoding="utf-8")
        result.folder = publish(partial, plan.target, name)
    except BaseException:
        shutil.rmtree(partial, ignore_errors=True)
        raise
    return result
