"""spots.csv: the recorded detections read back as the counter gave them."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
from _vision_helpers import CAL, small_frame

from chipctl.runs.detections import SPOT_COLUMNS, read_detections, spot_rows
from chipctl.vision import CountParams, count_frame


def test_detections_round_trip_with_bounds_and_multiplicity(tmp_path: Path) -> None:
    result = count_frame(small_frame(6.0, n=80, size=256, seed=41).image,
                         CountParams(calibration=CAL))
    path = tmp_path / "spots.csv"
    with path.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, SPOT_COLUMNS)
        writer.writeheader()
        writer.writerows(spot_rows({"seq": 3, "file": "", "step": 1}, result))
    back = read_detections(path)[3]
    assert back.count == result.count
    for name, tol in (("x", 1e-3), ("y", 1e-3), ("snr", 1e-3), ("crlb_x", 1e-4),
                      ("photons", 0.1)):
        assert np.allclose(back.spots[name], result.spots[name], atol=tol)
    assert np.array_equal(back.spots["multiplicity"], result.spots["multiplicity"])


def test_detections_of_an_older_run_without_the_new_columns(tmp_path: Path) -> None:
    path = tmp_path / "spots.csv"
    path.write_text("seq,file,step,zone,field,channel,x,y,amplitude,snr\n"
                    "0,,1,CD9,0,AF488,10.5,20.25,150.0,12.0\n")
    back = read_detections(path)[0]
    assert back.count == 1 and back.xy.tolist() == [[10.5, 20.25]]
    assert np.isnan(back.spots["crlb_x"][0]) and back.spots["multiplicity"][0] == 1
