"""Capture efficiency from the model's inputs or from a calibration file (which overrides it)."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from chipctl.analysis import calibration
from chipctl.analysis.calibration import (
    CaptureCalibration,
    Tolerances,
    ZoneCalibration,
    calibrate_zone,
    capture_factor,
    dump_calibration,
    load_calibration,
    model_rsd,
)
from chipctl.analysis.transport import CaptureModel, Channel, FlowSegment, SizeDistribution, Zone
from chipctl.config.sourcefile import SourceError

MODEL = CaptureModel(Channel(1000.0, 50.0), Zone(800.0, 250.0),
                     SizeDistribution.lognormal(90.0, 1.5))
SEGMENTS = [FlowSegment(2.0, 40.0), FlowSegment(5.0, 60.0)]

# The example in the module's docstring (so the documented file stays loadable), plus a zone.
DOCUMENTED = (calibration.__doc__ or "").split("```yaml\n")[1].split("```")[0]
GOOD = DOCUMENTED + "  CD9: {factor: 0.9, rsd: 0.07}\n"


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "capture.yaml"
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


def test_calibration_file_overrides_the_model(tmp_path: Path) -> None:
    cal = load_calibration(write(tmp_path, GOOD))
    assert cal.measured == "2026-03-02"
    model = capture_factor(MODEL, SEGMENTS, "CD63")
    calibrated = capture_factor(MODEL, SEGMENTS, "CD63", cal, "capture.yaml")
    assert calibrated.value == pytest.approx(0.82 * model.value)
    assert calibrated.rsd == 0.06
    assert "calibration capture.yaml" in calibrated.source and "liposomes" in calibrated.source
    assert "mass-transport model" in model.source
    # a zone the file does not name keeps the model
    assert capture_factor(MODEL, SEGMENTS, "CD81", cal).value == pytest.approx(model.value)


def test_efficiency_over_segments_is_volume_weighted() -> None:
    factor = capture_factor(MODEL, SEGMENTS, "CD63")
    expected = (MODEL.efficiency(2.0) * 40 + MODEL.efficiency(5.0) * 60) / 100
    assert factor.value == pytest.approx(expected)


def test_calibrate_zone_recovers_the_ratio_and_round_trips(tmp_path: Path) -> None:
    predicted = 2e9 * sum(MODEL.efficiency(s.flow_ul_min) * s.volume_ul * 1e-3 for s in SEGMENTS)
    zone = calibrate_zone(0.7 * predicted, 0.03, MODEL, SEGMENTS, 2e9, 0.04, detected=1200)
    assert zone.factor == pytest.approx(0.7)
    assert zone.rsd == pytest.approx(0.05)
    assert zone.flow_ul_min is None  # two flow rates
    cal = CaptureCalibration(reference_material="liposomes", reference_concentration_per_ml=2e9,
                             zones={"CD63": zone})
    again = load_calibration(write(tmp_path, dump_calibration(cal)))
    assert again == cal


def test_model_uncertainty_follows_the_power_laws() -> None:
    rsd = model_rsd(MODEL, [FlowSegment(2.0, 50.0)], Tolerances(height_um=2.0, size_rsd=0.05))
    assert rsd["channel height"] == pytest.approx(2 / 3 * 2 / 50, rel=0.15)  # eff ~ H^(-2/3)
    assert rsd["vesicle size"] == pytest.approx(2 / 3 * 0.05, rel=0.15)  # eff ~ D^(2/3) ~ d^(-2/3)
    assert rsd["zone width"] == pytest.approx(10 / 250, rel=0.01)  # eff ~ w
    assert rsd["model form"] == 0.025


@pytest.mark.parametrize(("text", "line", "message"), [
    ("kind: capture calibration\nreference_material: x\nreference_concentration_per_ml: 1e9\n"
     "zones:\n  CD63: {factor: -0.5, rsd: 0.1}\n", 5, "greater than 0"),
    ("kind: capture calibration\nreference_material: x\nreference_concentration_per_ml: 1e9\n"
     "zones: {}\n", 4, "at least 1"),
    ("kind: capture calibration\nreference_material: x\nreference_concentration_per_ml: 1e9\n"
     "colour: blue\nzones:\n  CD9: {factor: 1, rsd: 0.1}\n", 4, "colour"),
    ("kind: capture calibration\nreference_material: [unclosed\n", 3, "YAML syntax"),
])
def test_bad_calibration_files_name_file_and_line(tmp_path: Path, text: str, line: int,
                                                  message: str) -> None:
    path = write(tmp_path, text)
    with pytest.raises(SourceError) as info:
        load_calibration(path)
    assert f"{path}:{line}:" in str(info.value)
    assert message in str(info.value)


def test_no_sample_volume_is_refused() -> None:
    with pytest.raises(ValueError, match="no sample volume"):
        capture_factor(MODEL, [], "CD63")
    assert ZoneCalibration(factor=1.0, rsd=0.0).factor == 1.0


def test_the_size_uncertainty_is_what_was_entered_or_wide_when_nothing_was() -> None:
    from chipctl.analysis.provenance import SampleInfoError, size_rsd

    assert size_rsd({}) == 0.25  # 100 nm assumed: known to a quarter
    assert size_rsd({"size_median_nm": 90}) == 0.05  # NTA's typical
    assert size_rsd({"size_median_nm": 90, "size_median_rsd": "0.1"}) == 0.1
    with pytest.raises(SampleInfoError, match="size_median_rsd"):
        size_rsd({"size_median_nm": 90, "size_median_rsd": "wide"})
    wide = capture_factor(MODEL, SEGMENTS, "CD63", tol=Tolerances(size_rsd=0.25))
    assert wide.rsd > capture_factor(MODEL, SEGMENTS, "CD63").rsd
