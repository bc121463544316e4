"""A controller killed (SIGKILL) while recording: the run is readable, marked interrupted with
its last completed step, and nothing it had written is lost."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from chipctl.cli.main import main
from chipctl.runs import RunFolder, RunIndex, read_frame

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="SIGKILL is POSIX")


def run_and_kill(tmp_path: Path, until: str, times: int = 1) -> tuple[Path, list[str]]:
    """Start the child, read its stdout until `times` lines started with `until`, kill it."""
    child = subprocess.Popen([sys.executable, "-m", "tests.runs_child", str(tmp_path)],
                             cwd=ROOT, stdout=subprocess.PIPE, text=True)
    assert child.stdout is not None
    said, deadline = [], time.monotonic() + 30
    while time.monotonic() < deadline:
        line = child.stdout.readline().strip()
        said.append(line)
        if not line or sum(s.startswith(until) for s in said) >= times:
            break
    os.kill(child.pid, signal.SIGKILL)
    child.wait(10)
    folder = Path(next(s for s in said if s.startswith("FOLDER")).split(" ", 1)[1])
    return folder, said


def test_killed_before_the_first_step_finished(tmp_path: Path) -> None:
    folder, _ = run_and_kill(tmp_path, "FOLDER")
    assert json.loads((folder / "run.json").read_text())["status"] == "running"
    found = RunIndex(tmp_path / "runs").refresh()
    assert [f["run_id"] for f in found] == [folder.name]
    run = RunFolder.open(folder)
    assert run.info["status"] == "interrupted"
    assert run.info["last_completed_step"] is None
    assert "no step completed" in run.info["reason"]
    assert run.info["syringes"]["sample_pump"]["contents_ul"] == pytest.approx(800)


def test_killed_mid_run_keeps_everything_written(tmp_path: Path,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    folder, said = run_and_kill(tmp_path, "COUNT", times=10)
    told = [int(s.split()[1]) for s in said if s.startswith("COUNT")]
    assert len(told) == 10 and "STEP 2" in said

    assert main(["runs", "--runs-dir", str(tmp_path / "runs"), "list"]) == 0
    out = capsys.readouterr().out
    assert f"run {folder.name}" in out and "was interrupted" in out
    assert "sample_pump (sample): 760 uL" in out, "what the sample syringe held"
    assert "interrupted" in out.split("NOTE:")[-1]

    run = RunFolder.open(folder)
    assert run.info["status"] == "interrupted"
    assert run.info["last_completed_step"] == {"index": 2, "label": "stain"}
    counted = [r["count"] for r in run.counts]
    assert counted[: len(told)] == told, "every count the controller reported is on disk"
    logged = [e["count"] for e in run.events if e["event"] == "count"]
    assert logged[: len(told)] == told
    frames = run.frames()
    assert len(frames) >= len(told)
    image, meta = read_frame(folder / frames[0]["file"])
    assert image.size > 0 and meta["zone"] == run.counts[0]["zone"]

    assert main(["runs", "--runs-dir", str(tmp_path / "runs"), "list",
                 "--status", "interrupted"]) == 0
    listed = capsys.readouterr().out
    assert folder.name in listed and "last completed step 3: stain" in listed
    assert "NOTE" not in listed, "the operator is told once"


def test_a_live_run_is_not_taken_for_a_crash(tmp_path: Path) -> None:
    child = subprocess.Popen([sys.executable, "-m", "tests.runs_child", str(tmp_path)],
                             cwd=ROOT, stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout is not None
        while not child.stdout.readline().startswith("STEP 0"):
            pass
        assert RunIndex(tmp_path / "runs").refresh() == []
        assert RunIndex(tmp_path / "runs").list()[0]["status"] == "running"
    finally:
        child.kill()
        child.wait(10)
