"""What `chipctl runs list | show | report | export | recount` do, and the interrupted-run
notice that `chipctl run` and `chipctl runs list` give."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any, TextIO

from chipctl.analysis.report import write_report
from chipctl.cli.errors import UsageError
from chipctl.cli.recount import runs_recount
from chipctl.runs.export import export_counts
from chipctl.runs.folder import RunFolder, RunNotFound, resolve_run
from chipctl.runs.index import RunFilter, RunIndex
from chipctl.runs.paths import default_runs_dir
from chipctl.runs.recovery import describe_interruption


def runs_root(args: argparse.Namespace) -> Path:
    """--runs-dir, or the default data directory."""
    return Path(args.runs_dir) if getattr(args, "runs_dir", None) else default_runs_dir()


def notify_interrupted(root: Path, out: TextIO) -> list[dict[str, Any]]:
    """Find runs cut off since the last look, mark them, and tell the operator."""
    found = RunIndex(root).refresh() if root.is_dir() else []
    for info in found:
        print(f"NOTE: {describe_interruption(info)}", file=out, flush=True)
    return found


def _step_text(row: dict[str, Any]) -> str:
    if not row.get("last_step"):
        return ""
    step = json.loads(row["last_step"])
    return f" (last completed step {int(step['index']) + 1}: {step.get('label')})"


def runs_list(args: argparse.Namespace, out: TextIO) -> None:
    """Print the runs matching the filters, one a line."""
    root = runs_root(args)
    index = RunIndex(root)
    if getattr(args, "rebuild", False):
        index.rebuild()
    notify_interrupted(root, out)
    where = RunFilter(*(getattr(args, k, "") for k in
                        ("protocol", "sample", "status", "since", "until")))
    rows = index.list(where)
    for row in rows:
        sample = f" sample={row['sample']}" if row["sample"] else ""
        extra = _step_text(row) if row["status"] == "interrupted" else ""
        print(f"{row['run_id']}  {row['status']:<11} {row['started']}  {row['protocol']}"
              f"{sample}{extra}", file=out)
    if not rows:
        print(f"no runs in {root}" + (" matching the filters" if where != RunFilter() else ""),
              file=out)


def _find(args: argparse.Namespace) -> RunFolder:
    root = runs_root(args)
    try:
        return RunFolder.open(resolve_run(root, args.run))
    except RunNotFound as exc:
        raise UsageError(str(exc)) from exc


def runs_show(args: argparse.Namespace, out: TextIO) -> None:
    """One run: what ran, how it ended, what it recorded."""
    notify_interrupted(runs_root(args), out)
    run = _find(args)
    if args.json:
        print(json.dumps(run.info, indent=2), file=out)
        return
    info = run.info
    lines = [f"run {run.run_id}", f"  folder     {run.path}"]
    for key in ("protocol", "protocol_source", "protocol_sha256", "bench", "operator", "sample",
                "status", "reason", "started", "ended", "keep_frames"):
        lines.append(f"  {key:<10} {info.get(key) if info.get(key) is not None else ''}")
    step = run.last_completed_step()
    if step:
        lines.append(f"  last completed step {int(step['index']) + 1}/"
                     f"{info.get('steps_total', '?')}: {step.get('label')}")
    for name, value in (info.get("parameters") or {}).items():
        lines.append(f"  param      {name} = {value}")
    lines.append(f"  {len(run.counts)} counted frames, {len(run.frames())} frames kept,"
                 f" {len(run.events)} events")
    print("\n".join(lines), file=out)


def runs_report(args: argparse.Namespace, out: TextIO) -> None:
    """Write the HTML report and say where."""
    run = _find(args)
    path = write_report(run, Path(args.out) if args.out else None)
    print(f"report: {path}", file=out)


def runs_export(args: argparse.Namespace, out: TextIO) -> None:
    """Export the counts table."""
    run = _find(args)
    target = Path(args.out) if args.out else run.path / f"counts.{args.format}"
    if target.resolve() == (run.path / "counts.csv").resolve():
        raise UsageError("refusing to overwrite the run's own counts.csv;"
                             " write the export elsewhere (--out FILE)")
    export_counts(run.counts, target, args.format, run.run_id)
    print(f"{len(run.counts)} rows: {target}", file=out)


ACTIONS = {"list": runs_list, "show": runs_show, "report": runs_report, "export": runs_export,
           "recount": runs_recount}
