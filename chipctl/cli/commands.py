"""What each chipctl command does. Input problems raise UsageError (exit 2)."""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from chipctl.cli.errors import EXIT_INVALID, EXIT_OK, EXIT_RUN_FAILED, UsageError
from chipctl.cli.progress import run_protocol
from chipctl.cli.runs import ACTIONS, calibrate, notify_interrupted, runs_root
from chipctl.cli.text import plural, say
from chipctl.config.bench import Bench, load_bench
from chipctl.config.sourcefile import Problem, SourceError
from chipctl.protocol.library import ProtocolNotFound, find_protocol
from chipctl.protocol.model import ParameterError, Protocol
from chipctl.protocol.script import load_any
from chipctl.protocol.validate import DryRun, check_protocol
from chipctl.run.memory import frames_back_to_the_system
from chipctl.runs.folder import recorded_counting
from chipctl.runs.frames import KeepPolicy
from chipctl.simlaunch import sample_args, simulated_bench_file
from chipctl.vision.count_cli import count_command
from chipctl.vision.factory import params_from_record
from chipctl.vision.model import CountParams


def dispatch(args: argparse.Namespace) -> int:
    """Run the command named in `args`."""
    handlers = {"run": cmd_run, "validate": cmd_validate, "count": cmd_count,
                "runs": cmd_runs, "sim": cmd_sim, "calibrate": cmd_calibrate}
    return handlers[args.command](args)


class InvalidProtocol(UsageError):
    """A protocol that cannot be used; `problems` are the details (file, line, message);
    `partial` the steps that could be read, if any."""

    def __init__(self, message: str, problems: list[Problem],
                 partial: Protocol | None = None) -> None:
        super().__init__(message)
        self.problems = problems
        self.partial = partial


def _load_protocol(name: str) -> Protocol:
    """A YAML protocol file (parsed, never executed) or a Python scripted protocol (.py), by
    its path or by its name in the protocol library."""
    try:
        return load_any(find_protocol(name))
    except ProtocolNotFound as exc:
        raise UsageError(str(exc)) from exc
    except SourceError as exc:
        partial = getattr(exc, "partial", None)
        raise InvalidProtocol(f"invalid protocol:\n{exc}", exc.problems, partial) from exc


def _with_bench_problems(exc: InvalidProtocol, bench: Bench) -> InvalidProtocol:
    """The file's problems and, for the steps that could be read, the bench's: all at once."""
    if exc.partial is None or not exc.partial.steps:
        return exc
    more, _ = check_protocol(exc.partial, bench, track_volumes=False)
    if not more:
        return exc
    problems = sorted(dict.fromkeys([*exc.problems, *more]), key=lambda p: p.line)
    listing = "\n".join(str(p) for p in problems)
    return InvalidProtocol(f"invalid protocol:\n{listing}", problems, exc.partial)


SIM_SPEED = 100.0  # the simulated bench's speed unless --speed says otherwise


@contextmanager
def bench_from_args(args: argparse.Namespace, speed: float | None = None) -> Iterator[Bench]:
    """The bench named by --bench, or a simulated one started for --sim (at `speed`)."""
    if args.bench:
        if speed is not None:
            raise UsageError("--speed applies to the simulated bench (--sim); a real bench "
                             "runs in real time")
        if getattr(args, "sample", None):
            raise UsageError("--sample describes the simulated sample (--sim); a real bench "
                             "has a real one")
        try:
            bench = load_bench(args.bench)
        except SourceError as exc:
            raise UsageError(f"invalid bench file:\n{exc}") from exc
        yield bench
        return
    if not args.sim:
        raise UsageError("say which bench: --bench FILE, or --sim for the simulated bench")
    speed = SIM_SPEED if speed is None else speed
    if not speed > 0:  # the parser refuses these; a caller of this function must too
        raise UsageError(f"--speed must be above 0, got {speed:g}")
    with simulated_bench_file(speed, getattr(args, "seed", 0), UsageError,
                              getattr(args, "sample", None)) as path:
        yield load_bench(path)


def validated(protocol: Protocol, bench: Bench) -> DryRun:
    """The dry run, or UsageError listing every problem."""
    problems, plan = check_protocol(protocol, bench)
    if problems:
        listing = "\n".join(str(p) for p in problems)
        raise InvalidProtocol(f"{protocol.source} cannot run on bench '{bench.name}':\n{listing}",
                              problems)
    return plan


def describe_plan(plan: DryRun) -> str:
    """The dry run for people."""
    lines = [f"{plural(len(plan.steps), 'step')}, about {plan.duration_s / 60:.1f} min"]
    lines += [f"  {s['label']} (line {s['line']}): {s['duration_s']:g} s" for s in plan.steps]
    for pump, volume in plan.volume_by_pump_ul.items():
        lines.append(f"  pump {pump}: {volume:g} uL")
    for reagent, volume in plan.volume_by_reagent_ul.items():
        lines.append(f"  reagent {reagent}: {volume:g} uL")
    lines.append(f"  peak pressure {plan.peak_pressure_kpa:.1f} kPa "
                 f"(chip limit {plan.pressure_limit_kpa:g} kPa)")
    lines.append(f"  {plural(plan.images, 'image')}, {plan.storage_bytes / 1e6:.0f} MB raw")
    for channel, seconds in plan.light_s_by_channel.items():
        lines.append(f"  light {channel}: {seconds:g} s lit, dose "
                     f"{plan.light_dose_by_channel[channel]:g} % x s")
    return "\n".join(lines)


