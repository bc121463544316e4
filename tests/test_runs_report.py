"""Reports and exports of a (synthetic) tetraspanin-panel run: numbers that agree with the
counts table, a concentration estimate within its uncertainty, CSV and Parquet."""

from __future__ import annotations

import csv
import json
import re
import statistics
from collections import defaultdict
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from chipctl.analysis.report import write_report
from chipctl.cli.main import main
from chipctl.runs import RunFolder
from tests.runs_synth import FRAME_PX, MARKERS, PIXEL_UM
from tests.test_runs_store import record_run


@pytest.fixture
def panel(tmp_path: Path) -> RunFolder:
    recorder, _ = record_run(tmp_path, source="MSC conditioned medium",
                             preprocessing="300 x g 10 min, 2,000 x g 10 min, 10,000 x g 30 min",
                             storage="-80 C, 1 freeze-thaw", protein_ug_per_ml="50")
    return RunFolder.open(recorder.folder)


def test_report_numbers_agree_with_counts_csv(panel: RunFolder) -> None:
    html_path = write_report(panel)
    data = json.loads(html_path.with_suffix(".json").read_text())
    rows = list(csv.DictReader((panel.path / "counts.csv").open()))
    by_key: dict[tuple[str, str], list[int]] = defaultdict(list)
    for row in rows:
        by_key[(row["zone"], row["channel"])].append(int(row["count"]))
    area_mm2 = (FRAME_PX * PIXEL_UM / 1000) ** 2
    assert len(data["zones"]) == len(by_key) == 12
    html = html_path.read_text()
    for zone in data["zones"]:
        counts = by_key[(zone["zone"], zone["channel"])]
        assert zone["fields"] == len(counts)
        assert zone["mean_count"] == pytest.approx(statistics.fmean(counts))
        assert zone["cv"] == pytest.approx(statistics.stdev(counts) / statistics.fmean(counts))
        assert zone["density_per_mm2"] == pytest.approx(statistics.fmean(counts) / area_mm2)
        assert f"{zone['mean_count']:.3g}" in html
        if zone["zone"] != "isotype":
            iso = statistics.fmean(by_key[("isotype", zone["channel"])]) / area_mm2
            assert zone["subtracted_density_per_mm2"] == pytest.approx(
                zone["density_per_mm2"] - iso)
    assert "data:image/png;base64," in html and "<script" not in html
    for table in re.findall(r"<table>(.*?)</table>", html):
        widths = {row.count("<td") + row.count("<th") for row in table.split("<tr>")[1:]}
        assert len(widths) == 1, f"a table whose rows differ in width: {table[:200]}"


def test_concentration_lands_within_its_uncertainty(panel: RunFolder) -> None:
    data = json.loads(write_report(panel).with_suffix(".json").read_text())
    estimates = {c["zone"]: c for c in data["concentration"]}
    assert set(estimates) == {"CD9", "CD63", "CD81"}
    truth = 2e6  # SyntheticRun's sample
    for zone, est in estimates.items():
        assert est["sample_volume_ul"] == pytest.approx(40)
        assert est["sd_per_ml"] > 0
        assert abs(est["concentration_per_ml"] - truth * MARKERS[zone]) < 2 * est["sd_per_ml"]
        assert est["sd_per_ml"] < 0.3 * est["concentration_per_ml"], "an informative estimate"
    assert data["headline"]["zone"] == "CD63"
    assert data["particle_protein_ratio_per_ug"] == pytest.approx(
        data["headline"]["concentration_per_ml"] / 50)


def test_report_lists_misev_items_and_what_it_could_not_show(panel: RunFolder) -> None:
    data = json.loads(write_report(panel).with_suffix(".json").read_text())
    items = {m["item"].split(" (")[0]: m["value"] for m in data["misev"]}
    assert items["EV source"] == "MSC conditioned medium"
    assert "10,000 x g" in items["Collection and pre-processing"]
    assert items["Separation / concentration method"] == "not reported"
    assert data["imagery"]["frames"] == 48
    assert len(data["imagery"]["qc"]) == 48
    assert all(q["saturated_fraction"] == 0 for q in data["imagery"]["qc"])


def test_export_csv_and_parquet(panel: RunFolder, tmp_path: Path,
                                capsys: pytest.CaptureFixture[str]) -> None:
    runs = str(panel.path.parent)
    out_pq, out_csv = tmp_path / "c.parquet", tmp_path / "c.csv"
    assert main(["runs", "--runs-dir", runs, "export", panel.run_id, "--format", "parquet",
                 "--out", str(out_pq)]) == 0
    assert main(["runs", "--runs-dir", runs, "export", "last", "--out", str(out_csv)]) == 0
    table = pq.read_table(out_pq).to_pylist()
    rows = list(csv.DictReader(out_csv.open()))
    assert len(table) == len(rows) == 48
    assert [t["count"] for t in table] == [int(r["count"]) for r in rows]
    assert table[0]["run_id"] == panel.run_id and table[0]["true_count"] is not None
    assert "48 rows" in capsys.readouterr().out


def test_runs_cli_list_show_report(panel: RunFolder, capsys: pytest.CaptureFixture[str]) -> None:
    runs = str(panel.path.parent)
    assert main(["runs", "--runs-dir", runs, "list", "--sample", "MSC"]) == 0
    assert panel.run_id in capsys.readouterr().out
    assert main(["runs", "--runs-dir", runs, "list", "--protocol", "quickstart"]) == 0
    assert "no runs" in capsys.readouterr().out
    assert main(["runs", "--runs-dir", runs, "show", panel.run_id[:15]]) == 0
    shown = capsys.readouterr().out
    assert "completed" in shown and "48 counted frames, 48 frames kept" in shown
    assert main(["runs", "--runs-dir", runs, "report", panel.run_id]) == 0
    assert (panel.path / "report.html").is_file()
    assert main(["runs", "--runs-dir", runs, "show", "no-such-run"]) == 2
    assert "no run 'no-such-run'" in capsys.readouterr().err
