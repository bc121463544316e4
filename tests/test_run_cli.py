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


def test_progress_shows_step_elapsed_remaining_and_live_counts() -> None:
    events, clock, out = RunEvents(), FrozenClock(), io.StringIO()
    progress = TerminalProgress(events, clock, 700.0, out=out, durations=[100.0, 600.0])
    events.step_started.emit(0, 2, "1. prime")
    clock.t = 130.0  # the prime ran 30 s late
    events.step_started.emit(1, 2, "capture S1")
    clock.t = 430.0
    events.counted.emit({"zone": "CD63", "channel": "AF555", "field": 0, "count": 41,
                         "true_count": 43})
    assert progress.remaining_s() == pytest.approx(300.0)
    events.state_changed.emit("paused", "pause requested")
    assert out.getvalue().splitlines() == [
        "[00:00 elapsed, ~11:40 left] step 1/2: 1. prime",
        "[02:10 elapsed, ~10:00 left] step 2/2: capture S1",
        "[07:10 elapsed, ~05:00 left]   CD63 AF555 field 0: 41 vesicles (simulator truth 43)",
        "[07:10 elapsed, ~05:00 left] paused: pause requested",
    ]


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
