"""The foundation's path: a protocol file on the simulated bench to counted vesicles on disk."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_quickstart_runs_on_the_simulator_and_records_counts(tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    result = subprocess.run(
        [sys.executable, "-m", "chipctl", "run", str(ROOT / "protocols" / "quickstart.yaml"),
         "--sim", "--speed", "500", "--runs-dir", str(runs)],
        capture_output=True, text=True, timeout=90, cwd=ROOT, stdin=subprocess.DEVNULL,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "run completed" in result.stdout
    folders = [p for p in runs.iterdir() if p.is_dir()]
    assert len(folders) == 1
    folder = folders[0]
    assert str(folder) in result.stdout

    info = json.loads((folder / "run.json").read_text())
    assert info["status"] == "completed"
    assert info["protocol"] == "Quickstart"
    assert len(info["protocol_sha256"]) == 64
    devices = info["versions"]["devices"]  # what each device said it is, over the wire
    assert devices["sample_pump"]["version"].startswith("NE1000V")
    assert "ELITE" in devices["stain_pump"]["version"]
    assert devices["led"]["model"] == "pE-300" and "MAINBOARD" in devices["led"]["firmware"]
    assert devices["stage"]["firmware"] and devices["camera"]["model"]
    protocol_text = (ROOT / "protocols" / "quickstart.yaml").read_text()
    assert (folder / "protocol.yaml").read_text() == protocol_text

    rows = list(csv.DictReader((folder / "counts.csv").open()))
    assert [(r["zone"], r["channel"]) for r in rows] == [("CD63", "AF555")]
    counted, truth = int(rows[0]["count"]), int(rows[0]["true_count"])
    assert truth > 300, "the simulated sample should have left vesicles in the 333 um field"
    # The truth lists every labelled vesicle in view; at 40x / 0.95 even a vesicle with a few
    # dyes stands above the background's shot noise: the counter must find nearly all of them
    # and never invent vesicles.
    assert 0.85 * truth <= counted <= 1.02 * truth

    events = [json.loads(line) for line in (folder / "events.jsonl").read_text().splitlines()]
    kinds = [e["event"] for e in events]
    assert kinds.count("step_finished") == 6
    assert [e["state"] for e in events if e["event"] == "state"][-1] == "completed"
    delivered = [e for e in events if e["event"] == "pump_done"]
    assert [e["pump"] for e in delivered] == [
        "buffer_pump", "sample_pump", "buffer_pump", "stain_pump", "buffer_pump"]
    assert abs(delivered[1]["delivered_ul"] - 10.0) < 0.1
