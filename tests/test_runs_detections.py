"""spots.csv: the recorded detections read back as the counter gave them."""

from __future__ import annotations

import csv
import importlib
import io
from pathlib import Path

import numpy as np
import pytest
from _vision_helpers import CAL, small_frame

from chipctl.runs.detections import SPOT_COLUMNS, decimals, read_detections, spot_text
from chipctl.vision import CountParams, CountResult, count_frame
from chipctl.vision.model import empty_spots

reference = importlib.import_module("benchmarks.reference_crowded")


def test_detections_round_trip_with_bounds_and_multiplicity(tmp_path: Path) -> None:
    result = count_frame(small_frame(6.0, n=80, size=256, seed=41).image,
                         CountParams(calibration=CAL))
    path = tmp_path / "spots.csv"
    with path.open("w", newline="") as handle:
        csv.writer(handle).writerow(SPOT_COLUMNS)
        handle.write(spot_text({"seq": 3, "file": "", "step": 1}, result))
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


def _as_dict_writer_wrote(entry: dict, result: CountResult) -> str:
    handle = io.StringIO(newline="")
    reference.write_spot_rows(handle, entry, result)
    return handle.getvalue()


@pytest.mark.parametrize("calibrated", [True, False])
def test_spot_text_is_what_the_dict_writer_wrote_for_a_counted_frame(calibrated):
    result = count_frame(small_frame(4.0, n=1500, size=256, seed=42).image,
                         CountParams(calibration=CAL if calibrated else None))
    entry = {"seq": 12, "file": "frames/00012-CD63-f1-AF555.ome.tif", "step": 4, "zone": "CD63",
             "field": 1, "channel": "AF555"}
    assert result.count > 500 and (result.spots["multiplicity"] == 2).any()
    assert spot_text(entry, result) == _as_dict_writer_wrote(entry, result)


def test_spot_text_is_what_the_dict_writer_wrote_for_awkward_values():
    rng = np.random.default_rng(43)
    awkward = np.array([0.0625, 2.675, 1.0005, -0.0004, -0.0, 0.0, 0.00005, 1e13, 1e20, -1e17,
                        123456.7895, 0.1 + 0.2, 5e-324, np.nan, np.inf, -np.inf])
    spread = rng.standard_normal(3000) * 10.0 ** rng.integers(-6, 10, 3000)
    near_ties = np.round(rng.uniform(-50, 50, 2000), 4) + 0.00005
    values = np.concatenate([awkward, spread, near_ties])
    spots = empty_spots(values.size)
    for k, name in enumerate(("x", "y", "amplitude", "snr", "photons", "crlb_x", "crlb_y")):
        spots[name] = np.roll(values, 7 * k)
    spots["multiplicity"] = rng.integers(1, 3, values.size)
    result = CountResult(values.size, spots, threshold=5.12345)
    entry = {"seq": 0, "file": None, "step": 2, "zone": 'iso, "type"', "field": 3,
             "channel": "AF488"}
    assert spot_text(entry, result) == _as_dict_writer_wrote(entry, result)
    assert spot_text(entry, CountResult(0, empty_spots(0))) == ""


def test_decimals_spell_each_value_as_python_rounds_it():
    values = np.array([2.675, 0.0625, -0.0004, 1234.5, 7.0, np.nan])
    assert decimals(values, 3) == ["2.675", "0.062", "-0.0", "1234.5", "7.0", ""]
    assert decimals(values[-1:], 3, blank=False) == ["nan"]


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
