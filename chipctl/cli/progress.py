"""The run on the terminal: progress lines, operator prompts, and how the run ended.

`run_protocol` is what `chipctl run` does once the protocol and the bench are checked: it
connects the engine, prints every step and count as it happens (and, during a long step, a
line at least every few wall seconds), answers operator prompts (Enter, or automatically with
--yes or without a terminal) and aborts safely on Ctrl-C. The closing summary is read from
the run's record, so it says what the record says.
"""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from chipctl.cli.errors import UsageError
from chipctl.cli.text import plural
from chipctl.config.bench import Bench
from chipctl.engine import BenchUnavailable, Engine
from chipctl.protocol.model import Protocol
from chipctl.protocol.validate import check_protocol
from chipctl.run.clock import RunClock
from chipctl.run.events import RunEvents
from chipctl.run.signals import StopSignal, stopping_on_signals
from chipctl.runs.folder import RunFolder
from chipctl.runs.recorder import RunRecorder

RECORD_WAIT_S = 30.0  # wall seconds the summary waits for the run's record to close


@dataclass
class Outcome:
    """How a run ended and where it is recorded."""

    state: str
    reason: str
    folder: Path
    counts: list[dict[str, Any]] = field(default_factory=list)

    @classmethod
    def recorded(cls, folder: Path) -> Outcome:
        """The outcome as the run folder records it (run.json and counts.csv)."""
        run = RunFolder.open(folder)
        return cls(str(run.info.get("status") or "unknown"), str(run.info.get("reason") or ""),
                   folder, run.counts)

    @property
    def finished(self) -> bool:
        """True if the record says the run ended."""
        return self.state not in ("running", "paused", "unknown")

    def summary(self) -> str:
        """One line for the terminal, plus where the run is."""
        totals = ", ".join(
            f"{row['zone']}/{row['channel']} field {row['field']}: {row['count']}"
            + (f" (truth {row['true_count']})" if row.get("true_count") is not None else "")
            for row in self.counts[-6:]
        )
        counted = f"{plural(len(self.counts), 'frame')} counted"
        head = (f"run {self.state}: {self.reason}" if self.finished else
                f"run not finished: its record still says {self.state}")
        return (f"{head}; {counted}{'; ' + totals if totals else ''}"
                f"\nrun folder: {self.folder}")


class TerminalProgress:
    """Prints a run's progress: step, protocol time elapsed and left, wall time, live counts.

    Protocol time is the run's clock (the simulator's when simulated: faster than the wall
    clock by the speed factor); wall time is the terminal's. `durations` are the dry run's
    estimates per step (protocol seconds); the time left is what the remaining steps are
    planned to take, plus what is left of the current one. `tick()` repeats the current step
    with the times, for the lines a long step prints every few seconds (`start_ticker`).
    Printing is thread-safe and stops quietly if the terminal (or pipe) goes away: a run never
    fails for its progress lines.
    """

    def __init__(self, events: RunEvents, clock: RunClock, total_s: float, out: Any = None,
                 durations: list[float] | None = None,
                 wall: Callable[[], float] = time.monotonic) -> None:
        self.out = out or sys.stdout
        self.clock, self.total_s, self.wall = clock, total_s, wall
        self.durations = durations or []
        self.start, self.wall_start = clock.now(), wall()
        self.index, self.step_start = -1, self.start
        self.label, self.total, self.run_state = "", 0, "running"
        self.last_line_wall = self.wall_start
        self._lock = threading.Lock()
        self._closed = False
        self._stop = threading.Event()
        self._ticker: threading.Thread | None = None
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

    def _times(self) -> str:
        elapsed = self.clock.now() - self.start
        return (f"[protocol time {_clock_text(elapsed)}, ~{_clock_text(self.remaining_s())} "
                f"left; wall time {_clock_text(self.wall() - self.wall_start)}]")

    def say(self, text: str) -> None:
        """Print one line (never raises: a closed terminal or pipe ends the printing)."""
        with self._lock:
            if self._closed:
                return
            try:
                print(text, file=self.out, flush=True)
            except (OSError, ValueError):  # BrokenPipeError, or a closed file
                self._closed = True
            self.last_line_wall = self.wall()

    def step(self, index: int, total: int, label: str) -> None:
        """A step started."""
        self.index, self.step_start = index, self.clock.now()
        self.label, self.total = label, total
        self.say(f"{self._times()} step {index + 1}/{total}: {label}")

    def count(self, row: dict[str, Any]) -> None:
        """A frame was counted."""
        truth = row.get("true_count")
        truth = f" (simulator truth {truth})" if truth is not None else ""
        n = row["count"]
        self.say(f"{self._times()}   {row['zone']} {row['channel']} field {row['field']}: "
                 f"{plural(int(n), 'vesicle') if n is not None else 'no count'}{truth}")

    def state(self, state: str, reason: str) -> None:
        """The run changed state."""
        self.run_state = state
        self.say(f"{self._times()} {state}: {reason}")

    def tick(self) -> None:
        """Where the run is now: the current step (or state) with the times."""
        if self.index < 0:
            self.say(f"{self._times()} {self.run_state}")
            return
        doing = "" if self.run_state == "running" else f" ({self.run_state})"
        self.say(f"{self._times()} step {self.index + 1}/{self.total}: {self.label}{doing}")

    def start_ticker(self, every_s: float) -> None:
        """Print `tick()` whenever `every_s` wall seconds pass without a line, until stop()."""
        def run() -> None:
            while not self._stop.wait(max(0.05, every_s - (self.wall() - self.last_line_wall))):
                if self.wall() - self.last_line_wall >= every_s:
                    self.tick()

        self._ticker = threading.Thread(target=run, name="chipctl-progress", daemon=True)
        self._ticker.start()

    def stop(self) -> None:
        """No more ticks."""
        self._stop.set()
        if self._ticker is not None:
            self._ticker.join(5)


