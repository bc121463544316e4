"""The accuracy benchmark's truth is the simulated sample's: its co-expression formula against
the simulator's own marker draw (a benchmark may read the simulator; product code may not)."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from benchmarks.accuracy import coexpression_truth, completed
from hardware_sim.population import MARKERS, draw_markers

FRACTIONS = {"CD9": 0.45, "CD63": 0.75, "CD81": 0.6}


@pytest.mark.parametrize("rho", [0.0, 0.3, 0.5, 1.0])
def test_coexpression_truth_is_the_fraction_the_simulator_draws(rho: float) -> None:
    reagent = SimpleNamespace(markers=FRACTIONS, co_expression=rho)
    positive = draw_markers(np.random.default_rng(7), reagent, 200_000)
    truth = {"markers": FRACTIONS, "co_expression": rho}
    for a, marker in enumerate(MARKERS):
        for b, other in enumerate(MARKERS):
            if a != b:
                drawn = float(positive[positive[:, a], b].mean())
                # binomial sd of the drawn fraction is < 0.0015 here
                assert coexpression_truth(truth, marker, other) == pytest.approx(drawn, abs=0.006)


def test_a_kept_run_is_reported_again_only_when_its_last_attempt_completed(tmp_path: Path) -> None:
    assert not completed(tmp_path / "none yet")
    for name, status in (("20261203-100000-panel", "failed"), ("20261203-100500-panel", None)):
        (tmp_path / name).mkdir()
        (tmp_path / name / "run.json").write_text(json.dumps({"status": status}))
    assert not completed(tmp_path)  # the retry never finished
    (tmp_path / "20261203-101000-panel").mkdir()
    (tmp_path / "20261203-101000-panel" / "run.json").write_text('{"status": "completed"}')
    assert completed(tmp_path)
