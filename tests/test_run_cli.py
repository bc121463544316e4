"""`chipctl run` before anything moves: parameters checked, and the terminal progress."""

from __future__ import annotations

import io
from pathlib import Path

import pytest

from chipctl.cli.main import main
from chipctl.cli.progress import Outcome, TerminalProgress
from chipctl.run.clock import RunClock
from chipctl.run.events import RunEvents

ROOT = Path(__file__).resolve().parents[1]
OFFLINE_BENCH = str(ROOT / "tests" / "data" / "bench_offline.yaml")
PANEL = str(ROOT / "protocols" / "tetraspanin_panel.yaml")


@pytest.mark.parametrize(("params", "message"), [
    ([], "parameter 'sample' is required (sample name, e.g. MSC-CM donor 3); "
         "give it with --param sample=VALUE"),
    (["--param", "sample=S1", "--param", "donor=3"], "unknown parameter 'donor'; this protocol "
                                                     "takes: sample, dilution, operator"),
    (["--param", "sample"], "--param 'sample': write NAME=VALUE"),
])
def test_run_refuses_bad_parameters_before_touching_the_bench(
        params: list[str], message: str, capsys: pytest.CaptureFixture[str]) -> None:
    # The offline bench's ports lead nowhere: reaching them would fail differently.
    assert main(["run", PANEL, "--bench", OFFLINE_BENCH, *params]) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err


class FrozenClock(RunClock):
    def __init__(self) -> None:
        super().__init__(1.0)
        self.t = 0.0

    def now(self) -> float:
        return self.t


def test_progress_shows_step_protocol_and_wall_time_and_live_counts() -> None:
    events, clock, out = RunEvents(), FrozenClock(), io.StringIO()
    wall = [1000.0]
    progress = TerminalProgress(events, clock, 700.0, out=out, durations=[100.0, 600.0],
                                wall=lambda: wall[0])
    events.step_started.emit(0, 2, "1. prime")
    clock.t, wall[0] = 130.0, 1001.3  # the prime ran 30 s late; the simulator runs 100x
    events.step_started.emit(1, 2, "capture S1")
    clock.t, wall[0] = 430.0, 1004.3
    events.counted.emit({"zone": "CD63", "channel": "AF555", "field": 1, "count": 41,
                         "true_count": 43})
    assert progress.remaining_s() == pytest.approx(300.0)
    clock.t, wall[0] = 490.0, 1004.9
    progress.tick()  # what the ticker prints when a step runs long without a line
    events.state_changed.emit("paused", "pause requested")
    clock.t, wall[0] = 550.0, 1065.0
    progress.tick()
    events.counted.emit({"zone": "CD63", "channel": "AF555", "field": 2, "count": 1})
    assert out.getvalue().splitlines() == [
        "[protocol time 00:00, ~11:40 left; wall time 00:00] step 1/2: 1. prime",
        "[protocol time 02:10, ~10:00 left; wall time 00:01] step 2/2: capture S1",
        "[protocol time 07:10, ~05:00 left; wall time 00:04]   CD63 AF555 field 1: "
        "41 vesicles (simulator truth 43)",
        "[protocol time 08:10, ~04:00 left; wall time 00:05] step 2/2: capture S1",
        "[protocol time 08:10, ~04:00 left; wall time 00:05] paused: pause requested",
        "[protocol time 09:10, ~03:00 left; wall time 01:05] step 2/2: capture S1 (paused)",
        "[protocol time 09:10, ~03:00 left; wall time 01:05]   CD63 AF555 field 2: 1 vesicle",
    ]


class ClosedPipe(io.StringIO):
    def write(self, text: str) -> int:
        raise BrokenPipeError(32, "Broken pipe")


def test_progress_never_raises_into_the_run_when_the_terminal_goes_away() -> None:
    events = RunEvents()
    progress = TerminalProgress(events, FrozenClock(), 10.0, out=ClosedPipe())
    events.step_started.emit(0, 1, "1. wait")  # psygnal would fail the run's emit otherwise
    events.state_changed.emit("completed", "all steps done")
    progress.tick()
    assert progress.index == 0


@pytest.mark.parametrize(("n", "phrase"), [(0, "0 frames counted"), (1, "1 frame counted"),
                                           (2, "2 frames counted")])
def test_outcome_summary_counts_frames_in_words(n: int, phrase: str) -> None:

    rows = [{"zone": "CD63", "channel": "AF555", "field": i, "count": 10 + i} for i in range(n)]
    text = Outcome("completed", "all steps done", Path("/runs/r1"), rows).summary()
    first, folder = text.splitlines()
    assert first.startswith(f"run completed: all steps done; {phrase}")
    assert folder == "run folder: /runs/r1"
    if n:
        assert first.endswith(f"CD63/AF555 field {n - 1}: {9 + n}")
