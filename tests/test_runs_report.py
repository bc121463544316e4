"""Reports and exports of a synthetic tetraspanin-panel run whose answer is known: numbers that
agree with the counts table, each zone's concentration (detected and estimated, with every
correction) holding the truth in its interval, the sample's provenance, CSV and Parquet."""

from __future__ import annotations

import csv
import json
import re
import statistics
from collections import defaultdict
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest

from chipctl.analysis.numbers import number
from chipctl.analysis.report import write_report
from chipctl.cli.main import main
from chipctl.runs import RunFolder
from tests.runs_synth import FRAME_PX, LABELS, MARKERS, PIXEL_UM
from tests.test_runs_store import recorded_as

TRUTH_PER_ML = 4e6  # record_run's sample


@pytest.fixture(scope="module")
def panel(tmp_path_factory: pytest.TempPathFactory, recorded_panel: Any) -> RunFolder:
    """The session's synthetic panel run, entered with this sample's provenance."""
    return recorded_as(recorded_panel[0].folder, tmp_path_factory.mktemp("panel") / "runs",
                       source="MSC conditioned medium",
                       preprocessing="300 x g 10 min 4 C, 2,000 x g 20 min, 10,000 x g "
                       "30 min 4 C", storage="-80 C, 1 freeze-thaw",
                       protein_ug_per_ml="50", size_median_nm="100")


@pytest.fixture(scope="module")
def report(panel: RunFolder) -> tuple[dict[str, Any], str]:
    path = write_report(panel)
    return json.loads(path.with_suffix(".json").read_text()), path.read_text()


def test_report_numbers_agree_with_counts_csv(panel: RunFolder,
                                              report: tuple[dict[str, Any], str]) -> None:
    data, html = report
    rows = list(csv.DictReader((panel.path / "counts.csv").open()))
    by_key: dict[tuple[str, str], list[int]] = defaultdict(list)
    for row in rows:
        by_key[(row["zone"], row["channel"])].append(int(row["count"]))
    area_mm2 = (FRAME_PX * PIXEL_UM / 1000) ** 2
    assert len(data["zones"]) == len(by_key) == 12
    for zone in data["zones"]:
        counts = by_key[(zone["zone"], zone["channel"])]
        assert zone["fields"] == len(counts)
        assert zone["mean_count"] == pytest.approx(statistics.fmean(counts))
        assert zone["density_per_mm2"] == pytest.approx(statistics.fmean(counts) / area_mm2)
        assert number(zone["mean_count"]) in html
    for result in data["results"]:
        assert result["detected"] == sum(by_key[(result["zone"], result["channel"])])
    assert "data:image/png;base64," in html and "<script" not in html
    for table in re.findall(r"<table>(.*?)</table>", html):
        widths = {row.count("<td") + row.count("<th") for row in table.split("<tr>")[1:]}
        assert len(widths) == 1, f"a table whose rows differ in width: {table[:200]}"


def test_each_zone_is_read_in_its_label_channel_and_holds_the_truth(
        report: tuple[dict[str, Any], str]) -> None:
    data, html = report
    results = {r["zone"]: r for r in data["results"]}
    assert set(results) == {"CD9", "CD63", "CD81"} and not data["skipped"]
    for zone, r in results.items():
        assert r["channel"] == LABELS[zone], "the protocol's stain step says which dye"
        truth = TRUTH_PER_ML * MARKERS[zone]
        assert r["ci95"][0] < truth < r["ci95"][1], (zone, r["per_ml"], r["ci95"], truth)
        assert 0 < r["ci95"][0] < r["per_ml"] < r["ci95"][1]
        assert r["estimated_in_view"] > r["detected"], "dim vesicles below the limit are added"
        assert {"counting", "detection", "capture efficiency", "volume"} <= set(r["budget"])
        assert r["method"]["capture efficiency"]["source"].startswith("mass-transport model")
        assert r["method"]["label"]["source"].startswith("protocol stain step 3")
    assert data["headline"]["zone"] == "CD63"
    ratio = data["sample"]["particle_protein_ratio"]
    assert ratio["per_ug"] == pytest.approx(data["headline"]["per_ml"] / 50)
    assert ratio["ci95_low"] < ratio["per_ug"] < ratio["ci95_high"]
    results_at, qc_at, method_at = (html.index(h) for h in ("<h2>Results", "<h2>Quality control",
                                                            "<h2>Method"))
    assert results_at < qc_at < method_at < html.index("<h2>Record")
    text = re.sub(r"base64,[^']*", "", html)
    assert not re.search(r"\de[+-]\d", text) and "{sample}" not in text


def test_report_lists_the_sample_provenance_and_the_fields(
        report: tuple[dict[str, Any], str]) -> None:
    data, html = report
    sample = data["sample"]
    items = {m["item"].split(" (")[0]: m["value"] for m in sample["misev"]}
    assert items["EV source"] == "MSC conditioned medium"
    assert items["Separation / concentration method"] == "not reported"
    spins = [(p["g_force"], p["minutes"], p["temperature_c"]) for p in sample["preclearing"]]
    assert spins == [(300.0, 10.0, 4.0), (2000.0, 20.0, None), (10000.0, 30.0, 4.0)]
    assert data["imagery"]["frames"] == 48 and len(data["imagery"]["qc"]) == 48
    assert set(data["imagery"]["photons"]) == {f"{m} ({d})" for m, d in LABELS.items()}
    assert html.count("<figure") == 48, "a thumbnail of each field in each channel"


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
    assert "result     CD63 CD63+ (AF555): " in shown and " per mL (95 % " in shown
    assert main(["runs", "--runs-dir", runs, "report", panel.run_id]) == 0
    assert (panel.path / "report.html").is_file()
    assert main(["runs", "--runs-dir", runs, "show", "no-such-run"]) == 2
    assert "no run 'no-such-run'" in capsys.readouterr().err
