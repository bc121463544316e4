"""The command line: chipctl run | validate | count | runs | sim (DESIGN.md, Command line).

Exit codes: 0 success; 1 a run that was aborted or failed; 2 invalid input (a protocol, bench
file or image that cannot be used), with a message a person can act on and no traceback.
"""

from __future__ import annotations

import argparse
import logging
import math
import sys
from collections.abc import Sequence

import chipctl
from chipctl.cli import commands
from chipctl.cli.errors import EXIT_INVALID, EXIT_OK, EXIT_RUN_FAILED, UsageError
from chipctl.cli.recount import add_recount_parser
from chipctl.cli.text import discard_stdout
from chipctl.run.signals import StopSignal
from chipctl.vision.count_cli import add_count_arguments


def _above_zero(text: str, number: str, hint: str) -> float:
    """`text` as a finite number above 0; else the usage error says `number` and `hint`."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not {number}") from None
    if not (math.isfinite(value) and value > 0):
        raise argparse.ArgumentTypeError(f"must be above 0{hint}, got {text}")
    return value


def speed_factor(text: str) -> float:
    """A simulator speed factor: a number above 0 (simulated seconds per wall second)."""
    return _above_zero(text, "a number",
                       " (simulated seconds per wall second, e.g. 1 or 100)")


def wall_seconds(text: str) -> float:
    """A wall-time interval in seconds, above 0."""
    return _above_zero(text, "a number of seconds", " seconds")


def _add_runs_dir(parser: argparse.ArgumentParser) -> None:
    # SUPPRESS on an action's own option: `runs --runs-dir D list` keeps D (argparse would
    # otherwise overwrite it with the action's default)
    parser.add_argument("--runs-dir", metavar="DIR", default=argparse.SUPPRESS,
                        help="where run folders are (default: the user's data directory)")


def _add_bench_options(parser: argparse.ArgumentParser) -> None:
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--bench", metavar="FILE", help="bench file describing the devices")
    group.add_argument("--sim", action="store_true", help="start and use the simulated bench")


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of `chipctl`."""
    parser = argparse.ArgumentParser(
        prog="chipctl",
        description="Controller and analyzer for microfluidic exosome-capture chips.",
    )
    parser.add_argument("--version", action="version", version=f"chipctl {chipctl.__version__}")
    parser.add_argument("-v", "--verbose", action="count", default=0,
                        help="more log output (-vv shows device traffic)")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    run = sub.add_parser("run", help="run a protocol on a bench")
    run.add_argument("protocol", metavar="PROTOCOL",
                     help="a protocol file, or the name of one in the protocol library")
    _add_bench_options(run)
    run.add_argument("--speed", type=speed_factor, default=None,
                     help="simulator speed factor with --sim (simulated s per wall s; "
                          "default 100)")
    run.add_argument("--runs-dir", metavar="DIR", help="where run folders are written")
    run.add_argument("--progress-every", type=wall_seconds, default=5.0, metavar="S",
                     help="print progress at least every S wall seconds (default 5)")
    run.add_argument("--seed", type=int, default=0, help="simulator seed with --sim")
    run.add_argument("--sample", metavar="FILE",
                     help="with --sim: a sample file describing the simulated sample")
    run.add_argument("--param", action="append", default=[], metavar="NAME=VALUE",
                     help="a run parameter (sample name, dilution, operator)")
    run.add_argument("--yes", action="store_true",
                     help="confirm operator prompts without asking")
    run.add_argument("--info", action="append", default=[], metavar="NAME=VALUE",
                     help="run information for the record and report, not used by the protocol"
                          " (operator; MISEV2018 items: source, preprocessing, separation,"
                          " storage, protein, dilution; size_median_nm, size_gsd,"
                          " size_median_rsd; labelling_efficiency, labelling_rsd)")
    run.add_argument("--keep-frames", default="all", metavar="all|none|N",
                     help="raw frames to keep as OME-TIFF: all, none, or every Nth")

    validate = sub.add_parser("validate", help="check a protocol and estimate the run (dry run)")
    validate.add_argument("protocols", nargs="+", metavar="PROTOCOL",
                          help="protocol files, or names of protocols in the library")
    _add_bench_options(validate)
    validate.add_argument("--json", action="store_true", help="print the estimate as JSON")

    count = sub.add_parser("count", help="count vesicles in images (a run's frames with the "
                                        "run's counting parameters)")
    add_count_arguments(count)

    runs = sub.add_parser("runs", help="list and inspect recorded runs")
    runs.add_argument("--runs-dir", metavar="DIR",
                      help="where run folders are (before or after the action)")
    _add_runs_actions(runs.add_subparsers(dest="runs_command", metavar="ACTION"))

    _add_calibrate_parser(sub)
    sim = sub.add_parser("sim", help="serve the simulated bench (same as python -m hardware_sim)")
    sim.add_argument("--speed", type=speed_factor, default=1.0,
                     help="simulated seconds per wall second (default 1)")
    sim.add_argument("--seed", type=int, default=0)
    sim.add_argument("--bench-out", metavar="FILE", default="sim-bench.yaml")
    sim.add_argument("--sample", metavar="FILE",
                     help="a sample file describing the simulated sample (README)")
    return parser