def _clock_text(seconds: float) -> str:
    minutes, secs = divmod(int(round(seconds)), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes:02d}:{secs:02d}"


def _answer_prompts(events: RunEvents, confirm_run: Callable[[], None], confirm: bool,
                    say: Callable[[str], None]) -> None:
    def ask(message: str) -> None:
        say(f"OPERATOR: {message}")
        if confirm or not sys.stdin.isatty():
            say("  (confirmed automatically)")
            confirm_run()
            return
        def wait_for_enter() -> None:
            input("  press Enter when done ")
            confirm_run()

        threading.Thread(target=wait_for_enter, daemon=True).start()

    events.prompt.connect(ask)


def recorded_outcome(recorder: RunRecorder, wait_s: float = RECORD_WAIT_S) -> Outcome:
    """How the run ended by its record, once the record is closed (or `wait_s` wall seconds
    have passed: then the summary says the record still shows the run going)."""
    recorder.wait_closed(wait_s)
    return Outcome.recorded(recorder.folder)


RUN_END_WAIT_S = 30.0  # after a stop, wall seconds the run may take to end and be recorded


class RunStops:
    """The stop signals of one `chipctl run`. While the bench connects a signal ends the
    connect (StopSignal, as Ctrl-C raises KeyboardInterrupt): the run is then recorded as
    stopped before it started. Once the run exists a signal interrupts it (at once, safely);
    one that came in between interrupts it as soon as it exists (`deliver`)."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.names: list[str] = []
        self.connecting = True
        self._delivered = False

    def signal(self, name: str) -> None:
        """The handler of SIGTERM and SIGHUP."""
        self.names.append(name)
        if self.connecting:
            raise StopSignal(name)
        self.deliver()

    def deliver(self) -> None:
        """Interrupt the run for the first signal, once there is a run."""
        if self.names and not self._delivered and self.engine.runner is not None:
            self._delivered = True
            self.engine.interrupt(f"interrupted by {self.names[0]}")


def run_protocol(protocol: Protocol, bench: Bench, runs_dir: Path | None,
                 parameters: dict[str, str], confirm_prompts: bool = False,
                 keep_frames: str = "all", info: dict[str, str] | None = None,
                 progress_every_s: float = 5.0) -> Outcome:
    """Run a protocol to the end on the terminal (Ctrl-C, SIGTERM, SIGHUP: stopped at once,
    safely, recorded as aborted, even while the bench is connecting); the outcome is the
    record's."""
    engine = Engine(bench, runs_dir=runs_dir, keep_frames=keep_frames, info=info)
    _, plan = check_protocol(protocol, bench)
    stops = RunStops(engine)
    with stopping_on_signals(stops.signal):
        try:
            engine.connect()
            stops.connecting = False
        except BenchUnavailable as exc:
            raise UsageError(str(exc)) from exc
        except (KeyboardInterrupt, StopSignal) as stop:
            stops.connecting = False
            return _stopped_connecting(engine, protocol, parameters, stop)
        return _run_connected(engine, protocol, parameters, plan.duration_s,
                              [step["duration_s"] for step in plan.steps], stops,
                              confirm_prompts, progress_every_s)


def _run_connected(engine: Engine, protocol: Protocol, parameters: dict[str, str],
                   total_s: float, durations: list[float], stops: RunStops,
                   confirm_prompts: bool, progress_every_s: float) -> Outcome:
    """The run on a connected engine, to its end; the engine closed after it."""
    events = RunEvents()
    progress: TerminalProgress | None = None
    try:
        # psygnal holds bound-method listeners weakly: keep the progress printer alive.
        progress = TerminalProgress(events, engine.clock, total_s, durations=durations)
        _answer_prompts(events, lambda: engine.runner.confirm() if engine.runner else None,
                        confirm_prompts, progress.say)
        runner = engine.start_run(protocol, parameters, events)
        stops.deliver()
        progress.start_ticker(progress_every_s)
        try:
            while not runner.wait(0.2).finished and not stops.names:
                pass
        except KeyboardInterrupt:
            engine.interrupt(CTRL_C)
        runner.wait(RUN_END_WAIT_S)
        assert engine.recorder is not None
        return recorded_outcome(engine.recorder)
    finally:
        if progress is not None:
            progress.stop()
        engine.close()


CTRL_C = "interrupted by the operator (Ctrl-C)"


def _stopped_connecting(engine: Engine, protocol: Protocol, parameters: dict[str, str],
                        stop: BaseException) -> Outcome:
    """The run stopped by `stop` (Ctrl-C or a signal) while the bench connected, recorded."""
    cause = CTRL_C if isinstance(stop, KeyboardInterrupt) else f"interrupted by {stop}"
    reason = f"{cause} while connecting to the bench"
    return Outcome.recorded(engine.stop_unstarted(protocol, parameters, reason).folder)
