"""`chipctl runs recount RUN... | --all [--since DATE] [--counter-version V] [--scheduler ADDRESS]`:
re-count the saved frames of many runs (chipctl.analysis.recount) with a progress bar.

Exit codes: 0 every frame re-counted; 1 some frame or run could not be (each one reported,
the rest done); 2 invalid input (no such run, a bad date or parameter, another counter
version than asked, a Dask scheduler that cannot be reached).
"""

from __future__ import annotations

import argparse
import datetime as dt
import time
from pathlib import Path
from typing import TextIO

from chipctl.analysis.recount import recount
from chipctl.analysis.recount_plan import (
    FrameOutcome,
    RecountOptions,
    RecountResult,
    counter_version,
    parse_overrides,
)
from chipctl.analysis.schedulers import DaskScheduler, PoolScheduler, Scheduler, SerialScheduler
from chipctl.cli.errors import EXIT_OK, EXIT_RUN_FAILED, UsageError
from chipctl.runs.folder import RunFolder, RunNotFound, resolve_run
from chipctl.runs.paths import default_runs_dir


def add_recount_parser(runs_sub: argparse._SubParsersAction) -> None:
    """The `runs recount` action and its options."""
    parser = runs_sub.add_parser(
        "recount", help="re-count the saved frames of runs with the current counter",
        description="Re-count the kept OME-TIFF frames of recorded runs and write the new "
                    "counts and report beside the old ones (RUN/recount/VERSION-TIME/), never "
                    f"over them. The installed counter is version {counter_version()}.")
    parser.add_argument("runs", nargs="*", metavar="RUN", help="run ids (or unique parts)")
    parser.add_argument("--all", action="store_true", help="every run in the runs directory")
    parser.add_argument("--since", default="", metavar="DATE",
                        help="only runs started on or after DATE (YYYY-MM-DD)")
    parser.add_argument("--counter-version", default="", metavar="V",
                        help="refuse unless the installed counter is version V")
    parser.add_argument("--set", action="append", default=[], metavar="NAME=VALUE",
                        help="a counting parameter instead of the run's (psf_sigma_px, "
                             "fixed_threshold, e_per_adu, ...)")
    parser.add_argument("--scheduler", default="", metavar="ADDRESS",
                        help="count on this Dask distributed scheduler (tcp://HOST:8786)")
    parser.add_argument("--connect-timeout", type=float, default=10.0, metavar="SECONDS",
                        help="how long to try reaching the Dask scheduler (default 10)")
    parser.add_argument("--workers", type=int, default=0, metavar="N",
                        help="local processes (default: one per CPU; 1: in this process)")
    parser.add_argument("--out", metavar="DIR",
                        help="write the re-counts under DIR/RUN/recount/ (read-only archives)")
    parser.add_argument("--again", action="store_true",
                        help="re-count runs already re-counted with this counter and parameters")


def _since(text: str) -> str:
    if not text:
        return ""
    try:
        (dt.datetime if "T" in text else dt.date).fromisoformat(text)
    except ValueError:
        raise UsageError(f"--since {text!r}: write a date as YYYY-MM-DD") from None
    return text


def select_runs(root: Path, names: list[str], every: bool, since: str) -> list[RunFolder]:
    """The runs named (or every run under `root`), started on or after `since`."""
    if bool(names) == every:
        raise UsageError("say which runs: RUN... or --all")
    if every:
        folders = sorted(p.parent for p in root.glob("*/run.json"))
    else:
        try:
            folders = [resolve_run(root, name) for name in names]
        except RunNotFound as exc:
            raise UsageError(str(exc)) from exc
    runs = []
    for folder in folders:
        try:
            run = RunFolder.open(folder)
        except RunNotFound:
            continue
        if str(run.info.get("started", "")) >= since:
            runs.append(run)
    return runs


def make_scheduler(address: str, workers: int, timeout_s: float = 10.0) -> Scheduler:
    """A Dask scheduler's client, a local process pool, or this process."""
    if address:
        try:
            return DaskScheduler(address, timeout_s=timeout_s)
        except ImportError as exc:
            raise UsageError(f"--scheduler needs Dask ({exc}): pip install "
                                    "'chipctl[dask]'") from exc
        except (OSError, TimeoutError, ValueError) as exc:
            raise UsageError(f"cannot reach the Dask scheduler at {address}: "
                                    f"{exc}") from exc
    if workers < 0:
        raise UsageError(f"--workers {workers}: give a positive number")
    pool = PoolScheduler(workers or None)
    if pool.workers == 1:
        pool.close()
        return SerialScheduler()
    return pool


