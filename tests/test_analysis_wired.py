"""Each correction wired end to end, on synthetic run folders whose answer is known
(tests/runs_synth.py): the dilution, labels from the protocol, the calibration file, kinetics
by zone area, runs compare, and what the command line says about bad entries."""

from __future__ import annotations

import csv
import json
import math
import shutil
import statistics
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest

from chipctl.analysis.calibration import load_calibration
from chipctl.analysis.summary import summarize
from chipctl.cli.main import main
from chipctl.config.bench import load_bench
from chipctl.config.sourcefile import SourceError
from chipctl.run.events import RunEvents
from chipctl.runs import RunFolder, RunRecorder
from chipctl.vision.factory import params_record
from tests.runs_synth import (
    KINETICS,
    MARKERS,
    PARAMS,
    PROTOCOL,
    SyntheticRun,
    kinetics_counts,
    write_inputs,
)
from tests.test_runs_store import ReportingPump, record_run, recorded_as

TRUTH_PER_ML = 4e6


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory, recorded_panel: Any) -> list[RunFolder]:
    """Two panel runs of the same sample (seeds 1, 2) in one runs directory (seed 1: the
    session's, entered as this batch)."""
    root = tmp_path_factory.mktemp("wired")
    first = recorded_as(recorded_panel[0].folder, root / "runs", size_median_nm="100",
                        sample="MSC-EV batch 1")
    recorder, _ = record_run(root, seed=2, size_median_nm="100", sample="MSC-EV batch 2")
    return [first, RunFolder.open(recorder.folder)]


@pytest.fixture(scope="module")
def summaries(runs: list[RunFolder]) -> list[dict[str, Any]]:
    return [summarize(run) for run in runs]


def with_params(run: RunFolder, **params: str) -> RunFolder:
    """The same records with other run parameters (as if entered differently)."""
    info = {**run.info, "parameters": {**run.info["parameters"], **params}}
    return RunFolder(run.path, info)


def test_corrections_bring_every_marker_to_the_truth(summaries: list[dict[str, Any]]) -> None:
    corrected, raw = [], []
    for data in summaries:
        for r in data["results"]:
            truth = TRUTH_PER_ML * MARKERS[r["zone"]]
            assert r["ci95"][0] < truth < r["ci95"][1], (r["zone"], r["per_ml"], r["ci95"])
            assert r["ci95"][0] > 0
            corrected.append(abs(math.log(r["per_ml"] / truth)))
            raw.append(abs(math.log(r["raw_per_ml"] / truth)))
    assert statistics.median(corrected) < statistics.median(raw)
    assert statistics.median(corrected) < 0.1


def test_dilution_multiplies_the_concentration(runs: list[RunFolder],
                                              summaries: list[dict[str, Any]]) -> None:
    neat = summaries[0]  # no dilution entered: 1:1
    assert neat["sample"]["dilution"] == 1
    tenfold = summarize(with_params(runs[0], dilution="1:10"))
    for a, b in zip(neat["results"], tenfold["results"], strict=True):
        assert b["per_ml"] == pytest.approx(10 * a["per_ml"])
        assert b["ci95"] == pytest.approx([10 * c for c in a["ci95"]])
        assert b["detected"] == a["detected"]
    assert tenfold["sample"]["dilution"] == 10 and "1:10" in tenfold["sample"]["dilution_source"]


