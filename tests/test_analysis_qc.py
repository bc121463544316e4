"""QC flags: each fires on a synthetic bad case and stays quiet on a good one."""

from __future__ import annotations

import math

import numpy as np
import pytest

from benchmarks.analysis_truth import render, uniform_xy
from chipctl.analysis import qc
from chipctl.analysis.colocalization import FieldPair, colocalize, match
from chipctl.analysis.detection import DetectionEstimate
from chipctl.analysis.kinetics import fit_kinetics
from chipctl.analysis.transport import CaptureModel, Channel, SizeDistribution, Zone
from chipctl.analysis.uncertainty import Factor, FieldCounts, concentration
from chipctl.vision.focus import focus_metric

TIMES_S = np.arange(0, 41, 2) * 60.0


def detection(brightness: float = 0.95, crowding: float = 0.95, measured: bool = True
              ) -> DetectionEstimate:
    counted = brightness * crowding
    return DetectionEstimate(900, 190.0, 0.0, 900 / counted, counted, 0.03, brightness, crowding,
                             5.0, None, measured)


def test_near_the_limit_of_detection() -> None:
    assert qc.near_limit_of_detection(detection(0.95), "CD63") is None
    flag = qc.near_limit_of_detection(detection(0.55), "CD63 / AF555")
    assert flag is not None and flag.code == "near-lod" and "45 %" in flag.message
    unmeasured = qc.near_limit_of_detection(detection(measured=False), "isotype")
    assert unmeasured is not None and "lower bound" in unmeasured.message


def test_crowded_fields() -> None:
    assert qc.crowding(detection(crowding=0.9), "CD9") is None
    assert qc.crowding(detection(crowding=0.6), "CD9").code == "crowding"


def test_field_to_field_variation_beyond_poisson() -> None:
    rng = np.random.default_rng(1)
    det = Factor("detection", 0.9, 0.02)
    shares = (0.1, 0.1, 0.1, 0.1)
    alarms = sum(qc.field_dispersion(FieldCounts.of(rng.poisson(800, 4), shares, shares, det),
                                     "CD63") is not None for _ in range(300))
    assert alarms <= 9  # about 1 % false alarms at alpha = 0.01
    uneven = FieldCounts.of([800, 620, 950, 700], shares, shares, det)
    flag = qc.field_dispersion(uneven, "CD63")
    assert flag is not None and flag.value > 5 * flag.limit


def test_bleaching_between_frames() -> None:
    rng = np.random.default_rng(2)
    steady = [rng.lognormal(6, 0.5, 300) for _ in range(5)]
    assert qc.bleaching(steady, "CD9 / AF488") is None
    fading = [rng.lognormal(6, 0.5, 300) * 0.94**k for k in range(5)]
    flag = qc.bleaching(fading, "CD9 / AF488")
    assert flag is not None and flag.value == pytest.approx(1 - 0.94**4, abs=0.06)


def test_camera_saturation() -> None:
    assert qc.camera_saturation(2, 1000, "CD81") is None
    assert qc.camera_saturation(40, 1000, "CD81").code == "camera-saturation"


def test_capture_saturation_and_kinetics_slope() -> None:
    rng = np.random.default_rng(3)
    t = TIMES_S / 60
    filling = 12 + np.cumsum(rng.poisson(np.diff(2000 * (1 - np.exp(-0.1 * t)), prepend=0)))
    fit = fit_kinetics(TIMES_S, filling)
    assert qc.capture_saturation(fit, "CD63").code == "capture-saturation"
    linear = fit_kinetics(TIMES_S, 12 + np.cumsum(rng.poisson(np.full(21, 40.0))))
    assert qc.capture_saturation(linear, "CD63") is None
    assert qc.kinetics(linear, "CD63") is None
    fading = fit_kinetics(TIMES_S, 2000 * np.exp(-0.01 * t) + rng.normal(0, 10, 21))
    assert "negative slope" in qc.kinetics(fading, "CD63").message


def test_out_of_focus_frames() -> None:
    rng = np.random.default_rng(4)
    xy, photons = uniform_xy(300, rng), np.full(300, 1500.0)
    sharp = render(xy, photons, rng, sigma=1.3).image
    blurred = render(xy, photons, rng, sigma=3.0).image
    scores = {f"field {k}": focus_metric(sharp) for k in range(3)} | {
        "field 3": focus_metric(blurred)}
    flags = qc.out_of_focus(scores, "CD63 / AF555")
    assert [f.subject for f in flags] == ["CD63 / AF555 / field 3"]


def pairs(rng: np.random.Generator, bleed: bool) -> tuple[np.ndarray, np.ndarray, object]:
    """Matched photons of two channels: a constant 5 % of the reference (bleed-through), or an
    independently labelled second marker on 60 % of the vesicles."""
    xy = uniform_xy(800, rng)
    ref_photons = rng.lognormal(math.log(3000), 0.6, 800)
    if bleed:
        keep = np.ones(800, bool)
        other_photons = 0.05 * ref_photons * rng.lognormal(0, 0.05, 800)
    else:
        keep = rng.random(800) < 0.6
        other_photons = rng.poisson(20 * ref_photons / 3000) * 40.0 + 1.0
    field = FieldPair(xy, xy[keep] + 0.01, (512, 512))
    result = colocalize([field])
    i, j = match(xy, field.other_xy, result.registration.radius_px)
    return ref_photons[i], other_photons[keep][j], result


def test_bleed_through_signature() -> None:
    rng = np.random.default_rng(5)
    ref, other, result = pairs(rng, bleed=True)
    flag = qc.bleed_through(ref, other, result, "CD63 -> CD81")
    assert flag is not None and "5.0 %" in flag.message
    ref, other, result = pairs(rng, bleed=False)
    assert qc.bleed_through(ref, other, result, "CD63 -> CD81") is None


def test_interval_wider_than_the_estimate() -> None:
    shares = (0.1, 0.1, 0.1)
    tight = FieldCounts.of([900, 880, 910], shares, shares, Factor("detection", 0.9, 0.02))
    loose = FieldCounts.of([3, 1, 2], shares, shares, Factor("detection", 0.9, 0.02))
    cap, vol = Factor("capture efficiency", 0.02, 0.05), Factor("volume", 0.05, 0.01)
    assert qc.wide_interval(concentration(tight, cap, vol), "CD9") is None
    flag = qc.wide_interval(concentration(loose, cap, vol), "CD9")
    assert flag is not None and "counting" in flag.message


def test_transport_model_outside_its_checked_range() -> None:
    model = CaptureModel(Channel(1000.0, 50.0), Zone(800.0, 250.0), SizeDistribution.single(90))
    assert qc.transport_validity(model.regime(2.0), "CD9") is None
    assert qc.transport_validity(model.regime(0.01), "CD9").code == "transport-model"