class RecountProgress:
    """A progress bar: redrawn in place on a terminal, a line per tenth on a file or pipe."""

    def __init__(self, out: TextIO, total: int = 0, tty: bool | None = None) -> None:
        self.total, self.out = total, out
        self.tty = out.isatty() if tty is None else tty
        self.done = self.unreadable = 0
        self.start = self._drawn = time.monotonic()
        self._tenth = -1

    def _text(self) -> str:
        pct = 100 * self.done // max(self.total, 1)
        rate = self.done / max(time.monotonic() - self.start, 1e-9)
        bad = f", {self.unreadable} unreadable" if self.unreadable else ""
        return f"{self.done}/{self.total} frames ({pct} %), {rate:.1f} frames/s{bad}"

    def begin(self, total: int) -> None:
        """The number of frames the batch will count."""
        self.total, self.start = total, time.monotonic()

    def frame(self, outcome: FrameOutcome) -> None:
        """One frame counted (or not)."""
        self.done += 1
        if outcome.error:
            self.unreadable += 1
            self.line(f"unreadable frame skipped: {outcome.path}: {outcome.error}")
        if self.tty:
            if time.monotonic() - self._drawn > 0.1 or self.done == self.total:
                width = 30
                filled = width * self.done // max(self.total, 1)
                bar = "#" * filled + "-" * (width - filled)
                print(f"\r[{bar}] {self._text()}", end="", file=self.out, flush=True)
                self._drawn = time.monotonic()
        elif 10 * self.done // max(self.total, 1) > self._tenth:
            self._tenth = 10 * self.done // max(self.total, 1)
            print(f"recount: {self._text()}", file=self.out, flush=True)

    def line(self, text: str) -> None:
        """A message above the bar."""
        prefix = "\r\x1b[K" if self.tty else ""
        print(f"{prefix}{text}", file=self.out, flush=True)

    def run(self, result: RecountResult) -> None:
        """One run done (or skipped)."""
        if result.skipped:
            self.line(f"{result.run_id}: skipped, {result.skipped}")
            return
        if result.error:
            self.line(f"{result.run_id}: NOT re-counted, {result.error}")
            return
        report = f"; report not written: {result.report_error}" if result.report_error else ""
        self.line(f"{result.run_id}: {result.recounted} of {result.frames} frames re-counted,"
                  f" {result.previous_total} -> {result.new_total} vesicles: {result.folder}"
                  f"{report}")


def runs_recount(args: argparse.Namespace, out: TextIO) -> int:
    """Re-count the runs asked for; returns the exit code."""
    version = counter_version()
    if args.counter_version and args.counter_version != version:
        raise UsageError(f"--counter-version {args.counter_version}: the installed "
                                f"counter is version {version}")
    try:
        options = RecountOptions(parse_overrides(args.set), Path(args.out) if args.out else None,
                                 args.again)
    except ValueError as exc:
        raise UsageError(str(exc)) from exc
    root = Path(args.runs_dir) if getattr(args, "runs_dir", None) else default_runs_dir()
    runs = select_runs(root, list(args.runs), args.all, _since(args.since))
    if not runs:
        print(f"no runs to re-count in {root}", file=out)
        return EXIT_OK
    scheduler = make_scheduler(args.scheduler, args.workers, args.connect_timeout)
    try:
        return _run_batch(runs, scheduler, options, version, out)
    finally:
        scheduler.close()


def _run_batch(runs: list[RunFolder], scheduler: Scheduler, options: RecountOptions,
               version: str, out: TextIO) -> int:
    print(f"re-counting {len(runs)} runs with counter {version} on {scheduler.description}",
          file=out, flush=True)
    progress = RecountProgress(out)
    results = recount(runs, scheduler, options, progress.frame, progress.run, progress.begin)
    if progress.tty:
        print(file=out)
    failed = [r for r in results if r.error]
    recounted = [r for r in results if r.folder is not None and not (r.skipped or r.error)]
    print(f"{len(recounted)} runs re-counted, {len(results) - len(recounted)} not;"
          f" {progress.done} frames, {progress.unreadable} unreadable", file=out)
    return EXIT_RUN_FAILED if progress.unreadable or failed else EXIT_OK
