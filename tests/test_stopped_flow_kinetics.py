"""The stopped-flow kinetics protocol end to end on the simulated bench: fill, stop, count while
the standing fluid is captured; the counts show the approach to saturation (issue 14)."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest
from simbench import simulated_bench

from chipctl.analysis.concentration import estimate
from chipctl.analysis.evidence import RunEvidence
from chipctl.analysis.kinetics import fit_kinetics
from chipctl.config.bench import load_bench
from chipctl.engine import Engine
from chipctl.protocol import parse_protocol
from chipctl.run.events import RunEvents, RunState
from chipctl.runs.folder import RunFolder

ROOT = Path(__file__).resolve().parents[1]


def shortened_library_protocol() -> str:
    """protocols/stopped_flow_kinetics.yaml with a 12 min incubation, no early stop."""
    text = (ROOT / "protocols" / "stopped_flow_kinetics.yaml").read_text()
    assert "incubate: 30 min" in text
    return (text.replace("incubate: 30 min", "incubate: 12 min")
            .replace("      until_plateau: {points: 5, tolerance: 2 %, min_count: 20}\n", ""))


@pytest.mark.timeout(300)
def test_the_standing_sample_shows_a_first_order_approach(tmp_path: Path) -> None:
    with simulated_bench(tmp_path, speed=20, seed=3, sample_per_ml=1e9) as (sim, path):
        sample = sim.world.reagents["sample"]
        engine = Engine(load_bench(path), runs_dir=tmp_path / "runs")
        engine.connect()
        try:
            protocol = parse_protocol(shortened_library_protocol(), "stopped.yaml")
            runner = engine.start_run(protocol, {}, RunEvents())
            assert runner.wait(240) == RunState.COMPLETED
        finally:
            engine.close()
    (folder,) = (tmp_path / "runs").iterdir()
    rows = [r for r in csv.DictReader((folder / "counts.csv").open()) if r["step"] == "2"]
    assert len(rows) >= 5, "frames while the fluid stood"
    t = [float(r["t_s"]) for r in rows]
    for counts in ([int(r["count"]) for r in rows], [int(r["true_count"]) for r in rows]):
        fit = fit_kinetics(t, counts, t[0])
        assert fit.regime == "saturating", fit.flags
        # depletion of a 50 um column by 100 nm vesicles: pi^2 D / 4 H^2 = 0.29 /min, less
        # the minute or so labelling lags behind capture
        assert 0.12 < fit.k_ci95[0] < fit.k_ci95[1] < 0.5
        assert fit.plateau_ci95[0] <= counts[-1] * 1.05 and counts[-1] <= fit.plateau_ci95[1]
    assert int(rows[-1]["true_count"]) > 3 * int(rows[0]["true_count"])
    # what was captured came mostly from the standing fluid (2.5 uL flowed): the concentration
    # books it, as diffusion from the stop to the frames. Without, it read 7.6x high (6.06e9
    # against 8e8); with, 1.02e9 in one CI run at load ~4 (this sample is 1e9/mL, the frames
    # crowded). One run's 95 % interval misses 1 in 20 by design: its coverage is measured over
    # many runs in benchmarks/accuracy.py, not asserted here.
    zones = estimate(RunEvidence.of(RunFolder.open(folder))).zones
    (cd63,) = [z for z in zones if z.zone == "CD63"]
    truth = sample.vesicles_per_ml * sample.markers["CD63"] * sample.labelling_efficiency
    assert truth / 1.5 < cd63.per_ml < 1.5 * truth, (cd63.per_ml, cd63.ci95, truth)
