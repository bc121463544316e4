"""The recorded spots table into the estimators: rows from rendered, counted fields."""

from __future__ import annotations

import math

import numpy as np
import pytest

from benchmarks.analysis_truth import E_PER_ADU, count, render, uniform_xy
from chipctl.analysis.detection import SpotNoise, detection_factor
from chipctl.analysis.spots import SpotTable, zone_colocalization, zone_detection


def recorded(rng: np.random.Generator) -> tuple[list[dict], dict[int, float]]:
    """Rows as a run records them: two fields of zone CD63 in two channels; 70 % of the
    AF555 vesicles also carry AF647."""
    rows, thresholds = [], {}
    for fld in range(2):
        xy = uniform_xy(500, rng)
        both = rng.random(500) < 0.7
        for channel, where, photons in (("AF555", xy, rng.lognormal(math.log(400), 0.5, 500)),
                                        ("AF647", xy[both], np.full(both.sum(), 3000.0))):
            res = count(render(where, photons, rng))
            thresholds[fld] = res.threshold
            rows += [{"zone": "CD63", "field": fld, "channel": channel, "x": s["x"],
                      "y": s["y"], "amplitude": s["amplitude"], "snr": s["snr"]}
                     for s in res.spots]
    return rows, thresholds


def test_detection_and_colocalization_from_the_spots_table() -> None:
    rng = np.random.default_rng(1)
    rows, thresholds = recorded(rng)
    table = SpotTable.from_rows(rows, e_per_adu=E_PER_ADU, psf_sigma_px=1.3)
    assert set(table.channel.tolist()) == {"AF555", "AF647"}
    det = zone_detection(table, "CD63", "AF555", thresholds, {0: 512.0**2, 1: 512.0**2},
                         SpotNoise(1.3, 100.0, 1.6))
    assert det.detected < 0.95 * 1000
    assert det.estimated_total == pytest.approx(1000, rel=0.06)
    coloc = zone_colocalization(table, "CD63", "AF647", "AF555", (512, 512),
                                detection_factor(det))
    # of the AF647 vesicles (all bright, all counted), every one carries AF555
    assert coloc.fraction == pytest.approx(1.0, abs=0.06)
    # of the AF555 vesicles counted, 70 % carry AF647 (all of them counted)
    reverse = zone_colocalization(table, "CD63", "AF555", "AF647", (512, 512))
    assert reverse.fraction == pytest.approx(0.7, abs=0.06)


def test_rows_missing_what_is_needed_say_which() -> None:
    with pytest.raises(ValueError, match="row 2: no 'snr'"):
        SpotTable.from_rows([{"zone": "a", "field": 0, "channel": "c", "x": 1, "y": 1,
                              "photons": 5, "snr": 6},
                             {"zone": "a", "field": 0, "channel": "c", "x": 1, "y": 1,
                              "photons": 5}])
    with pytest.raises(ValueError, match="e_per_adu"):
        SpotTable.from_rows([{"zone": "a", "field": 0, "channel": "c", "x": 1, "y": 1,
                              "amplitude": 5, "snr": 6}])


def test_rows_as_spots_csv_writes_them() -> None:
    # csv gives strings; an empty photons column falls back to the amplitude
    rows = [{"seq": "3", "file": "", "step": "2", "zone": "CD9", "field": "1", "channel": "AF488",
             "x": "10.5", "y": "20.25", "amplitude": "12.0", "snr": "6.5", "photons": ""}]
    table = SpotTable.from_rows(rows, e_per_adu=E_PER_ADU, psf_sigma_px=1.3)
    assert table.step.tolist() == [2] and table.field.tolist() == [1]
    assert table.photons[0] == pytest.approx(12.0 * E_PER_ADU * 2 * math.pi * 1.3**2)
    assert table.select("CD9", "AF488", step=2).xy.tolist() == [[10.5, 20.25]]
    assert table.select("CD9", "AF488", step=1).xy.size == 0
