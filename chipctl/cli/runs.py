"""What `chipctl runs list | show | report | export | recount` do, and the interrupted-run
notice that `chipctl run` and `chipctl runs list` give. The runs directory holds protocol runs
and manual sessions (kind "manual", chipctl.runs.manual); list and show give both, with their
kind."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any, TextIO

from chipctl.analysis.calibrate_run import CalibrationRefused, calibrate_run
from chipctl.analysis.calibration import dump_calibration
from chipctl.analysis.compare import compare, write_comparison
from chipctl.analysis.numbers import interval, number
from chipctl.analysis.provenance import SampleInfoError
from chipctl.analysis.report import write_report
from chipctl.analysis.summary import summarize
from chipctl.cli.errors import UsageError
from chipctl.cli.recount import runs_recount
from chipctl.cli.text import plural
from chipctl.config.sourcefile import SourceError
from chipctl.runs.export import export_counts
from chipctl.runs.folder import RunFolder, RunNotFound, resolve_run
from chipctl.runs.index import RunFilter, RunIndex
from chipctl.runs.manual import describe_manual_event, is_manual
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
                        ("protocol", "sample", "status", "since", "until", "kind")))
    rows = index.list(where)
    for row in rows:
        sample = f" sample={row['sample']}" if row["sample"] else ""
        extra = (_step_text(row) if row["status"] == "interrupted" and row["kind"] != "manual"
                 else "")
        print(f"{row['run_id']}  {row['kind']:<8} {row['status']:<11} {row['started']}  "
              f"{row['protocol']}{sample}{extra}", file=out)
    if not rows:
        print(f"no runs in {root}" + (" matching the filters" if where != RunFilter() else ""),
              file=out)


def _find(args: argparse.Namespace) -> RunFolder:
    root = runs_root(args)
    try:
        return RunFolder.open(resolve_run(root, args.run))
    except RunNotFound as exc:
        raise UsageError(str(exc)) from exc


def _find_protocol_run(args: argparse.Namespace) -> RunFolder:
    run = _find(args)
    if is_manual(run.info):
        raise UsageError(f"{run.run_id} is a manual session: it has no counts or report; "
                         "`chipctl runs show` lists its actions")
    return run


def runs_show(args: argparse.Namespace, out: TextIO) -> None:
    """One run: what ran, how it ended, what it recorded."""
    notify_interrupted(runs_root(args), out)
    run = _find(args)
    if args.json:
        print(json.dumps(run.info, indent=2), file=out)
        return
    info = run.info
    if is_manual(info):
        print(_manual_text(run), file=out)
        return
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
    lines.append(f"  {plural(len(run.counts), 'counted frame')},"
                 f" {plural(len(run.frames()), 'frame')} kept, {plural(len(run.events), 'event')}")
    print("\n".join(lines + _result_lines(run)), file=out)


def _result_lines(run: RunFolder) -> list[str]:
    """Each zone's detected count and estimated concentration (what the report says)."""
    if not run.counts:
        return []
    try:
        data = summarize(run)
    except (SourceError, SampleInfoError) as exc:
        return [f"  results    not computed: {exc}"]
    lines = []
    for r in data["results"]:
        conc = (f"below the isotype control (< {number(r['ci95'][1])} per mL)"
                if r["upper_limit_only"] else
                f"estimated {number(r['per_ml'])} per mL (95 % {interval(*r['ci95'])})")
        lines.append(f"  result     {r['zone']} {r['marker']}+ ({r['channel']}):"
                     f" {r['detected']:,} detected, {conc}")
    lines += [f"  no result  {zone}: {why}" for zone, why in data["skipped"].items()]
    lines += [f"  QC         {f['subject']}: {f['code']}" for f in data["qc_flags"]]
    return lines


