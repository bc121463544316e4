"""The run store end to end on the simulated bench: `chipctl run` killed (SIGKILL) at several
points, and the report of a tetraspanin-panel run against the simulator's ground truth."""

from __future__ import annotations

import csv
import json
import os
import signal
import statistics
import subprocess
import sys
import time
from collections import defaultdict
from pathlib import Path

import pytest
import tifffile

from chipctl.cli.main import main
from chipctl.runs import RunFolder, read_frame
from tests.simbench import simulated_bench

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="SIGKILL is POSIX")
LABELS = {"CD9": "AF488", "CD63": "AF555", "CD81": "AF647"}
PANEL = """\
schema_version: 1
name: Panel for the run store
parameters:
  sample: {description: "sample name"}
steps:
  - prime: {pump: buffer_pump, volume: 20 uL, rate: 50 uL/min}
  - sample: {pump: sample_pump, volume: 50 uL, rate: 5 uL/min}
  - wash: {pump: buffer_pump, volume: 20 uL, rate: 20 uL/min}
  - stain: {pump: stain_pump, volume: 20 uL, rate: 2 uL/min,
            labels: {CD9: AF488, CD63: AF555, CD81: AF647}}
  - wash: {pump: buffer_pump, volume: 20 uL, rate: 20 uL/min}
  - image:
      zones: [CD9, CD63, CD81, isotype]
      grid: [1, 3]
      field_spacing: 250 um
      channels:
        - {channel: AF488, exposure: 100 ms, power: 50 %}
        - {channel: AF555, exposure: 100 ms, power: 50 %}
        - {channel: AF647, exposure: 100 ms, power: 50 %}
"""


def chipctl(capsys: pytest.CaptureFixture[str], *args: str) -> subprocess.CompletedProcess[str]:
    """`chipctl ARGS` in this process (its exit code and output as a finished process's): the
    commands read what the killed child left behind, so a process of their own adds nothing
    but its start-up."""
    capsys.readouterr()
    code = main(list(args))
    out, err = capsys.readouterr()
    return subprocess.CompletedProcess(["chipctl", *args], code, out, err)


def start_run(tmp_path: Path, bench: Path, *extra: str) -> subprocess.Popen[str]:
    (tmp_path / "panel.yaml").write_text(PANEL)
    return subprocess.Popen(
        [sys.executable, "-m", "chipctl", "run", str(tmp_path / "panel.yaml"), "--bench",
         str(bench), "--runs-dir", str(tmp_path / "runs"), "--param", "sample=MSC-CM", *extra],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
        stdin=subprocess.DEVNULL)


def kill_when(child: subprocess.Popen[str], said: list[str], pattern: str, times: int,
              delay_s: float = 0.0) -> None:
    """Read the run's output until `pattern` appeared `times` times, wait, SIGKILL it."""
    assert child.stdout is not None
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        line = child.stdout.readline()
        if not line:
            break
        said.append(line.rstrip())
        if sum(pattern in s for s in said) >= times:
            break
    time.sleep(delay_s)
    os.kill(child.pid, signal.SIGKILL)
    child.wait(10)


def only_run(tmp_path: Path) -> RunFolder:
    folders = [p for p in (tmp_path / "runs").iterdir() if (p / "run.json").is_file()]
    assert len(folders) == 1
    return RunFolder.open(folders[0])