def test_a_dilution_that_cannot_be_read_is_refused_with_its_name(
        runs: list[RunFolder], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    folder = tmp_path / runs[0].path.name
    shutil.copytree(runs[0].path, folder)
    info = json.loads((folder / "run.json").read_text())
    info["parameters"]["dilution"] = "ten to one"
    (folder / "run.json").write_text(json.dumps(info))
    assert main(["runs", "--runs-dir", str(tmp_path), "report", folder.name]) == 2
    err = capsys.readouterr().err
    assert "dilution 'ten to one'" in err and "1:10" in err and "Traceback" not in err


def test_without_labels_in_the_protocol_no_zone_is_guessed(tmp_path: Path) -> None:
    unlabelled = PROTOCOL.replace(",\n            labels: {CD9: AF488, CD63: AF555, CD81: AF647}",
                                  "")
    protocol, bench = write_inputs(tmp_path / "inputs", unlabelled)
    assert all(not getattr(s, "labels", ()) for s in protocol.steps)
    recorder = RunRecorder(tmp_path / "runs", protocol, bench, {},
                           devices={"sample_pump": ReportingPump()},
                           counting=params_record(PARAMS))
    events = RunEvents()
    recorder.attach(events)
    SyntheticRun(events, bench, seed=4).run()
    recorder.finish("completed", "done")
    data = summarize(RunFolder.open(recorder.folder))
    assert data["results"] == []
    assert set(data["skipped"]) == {"CD9", "CD63", "CD81"}
    assert "no label for CD63 in the protocol's stain step" in data["skipped"]["CD63"]


def test_a_calibration_file_overrides_the_model(runs: list[RunFolder],
                                                summaries: list[dict[str, Any]], tmp_path: Path,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    root = str(runs[0].path.parent)
    target = tmp_path / "cd63.yaml"
    assert main(["calibrate", runs[0].run_id, "--runs-dir", root, "--zone", "CD63",
                 "--reference", str(TRUTH_PER_ML * MARKERS["CD63"]), "--material",
                 "CD63+ reference, lot 7", "--out", str(target)]) == 0
    assert "CD63" in capsys.readouterr().out
    cal = load_calibration(target)
    # the model is right about this chip (the synthetic capture is the PDE): a ratio near 1
    assert cal.zones["CD63"].factor == pytest.approx(1.0, abs=3 * cal.zones["CD63"].rsd)
    halved = target.read_text().replace(f"factor: {cal.zones['CD63'].factor}", "factor: 0.5")
    (tmp_path / "half.yaml").write_text(halved)
    folder = tmp_path / "runs" / runs[1].path.name
    shutil.copytree(runs[1].path, folder)
    bench = (folder / "bench.yaml").read_text()
    (folder / "bench.yaml").write_text(bench.replace("chip:\n", f"chip:\n  calibration: "
                                                                f"{tmp_path / 'half.yaml'}\n"))
    model = {r["zone"]: r for r in summaries[1]["results"]}
    calibrated = {r["zone"]: r for r in summarize(RunFolder.open(folder))["results"]}
    assert calibrated["CD63"]["per_ml"] == pytest.approx(2 * model["CD63"]["per_ml"])
    assert "calibration" in calibrated["CD63"]["method"]["capture efficiency"]["source"]
    assert calibrated["CD9"]["per_ml"] == pytest.approx(model["CD9"]["per_ml"])


def test_a_calibration_is_not_divided_by_the_labelling_efficiency_again(
        runs: list[RunFolder], summaries: list[dict[str, Any]], tmp_path: Path) -> None:
    # the reference run saw half its vesicles (labelling 0.5): its ratio holds that half
    root = str(runs[0].path.parent)
    target = tmp_path / "cd63.yaml"
    assert main(["calibrate", runs[0].run_id, "--runs-dir", root, "--zone", "CD63",
                 "--reference", str(2 * TRUTH_PER_ML * MARKERS["CD63"]), "--material",
                 "CD63+ reference, labelled at 0.5", "--out", str(target)]) == 0
    folder = tmp_path / "runs" / runs[1].path.name
    shutil.copytree(runs[1].path, folder)
    bench = (folder / "bench.yaml").read_text()
    (folder / "bench.yaml").write_text(bench.replace("chip:\n", f"chip:\n  calibration: "
                                                                f"{target}\n"))
    # run 1 read as a sample labelled at 0.5 too, and entered so: it holds twice the vesicles
    # it shows (2x the model's reading of all of them), once, not 4x
    entered = with_params(RunFolder.open(folder), labelling_efficiency="0.5")
    results = {r["zone"]: r for r in summarize(entered)["results"]}
    model = {r["zone"]: r for r in summaries[1]["results"]}
    assert results["CD63"]["per_ml"] == pytest.approx(2 * model["CD63"]["per_ml"], rel=0.15)
    assert "not applied again" in results["CD63"]["method"]["capture efficiency"]["source"]
    # a zone the file does not calibrate still divides by the entered labelling
    assert results["CD9"]["per_ml"] == pytest.approx(2 * model["CD9"]["per_ml"])


def test_a_capture_efficiency_in_the_bench_file_is_refused(tmp_path: Path) -> None:
    write_inputs(tmp_path)
    text = (tmp_path / "bench.yaml").read_text()
    (tmp_path / "bench.yaml").write_text(text.replace("chip:\n", "chip:\n  capture_efficiency: "
                                                                 "0.8\n"))
    with pytest.raises(SourceError, match=r"bench.yaml:\d+: chip.capture_efficiency: chipctl "
                                          "computes capture efficiency"):
        load_bench(tmp_path / "bench.yaml")


def kinetics_run(tmp_path: Path, plateau: float, k_per_min: float, x_um: float,
                 start: int = 0) -> RunFolder:
    protocol, bench = write_inputs(tmp_path / "inputs", KINETICS)
    recorder = RunRecorder(tmp_path / "runs", protocol, bench, {},
                           devices={"sample_pump": ReportingPump()}, keep_frames="none")
    events = RunEvents()
    recorder.attach(events)
    kinetics_counts(events, plateau, k_per_min, x_um=x_um, start=start)
    recorder.finish("completed", "done")
    return RunFolder.open(recorder.folder)


def test_kinetics_rate_constant_and_rate_per_zone_area(tmp_path: Path) -> None:
    # the field's centre on the zone's downstream edge: half the field lies on the zone
    run = kinetics_run(tmp_path, plateau=2000, k_per_min=0.15, x_um=1900.0)
    (fit,) = summarize(run)["kinetics"]
    assert fit["regime"] == "saturating"
    assert fit["k_ci95"][0] < 0.15 < fit["k_ci95"][1]
    field_mm2 = (512 * 0.65 / 1000) ** 2
    assert fit["imaged_area_mm2"] == pytest.approx(field_mm2 / 2, rel=1e-3)
    assert fit["rate_per_mm2_min"] == pytest.approx(fit["rate_per_min"] / (field_mm2 / 2))


def test_a_falling_count_is_flagged(tmp_path: Path) -> None:
    run = kinetics_run(tmp_path, plateau=-300, k_per_min=0.05, x_um=1500.0, start=800)
    flags = [f for f in summarize(run)["qc_flags"] if f["code"] == "kinetics"]
    assert flags and "negative slope" in flags[0]["message"]


def test_runs_compare_puts_samples_side_by_side(runs: list[RunFolder], tmp_path: Path,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    root = str(runs[0].path.parent)
    out = tmp_path / "cmp"
    assert main(["runs", "--runs-dir", root, "compare", runs[0].run_id, runs[1].run_id,
                 "--out", str(out)]) == 0
    assert "2 runs, 6 zone rows" in capsys.readouterr().out
    rows = list(csv.DictReader((out / "compare.csv").open()))
    assert [(r["sample"], r["zone"]) for r in rows] == [
        (f"MSC-EV batch {s}", z) for s in (1, 2) for z in ("CD9", "CD63", "CD81")]
    assert all(0 < float(r["ci95_low"]) < float(r["per_ml"]) for r in rows)
    assert rows[0]["source"] == "" and rows[0]["dilution"] == "1.0"
    assert len(pq.read_table(out / "compare.parquet").to_pylist()) == 6
    assert (out / "compare.png").read_bytes()[:4] == b"\x89PNG"
    assert "MSC-EV batch 2" in (out / "compare.html").read_text()
    for run in runs:
        spots = list(csv.DictReader((out / f"spots-{run.run_id}.csv").open()))
        recorded = list(csv.DictReader((run.path / "spots.csv").open()))
        assert len(spots) == len(recorded) and spots[0]["run_id"] == run.run_id
    coex = list(csv.DictReader((out / "coexpression.csv").open()))
    assert {(c["zone"], c["other"]) for c in coex} >= {("CD63", "CD9"), ("CD63", "CD81")}
