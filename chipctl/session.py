"""The engine one bench runs on: the rig, the run store and the runner, wired together.

The command line, the GUI and Python scripts all go through `Engine`, so a run behaves the same
whichever started it.
"""

from __future__ import annotations

import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from chipctl.bench import Bench
from chipctl.clock import RunClock
from chipctl.control import RunControl
from chipctl.events import RunEvents, RunState
from chipctl.executor import Executor
from chipctl.protocol.model import Protocol
from chipctl.rig import Rig
from chipctl.runner import Runner
from chipctl.runstore import RunRecorder, default_runs_dir
from drivers.errors import DeviceError


def count_params_for(bench: Bench) -> Any:
    """Counting parameters from the camera's bench settings (PSF sigma, calibration)."""
    from chipctl.vision import CameraCalibration, CountParams

    cameras = bench.of_kind("camera")
    settings = next(iter(cameras.values())).settings if cameras else {}
    calibration = None
    if "e_per_adu" in settings:
        calibration = CameraCalibration(
            offset_adu=float(settings.get("offset_adu", 100.0)),
            e_per_adu=float(settings["e_per_adu"]),
            read_noise_e=float(settings.get("read_noise_e", 1.6)),
        )
    return CountParams(psf_sigma_px=float(settings.get("psf_sigma_px", 1.3)),
                       calibration=calibration)


def make_counter(bench: Bench) -> Callable[[Any], Any]:
    """count_frame bound to the bench's camera calibration."""
    from chipctl.vision import count_frame

    params = count_params_for(bench)
    return lambda image: count_frame(image, params)


class BenchUnavailable(Exception):
    """A device of the bench could not be reached."""


@dataclass
class Outcome:
    """How a run ended and where it is recorded."""

    state: str
    reason: str
    folder: Path
    counts: list[dict[str, Any]] = field(default_factory=list)

    def summary(self) -> str:
        """One line for the terminal, plus where the run is."""
        totals = ", ".join(
            f"{row['zone']}/{row['channel']} field {row['field']}: {row['count']}"
            + (f" (truth {row['true_count']})" if row.get("true_count") is not None else "")
            for row in self.counts[-6:]
        )
        return (f"run {self.state}: {self.reason}; {len(self.counts)} frames counted"
                f"{'; ' + totals if totals else ''}\nrun folder: {self.folder}")


class Engine:
    """One bench, connected; starts runs and stops everything on request."""

    def __init__(self, bench: Bench, runs_dir: Path | None = None) -> None:
        self.bench = bench
        self.runs_dir = runs_dir or default_runs_dir()
        self.rig = Rig(bench)
        self.clock = RunClock(bench.time_scale)
        self.runner: Runner | None = None
        self.recorder: RunRecorder | None = None

    def connect(self) -> None:
        """Connect every device; BenchUnavailable names the one that failed."""
        try:
            self.rig.connect()
        except DeviceError as exc:
            self.rig.close()
            raise BenchUnavailable(f"cannot connect to the bench: {exc}") from exc

    def start_run(self, protocol: Protocol, parameters: dict[str, str] | None = None,
                  events: RunEvents | None = None) -> Runner:
        """Record and start a run in a worker thread."""
        events = events or RunEvents()
        self.recorder = RunRecorder(self.runs_dir, protocol, self.bench, parameters)
        self.recorder.attach(events)
        control = RunControl(self.clock)
        executor = Executor(self.rig, control, events, counter=make_counter(self.bench))
        self.runner = Runner(protocol, executor, events)
        recorder = self.recorder
        events.state_changed.connect(
            lambda state, reason: recorder.finish(state, reason)
            if RunState(state).finished else None
        )
        self.runner.start()
        return self.runner

    def emergency_stop(self) -> list[str]:
        """Every pump and light off now, whatever is running."""
        if self.runner is not None and not self.runner.state.finished:
            return self.runner.emergency_stop()
        return self.rig.safe_state()

    def close(self) -> None:
        """Stop safely and close every port."""
        self.rig.safe_state()
        self.rig.close()


class TerminalProgress:
    """Prints a run's progress: steps, elapsed and remaining, live counts."""

    def __init__(self, events: RunEvents, clock: RunClock, total_s: float, out: Any = None):
        self.out = out or sys.stdout
        self.clock, self.total_s = clock, total_s
        self.start = clock.now()
        events.step_started.connect(self.step)
        events.counted.connect(self.count)
        events.state_changed.connect(self.state)

    def _elapsed(self) -> str:
        elapsed = self.clock.now() - self.start
        remaining = max(0.0, self.total_s - elapsed)
        return f"[{elapsed / 60:5.1f} min elapsed, ~{remaining / 60:.1f} min left]"

    def step(self, index: int, total: int, label: str) -> None:
        print(f"{self._elapsed()} step {index + 1}/{total}: {label}", file=self.out, flush=True)

    def count(self, row: dict[str, Any]) -> None:
        truth = f" (simulator truth {row['true_count']})" if row.get("true_count") is not None else ""
        print(f"{self._elapsed()}   {row['zone']} {row['channel']} field {row['field']}: "
              f"{row['count']} vesicles{truth}", file=self.out, flush=True)

    def state(self, state: str, reason: str) -> None:
        print(f"{self._elapsed()} {state}: {reason}", file=self.out, flush=True)


def _answer_prompts(events: RunEvents, runner: Runner, confirm: bool) -> None:
    def ask(message: str) -> None:
        print(f"OPERATOR: {message}", flush=True)
        if confirm or not sys.stdin.isatty():
            print("  (confirmed automatically)", flush=True)
            runner.confirm()
            return
        threading.Thread(target=lambda: (input("  press Enter when done "), runner.confirm()),
                         daemon=True).start()

    events.prompt.connect(ask)


def run_protocol(protocol: Protocol, bench: Bench, runs_dir: Path | None,
                 parameters: dict[str, str], confirm_prompts: bool = False) -> Outcome:
    """Run a protocol to the end on the terminal (Ctrl-C aborts safely)."""
    from chipctl.cli import UsageError
    from chipctl.protocol.validate import check_protocol

    engine = Engine(bench, runs_dir)
    try:
        engine.connect()
    except BenchUnavailable as exc:
        raise UsageError(str(exc)) from exc
    events = RunEvents()
    _, plan = check_protocol(protocol, bench)
    TerminalProgress(events, engine.clock, plan.duration_s)
    try:
        runner = engine.start_run(protocol, parameters, events)
        _answer_prompts(events, runner, confirm_prompts)
        try:
            while not runner.wait(0.2).finished:
                pass
        except KeyboardInterrupt:
            runner.abort("interrupted by the operator (Ctrl-C)")
            runner.wait(30)
        assert engine.recorder is not None
        return Outcome(runner.state.value, runner.reason, engine.recorder.folder,
                       list(engine.recorder.count_rows))
    finally:
        engine.close()