def _problems_json(path: str, problems: list[Problem]) -> str:
    return json.dumps({"protocol": path, "valid": False, "problems": [
        {"file": p.path, "line": p.line, "message": p.message} for p in problems]})


def cmd_validate(args: argparse.Namespace) -> int:
    """chipctl validate: check and dry-run each protocol on one bench (one simulated bench
    for them all); exit 2 if any of them cannot run."""
    status = EXIT_OK
    with bench_from_args(args) as bench:
        for name in args.protocols:
            status = max(status, _validate_one(name, bench, args.json))
    return status


def _validate_one(name: str, bench: Bench, as_json: bool) -> int:
    """Check one protocol; print its dry run, or its problems (on stderr, and with --json as
    a JSON line on stdout too)."""
    try:
        try:
            protocol = _load_protocol(name)
        except InvalidProtocol as exc:
            raise _with_bench_problems(exc, bench) from exc
        plan = validated(protocol, bench)
    except UsageError as exc:
        if as_json:
            problems = exc.problems if isinstance(exc, InvalidProtocol) else [
                Problem(name, 0, str(exc))]
            print(_problems_json(name, problems), flush=True)
        print(f"chipctl: {exc}", file=sys.stderr, flush=True)
        return EXIT_INVALID
    if as_json:
        print(json.dumps({"protocol": protocol.source, "valid": True,
                          "parameters": [{"name": p.name, "default": p.default,
                                          "required": p.required} for p in protocol.parameters],
                          **plan.as_dict()}))
    else:
        print(f"{protocol.source}: valid\n{describe_plan(plan)}", flush=True)
    return EXIT_OK


def _parameters(pairs: list[str]) -> dict[str, str]:
    params = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep or not name:
            raise UsageError(f"--param {pair!r}: write NAME=VALUE")
        params[name.strip()] = value.strip()
    return params


def cmd_run(args: argparse.Namespace) -> int:
    """chipctl run: run a protocol and record it."""
    notify_interrupted(runs_root(args), sys.stdout)
    protocol = _load_protocol(args.protocol)
    try:
        params = protocol.resolve_parameters(_parameters(args.param))
    except ParameterError as exc:
        raise UsageError(f"{protocol.source}: {exc}") from exc
    try:
        KeepPolicy.parse(args.keep_frames)
    except ValueError as exc:
        raise UsageError(f"--keep-frames: {exc}") from exc
    info = _parameters(args.info)
    frames_back_to_the_system()  # a long run's RSS comes back down between its image steps
    with bench_from_args(args, speed=args.speed) as bench:
        validated(protocol, bench)
        runs_dir = Path(args.runs_dir) if args.runs_dir else None
        outcome = run_protocol(protocol, bench, runs_dir, params, confirm_prompts=args.yes,
                               keep_frames=args.keep_frames, info=info,
                               progress_every_s=args.progress_every)
    say(outcome.summary())  # the exit code is the run's, even if the reader has gone
    return EXIT_OK if outcome.state == "completed" else EXIT_RUN_FAILED


def cmd_count(args: argparse.Namespace) -> int:
    """chipctl count: count vesicles in image files (a run's saved frame with the counting
    parameters the run recorded, unless they are given)."""
    return count_command(images=args.images, json_out=args.json, psf_sigma=args.psf_sigma,
                         offset=args.offset, e_per_adu=args.e_per_adu,
                         read_noise=args.read_noise, out=sys.stdout, recorded=_run_counting)


def _run_counting(image: str) -> CountParams | None:
    """The counting parameters recorded by the run a saved frame belongs to, if any."""
    record = recorded_counting(image)
    return params_from_record(record) if record is not None else None


def cmd_runs(args: argparse.Namespace) -> int:
    """chipctl runs list | show | report | export | recount (recount gives its exit code)."""
    code = ACTIONS[args.runs_command or "list"](args, sys.stdout)
    return int(code or EXIT_OK)


def cmd_calibrate(args: argparse.Namespace) -> int:
    """chipctl calibrate RUN --reference CONC: a capture calibration file from a reference run."""
    calibrate(args, sys.stdout)
    return EXIT_OK


def cmd_sim(args: argparse.Namespace) -> int:
    """chipctl sim: the simulator in the foreground (python -m hardware_sim)."""
    cmd = [sys.executable, "-m", "hardware_sim", "--bench-out", args.bench_out,
           "--speed", str(args.speed), "--seed", str(args.seed), *sample_args(args.sample)]
    try:
        return subprocess.call(cmd)
    except KeyboardInterrupt:
        return EXIT_OK


__all__ = ["EXIT_INVALID", "dispatch"]
