"""The run on the terminal: progress lines, operator prompts, and how the run ended.

`run_protocol` is what `chipctl run` does once the protocol and the bench are checked: it
connects the engine, prints every step and count as it happens, answers operator prompts
(Enter, or automatically with --yes or without a terminal) and aborts safely on Ctrl-C.
"""

from __future__ import annotations

import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from chipctl.cli.errors import UsageError
from chipctl.config.bench import Bench
from chipctl.engine import BenchUnavailable, Engine
from chipctl.protocol.model import Protocol
from chipctl.protocol.validate import check_protocol
from chipctl.run.clock import RunClock
from chipctl.run.events import RunEvents


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
        n = len(self.counts)
        return (f"run {self.state}: {self.reason}; {n} frame{'' if n == 1 else 's'} counted"
                f"{'; ' + totals if totals else ''}\nrun folder: {self.folder}")


class TerminalProgress:
    """Prints a run's progress: step, elapsed and remaining time, live counts.

    `durations` are the dry run's estimates per step (protocol seconds); the time left is what
    the remaining steps are planned to take, plus what is left of the current one.
    """

    def __init__(self, events: RunEvents, clock: RunClock, total_s: float, out: Any = None,
                 durations: list[float] | None = None):
        self.out = out or sys.stdout
        self.clock, self.total_s = clock, total_s
        self.durations = durations or []
        self.start = clock.now()
        self.index, self.step_start = -1, self.start
        events.step_started.connect(self.step)
        events.counted.connect(self.count)
        events.state_changed.connect(self.state)

    def remaining_s(self) -> float:
        """Estimated protocol seconds left."""
        now = self.clock.now()
        if not self.durations or self.index < 0:
            return max(0.0, self.total_s - (now - self.start))
        current = self.durations[self.index] if self.index < len(self.durations) else 0.0
        later = sum(self.durations[self.index + 1:])
        return later + max(0.0, current - (now - self.step_start))

    def _elapsed(self) -> str:
        elapsed = self.clock.now() - self.start
        return f"[{_clock_text(elapsed)} elapsed, ~{_clock_text(self.remaining_s())} left]"

    def step(self, index: int, total: int, label: str) -> None:
        self.index, self.step_start = index, self.clock.now()
        print(f"{self._elapsed()} step {index + 1}/{total}: {label}", file=self.out, flush=True)

    def count(self, row: dict[str, Any]) -> None:
        truth = row.get("true_count")
        truth = f" (simulator truth {truth})" if truth is not None else ""
        print(f"{self._elapsed()}   {row['zone']} {row['channel']} field {row['field']}: "
              f"{row['count']} vesicles{truth}", file=self.out, flush=True)

    def state(self, state: str, reason: str) -> None:
        print(f"{self._elapsed()} {state}: {reason}", file=self.out, flush=True)


def _clock_text(seconds: float) -> str:
    minutes, secs = divmod(int(round(seconds)), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes:02d}:{secs:02d}"


def _answer_prompts(events: RunEvents, confirm_run: Callable[[], None], confirm: bool) -> None:
    def ask(message: str) -> None:
        print(f"OPERATOR: {message}", flush=True)
        if confirm or not sys.stdin.isatty():
            print("  (confirmed automatically)", flush=True)
            confirm_run()
            return
        def wait_for_enter() -> None:
            input("  press Enter when done ")
            confirm_run()

        threading.Thread(target=wait_for_enter, daemon=True).start()

    events.prompt.connect(ask)


def run_protocol(protocol: Protocol, bench: Bench, runs_dir: Path | None,
                 parameters: dict[str, str], confirm_prompts: bool = False,
                 keep_frames: str = "all", info: dict[str, str] | None = None) -> Outcome:
    """Run a protocol to the end on the terminal (Ctrl-C aborts safely)."""
    engine = Engine(bench, runs_dir=runs_dir, keep_frames=keep_frames, info=info)
    try:
        engine.connect()
    except BenchUnavailable as exc:
        raise UsageError(str(exc)) from exc
    events = RunEvents()
    _, plan = check_protocol(protocol, bench)
    # psygnal holds bound-method listeners weakly: keep the progress printer alive for the run.
    progress = TerminalProgress(events, engine.clock, plan.duration_s,
                                durations=[step["duration_s"] for step in plan.steps])
    _answer_prompts(events, lambda: engine.runner.confirm() if engine.runner else None,
                    confirm_prompts)
    try:
        runner = engine.start_run(protocol, parameters, events)
        try:
            while not runner.wait(0.2).finished:
                pass
        except KeyboardInterrupt:
            runner.abort("interrupted by the operator (Ctrl-C)")
            runner.wait(30)
        assert engine.recorder is not None and progress is not None
        return Outcome(runner.state.value, runner.reason, engine.recorder.folder,
                       list(engine.recorder.count_rows))
    finally:
        engine.close()
