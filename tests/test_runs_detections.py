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


def test_odd_rows_read_as_the_csv_module_reads_them(tmp_path: Path) -> None:
    header = "seq,file,step,zone,field,channel,x,y,amplitude,snr,photons,crlb_x,crlb_y," \
             "multiplicity,threshold\n"
    plain = "0,,1,CD9,1,AF488,1.5,2.5,100.0,9.0,,,,1,5.0\n"
    quoted = '1,,1,"CD9, donor 3",1,AF488,3.5,4.5,120.0,10.0,400.0,0.05,0.06,2,5.0\n'
    torn_inside = "2,,1,CD9,1,AF488,5.5\n"  # a crash tore it; recording went on after
    after = "2,,1,CD9,1,AF488,7.5,8.5,90.0,8.0,300.0,0.07,0.08,1,5.0\n"
    path = tmp_path / "spots.csv"
    path.write_text(header + plain + quoted + torn_inside + after + "3,,1,CD9,1,AF4")
    back = read_detections(path)
    assert sorted(back) == [0, 1, 2]  # the torn last row is not a frame yet
    assert back[0].xy.tolist() == [[1.5, 2.5]] and np.isnan(back[0].spots["photons"][0])
    assert back[1].xy.tolist() == [[3.5, 4.5]] and back[1].spots["multiplicity"][0] == 2
    assert back[2].count == 1 and back[2].xy.tolist() == [[7.5, 8.5]]
    path.write_text(header + plain + after)
    fast = read_detections(path)
    assert fast[2].spots["crlb_y"][0] == 0.08 and np.isnan(fast[0].spots["crlb_x"][0])