def _manual_text(run: RunFolder) -> str:
    """A manual session: when, by whom, on what, how it ended, and every action in order."""
    info = run.info
    lines = [f"manual session {run.run_id}", f"  folder     {run.path}"]
    for key in ("kind", "bench", "operator", "status", "reason", "started", "ended"):
        lines.append(f"  {key:<10} {info.get(key) if info.get(key) is not None else ''}")
    actions = [text for text in map(describe_manual_event, run.events) if text is not None]
    kinds = [e.get("event") for e in run.events]
    lines.append(f"  {plural(kinds.count('manual'), 'action')},"
                 f" {plural(kinds.count('manual_refused'), 'refusal')},"
                 f" {plural(kinds.count('interlock'), 'interlock')},"
                 f" {plural(kinds.count('emergency_stop'), 'emergency stop')},"
                 f" {plural(len(run.events), 'event')}")
    lines += [f"    {text}" for text in actions]
    return "\n".join(lines)


def _analysis_error(run: RunFolder, exc: Exception) -> UsageError:
    """A run whose entries cannot be used: which run, and what to fix."""
    return UsageError(f"run {run.run_id}: {exc}")


def runs_report(args: argparse.Namespace, out: TextIO) -> None:
    """Write the HTML report and say where."""
    run = _find_protocol_run(args)
    try:
        path = write_report(run, Path(args.out) if args.out else None)
    except (SourceError, SampleInfoError) as exc:
        raise _analysis_error(run, exc) from exc
    print(f"report: {path}", file=out)


def runs_compare(args: argparse.Namespace, out: TextIO) -> None:
    """Samples side by side: table, plot, CSV (+ Parquet), a spot table per run."""
    runs = []
    for name in args.runs:
        args.run = name
        runs.append(_find_protocol_run(args))
    try:
        cmp = compare(runs)
    except (SourceError, SampleInfoError) as exc:
        raise UsageError(str(exc)) from exc
    target = Path(args.out) if args.out else runs_root(args) / "compare"
    written = write_comparison(cmp, target)
    print(f"{plural(len(runs), 'run')}, {plural(len(cmp.rows), 'zone row')}: "
          f"{target / 'compare.html'}", file=out)
    if not any(p.suffix == ".parquet" for p in written):
        print("no Parquet file: pyarrow is not installed (pip install 'chipctl[parquet]');"
              " compare.csv has the same table", file=out)


def calibrate(args: argparse.Namespace, out: TextIO) -> None:
    """`chipctl calibrate RUN --reference CONC`: write a capture calibration file."""
    run = _find_protocol_run(args)
    try:
        cal = calibrate_run(run, args.reference, args.reference_rsd, args.material,
                            args.zone or ())
    except (SourceError, SampleInfoError, CalibrationRefused) as exc:
        raise _analysis_error(run, exc) from exc
    target = Path(args.out) if args.out else run.path / "calibration.yaml"
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(dump_calibration(cal), encoding="utf-8")
    ratios = ", ".join(f"{z} {c.factor:.3g} ± {100 * c.rsd:.0f} %" for z, c in cal.zones.items())
    print(f"calibration: {target} (measured / model capture: {ratios}); name it in the bench"
          f" file as chip.calibration", file=out)


def runs_export(args: argparse.Namespace, out: TextIO) -> None:
    """Export the counts table."""
    run = _find_protocol_run(args)
    target = Path(args.out) if args.out else run.path / f"counts.{args.format}"
    if target.resolve() == (run.path / "counts.csv").resolve():
        raise UsageError("refusing to overwrite the run's own counts.csv;"
                             " write the export elsewhere (--out FILE)")
    try:
        export_counts(run.counts, target, args.format, run.run_id)
    except ValueError as exc:
        raise UsageError(str(exc)) from exc
    print(f"{plural(len(run.counts), 'row')}: {target}", file=out)


ACTIONS = {"list": runs_list, "show": runs_show, "report": runs_report, "export": runs_export,
           "recount": runs_recount, "compare": runs_compare}