def concentration_per_ml(text: str) -> float:
    """A reference concentration: particles per mL, e.g. 2e9 or 2.0e9."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of particles per mL"
                                         " (e.g. 2e9)") from None
    if not (math.isfinite(value) and value > 0):
        raise argparse.ArgumentTypeError(f"must be above 0 particles per mL, got {text}")
    return value


def _add_calibrate_parser(sub: argparse._SubParsersAction) -> None:
    cal = sub.add_parser("calibrate", help="a capture calibration file from a run on a "
                                           "reference material of known concentration")
    cal.add_argument("run", metavar="RUN", help="the reference run (id, unique part, 'last')")
    cal.add_argument("--reference", type=concentration_per_ml, required=True, metavar="CONC",
                     help="the reference material's marker-positive particles per mL (stock,"
                          " before the run's dilution)")
    cal.add_argument("--reference-rsd", type=float, default=0.05, metavar="R",
                     help="its relative standard uncertainty (default 0.05)")
    cal.add_argument("--material", default="reference material",
                     help="what the reference is (lot, supplier)")
    cal.add_argument("--zone", action="append", default=[], help="calibrate only this zone")
    cal.add_argument("--out", metavar="FILE", help="where (default RUN_FOLDER/calibration.yaml)")
    cal.add_argument("--runs-dir", metavar="DIR", help="where run folders are")


def _add_runs_actions(runs_sub: argparse._SubParsersAction) -> None:
    listing = runs_sub.add_parser("list", help="list runs and manual sessions (newest last)")
    listing.add_argument("--kind", default="", choices=("", "protocol", "manual"),
                         help="only protocol runs, or only manual sessions")
    listing.add_argument("--protocol", default="", help="protocol name contains this")
    listing.add_argument("--sample", default="", help="sample name contains this")
    listing.add_argument("--status", default="",
                         help="completed, aborted, failed, interrupted or running")
    listing.add_argument("--since", default="", metavar="DATE", help="started on or after")
    listing.add_argument("--until", default="", metavar="DATE", help="started on or before")
    listing.add_argument("--rebuild", action="store_true",
                         help="rebuild the index from the run folders first")
    show = runs_sub.add_parser("show", help="show one run or manual session")
    show.add_argument("run", metavar="RUN", help="run id (or a unique part of it, or 'last')")
    show.add_argument("--json", action="store_true", help="print run.json as is")
    report = runs_sub.add_parser("report", help="write a run's report (HTML)")
    report.add_argument("run", metavar="RUN")
    report.add_argument("--out", metavar="FILE", help="where (default RUN_FOLDER/report.html)")
    export = runs_sub.add_parser("export", help="export a run's counts table")
    export.add_argument("run", metavar="RUN")
    export.add_argument("--format", choices=("csv", "parquet"), default="csv")
    export.add_argument("--out", metavar="FILE", help="where (default RUN_FOLDER/counts.FORMAT)")
    comp = runs_sub.add_parser("compare", help="samples side by side: table, plot, CSV/Parquet,"
                                                " spot tables")
    comp.add_argument("runs", nargs="+", metavar="RUN")
    comp.add_argument("--out", metavar="DIR", help="where (default RUNS_DIR/compare)")
    add_recount_parser(runs_sub)
    for action in (listing, show, report, export, comp, runs_sub.choices["recount"]):
        _add_runs_dir(action)


def _configure_logging(verbosity: int) -> None:
    level = logging.WARNING if verbosity == 0 else logging.INFO if verbosity == 1 else logging.DEBUG
    logging.basicConfig(level=level, format="%(asctime)s %(name)s %(levelname)s: %(message)s")


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of `chipctl`; returns the exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    _configure_logging(args.verbose)
    if args.command is None:
        parser.print_help()
        return EXIT_INVALID
    try:
        return int(commands.dispatch(args))
    except UsageError as exc:
        print(f"chipctl: {exc}", file=sys.stderr)
        return EXIT_INVALID
    except KeyboardInterrupt:
        print("chipctl: interrupted", file=sys.stderr)
        return EXIT_RUN_FAILED
    except StopSignal as stop:
        print(f"chipctl: interrupted by {stop}", file=sys.stderr)
        return EXIT_RUN_FAILED
    except BrokenPipeError:  # the reader went away (`chipctl count --json ... | head`)
        discard_stdout()
        return EXIT_OK


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