def test_killed_before_the_first_step_finished(tmp_path: Path,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    with simulated_bench(tmp_path, speed=20) as (_, bench):
        said: list[str] = []
        kill_when(start_run(tmp_path, bench), said, "step 1/6", 1, delay_s=0.5)
    listing = chipctl(capsys, "runs", "--runs-dir", str(tmp_path / "runs"), "list")
    assert listing.returncode == 0, listing.stderr
    assert "was interrupted" in listing.stdout and "no step completed" in listing.stdout
    assert "sample_pump (sample): 1000 uL" in listing.stdout
    assert "buffer_pump (buffer)" in listing.stdout and "was infusing 20 uL" in listing.stdout
    run = only_run(tmp_path)
    assert run.info["status"] == "interrupted" and run.info["last_completed_step"] is None
    assert [e["event"] for e in run.events][:2] == ["run_started", "state"]


def test_killed_mid_run_after_some_counts(tmp_path: Path,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    with simulated_bench(tmp_path, speed=300) as (_, bench):
        said: list[str] = []
        kill_when(start_run(tmp_path, bench), said, " vesicles", 5)
        notice = chipctl(capsys, "run", str(tmp_path / "panel.yaml"), "--bench", str(bench),
                         "--runs-dir", str(tmp_path / "runs"), "--param", "sample=x",
                         "--keep-frames", "bogus")
    assert notice.returncode == 2 and "--keep-frames" in notice.stderr
    printed = [int(s.split(": ")[-1].split()[0]) for s in said if " vesicles" in s]
    assert len(printed) == 5
    assert "was interrupted" in notice.stdout, "the next start tells the operator"
    assert "last completed step 5/6" in notice.stdout
    assert "sample_pump (sample): 950 uL" in notice.stdout

    run = next(RunFolder.open(p) for p in (tmp_path / "runs").iterdir()
               if (p / "run.json").is_file() and RunFolder.open(p).counts)
    assert run.info["status"] == "interrupted"
    assert run.info["last_completed_step"]["index"] == 4
    on_disk = [r["count"] for r in run.counts]
    assert on_disk[: len(printed) - 1] == printed[:-1], "nothing flushed is lost"
    logged = [e["count"] for e in run.events if e["event"] == "count"]
    assert logged == on_disk[: len(logged)] and len(on_disk) - len(logged) <= 1, (
        "the event log and the counts table differ at most by the row being written")
    assert all(r["true_count"] is not None for r in run.counts)
    frames = run.frames()
    assert len(frames) >= len(on_disk)
    for entry, row in zip(frames, run.counts, strict=False):
        image, meta = read_frame(run.path / entry["file"])
        assert image.shape == (512, 512)
        assert (meta["zone"], meta["channel"], meta["field"]) == (
            row["zone"], row["channel"], row["field"])
        assert meta["x_um"] == pytest.approx(row["x_um"])
        assert meta["exposure_ms"] == pytest.approx(100) and meta["power_pct"] == 50


def test_panel_report_on_the_simulated_bench(tmp_path: Path,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    """The report of a simulated run reads each zone in the channel its protocol's stain names
    (no --info labels), corrects every count and gives intervals above zero; its accuracy over
    many runs and samples is benchmarks.accuracy's to measure."""
    (tmp_path / "panel.yaml").write_text(PANEL)
    with simulated_bench(tmp_path, speed=1500) as (_, bench):
        ran = chipctl(capsys, "run", str(tmp_path / "panel.yaml"), "--bench", str(bench),
                      "--runs-dir", str(tmp_path / "runs"), "--param", "sample=MSC-CM",
                      "--info", "source=MSC conditioned medium", "--info", "dilution=1:10")
    assert ran.returncode == 0, ran.stderr
    run = only_run(tmp_path)
    report = chipctl(capsys, "runs", "--runs-dir", str(tmp_path / "runs"), "report", run.run_id)
    assert report.returncode == 0, report.stderr
    data = json.loads((run.path / "report.json").read_text())
    assert "capture_efficiency" not in (run.path / "bench.yaml").read_text()

    rows = list(csv.DictReader((run.path / "counts.csv").open()))
    assert len(rows) == 4 * 3 * 3 and all(r["threshold"] for r in rows)
    by_key: dict[tuple[str, str], list[int]] = defaultdict(list)
    for row in rows:
        by_key[(row["zone"], row["channel"])].append(int(row["count"]))
    for zone in data["zones"]:
        assert zone["mean_count"] == pytest.approx(
            statistics.fmean(by_key[(zone["zone"], zone["channel"])]))
    results = {r["zone"]: r for r in data["results"]}
    assert set(results) == {"CD9", "CD63", "CD81"}
    for zone, r in results.items():
        assert r["channel"] == LABELS[zone]
        assert r["detected"] == sum(by_key[(zone, LABELS[zone])])
        assert 0 < r["ci95"][0] < r["per_ml"] < r["ci95"][1]
        assert r["method"]["dilution"]["value"] == 10
        assert r["method"]["capture efficiency"]["source"].startswith("mass-transport model")
    assert any(r["coexpression"] for r in data["results"])

    with tifffile.TiffFile(run.path / run.frames()[0]["file"]) as tif:
        assert tif.is_ome and "PositionX" in (tif.ome_metadata or "")
