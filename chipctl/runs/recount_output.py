"""Writing one run's re-count: counts.csv, recount.json and the report, in a new folder.

The folder is filled under a hidden `.NAME.partial` name and renamed when complete. The report
is the run's usual report (chipctl.analysis) on the re-counted table, with its spot analyses
taken from the same re-count (the frames' results are looked up by their pixels, not counted
a second time) and a line saying which counter made it.
"""

from __future__ import annotations

import csv
import hashlib
import json
import shutil
from pathlib import Path
from typing import Any

from chipctl.runs.folder import RunFolder
from chipctl.runs.recorder import now_iso
from chipctl.runs.recount import (
    RECOUNT_COLUMNS,
    FrameOutcome,
    RecountResult,
    RunPlan,
    _params_json,
    image_digest,
    publish,
    stamp,
)
from chipctl.vision import CountParams, CountResult, count_frame


class _RecountedRun(RunFolder):
    """The run as the report sees it: its record, the re-counted table, the readable frames."""

    readable: set[str]

    def frames(self) -> list[dict[str, Any]]:
        """The kept frames that could be read and counted this time."""
        return [e for e in super().frames() if e["file"] in self.readable]


def _rows(plan: RunPlan) -> list[dict[str, Any]]:
    rows = []
    for j, task in enumerate(plan.tasks):
        outcome = plan.outcomes[j]
        if outcome.result is None:
            continue
        rows.append({**task.row, "previous_count": task.row.get("count"),
                     "count": int(outcome.result.count), "file": task.file})
    return rows


def _memo_counter(outcomes: list[FrameOutcome], params: CountParams) -> Any:
    """A counter answering from the re-count for the frames it holds (by their pixels)."""
    known = {o.digest: o.result for o in outcomes if o.result is not None}

    def counter(image: Any) -> CountResult:
        found = known.get(image_digest(image))
        return found if found is not None else count_frame(image, params)

    return counter


def _sha256(path: Path) -> str | None:
    return hashlib.sha256(path.read_bytes()).hexdigest() if path.is_file() else None


def _info(plan: RunPlan, version: str, scheduler: str, started: str,
          unreadable: list[tuple[str, str]], rows: list[dict[str, Any]]) -> dict[str, Any]:
    import chipctl

    previous = [r["previous_count"] for r in rows if r.get("previous_count") is not None]
    return {
        "run_id": plan.run.run_id, "run_folder": str(plan.run.path),
        "counter_version": version, "chipctl": chipctl.__version__,
        "parameters": _params_json(plan.params), "scheduler": scheduler,
        "started": started, "ended": now_iso(),
        "frames": len(plan.tasks), "recounted": len(rows),
        "unreadable": [{"file": path, "error": why} for path, why in unreadable],
        "previous_total": sum(previous), "new_total": sum(int(r["count"]) for r in rows),
        "original_counts_sha256": _sha256(plan.run.path / "counts.csv"),
    }


def _write_counts(path: Path, rows: list[dict[str, Any]]) -> None:
    with path.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.DictWriter(handle, RECOUNT_COLUMNS, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)


def _write_report(folder: Path, plan: RunPlan, rows: list[dict[str, Any]],
                  info: dict[str, Any]) -> None:
    from chipctl.analysis.report import render_html
    from chipctl.analysis.summary import summarize

    view = _RecountedRun(plan.run.path, plan.run.info, _events=plan.run.events,
                         _counts=[dict(r) for r in rows])
    view.readable = {str(r["file"]) for r in rows}
    outcomes = list(plan.outcomes.values())
    data = summarize(view, counter=_memo_counter(outcomes, plan.params))
    data["recount"] = info
    (folder / "report.html").write_text(render_html(data), encoding="utf-8")
    (folder / "report.json").write_text(json.dumps(data, indent=1, default=str),
                                        encoding="utf-8")


def write_recount(plan: RunPlan, version: str, scheduler: str) -> RecountResult:
    """Write the run's re-count and return what it holds (unreadable frames included)."""
    started = now_iso()
    unreadable = [(o.path, o.error) for _, o in sorted(plan.outcomes.items()) if o.error]
    rows = _rows(plan)
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
        _write_counts(partial / "counts.csv", rows)
        try:
            _write_report(partial, plan, rows, info)
        except Exception as exc:  # noqa: BLE001 - the counts stand without their report
            info["report_error"] = f"{type(exc).__name__}: {exc}"
            result.report_error = info["report_error"]
        (partial / "recount.json").write_text(json.dumps(info, indent=2), encoding="utf-8")
        result.folder = publish(partial, plan.target, name)
    except BaseException:
        shutil.rmtree(partial, ignore_errors=True)
        raise
    return result

