"""Concentration and its 95 % interval: coverage over many synthetic draws whose truth is known."""

from __future__ import annotations

import math

import numpy as np
import pytest

from chipctl.analysis.uncertainty import Factor, FieldCounts, concentration, zone_total

SHARES = (0.12, 0.10, 0.08)  # three fields, upstream to downstream (flux-weighted)
AREAS = (0.04, 0.04, 0.04)  # mm^2 of zone inside each field
CONTROL_AREAS = (0.04, 0.04)


def draw(rng: np.random.Generator, c0: float, field_cv: float = 0.0, nonspecific: float = 50.0,
         detected: float = 0.7) -> tuple[float, FieldCounts, FieldCounts, Factor, Factor]:
    """One synthetic run: a 1:10 dilution of c0 /mL, 50 uL at a true capture efficiency of 2 %;
    the model's efficiency and the detection estimate are off by their stated uncertainty."""
    volume_true = 50e-3 * rng.lognormal(0, 0.01)
    captured = rng.poisson(c0 / 10 * volume_true * 0.02)
    per_field = rng.multinomial(captured, [*SHARES, 1 - sum(SHARES)])[:3].astype(float)
    if field_cv > 0:  # heterogeneity the share model does not know about
        per_field = rng.poisson(per_field * rng.gamma(1 / field_cv**2, field_cv**2, 3))
    background = rng.poisson(nonspecific * np.asarray(AREAS))
    counts = rng.binomial((per_field + background).astype(int), detected)
    control = rng.binomial(rng.poisson(nonspecific * np.asarray(CONTROL_AREAS)), detected)
    det = Factor("detection", detected * rng.lognormal(0, 0.04), 0.04)
    zone = FieldCounts.of(counts, SHARES, AREAS, det)
    ctrl = FieldCounts.of(control, (0.5, 0.5), CONTROL_AREAS, det)
    capture = Factor("capture efficiency", 0.02 * rng.lognormal(0, 0.05), 0.05)
    return c0, zone, ctrl, capture, Factor("volume", 50e-3, 0.01)


@pytest.mark.parametrize(("c0", "field_cv"), [(3e8, 0.0), (3e7, 0.0), (3e8, 0.15), (3e6, 0.0)])
def test_interval_covers_the_truth_95_percent_of_the_time(c0: float, field_cv: float) -> None:
    rng = np.random.default_rng(int(c0) % 1000 + int(field_cv * 100))
    hits, lows, trials = 0, [], 1500
    for _ in range(trials):
        truth, zone, ctrl, capture, volume = draw(rng, c0, field_cv)
        est = concentration(zone, capture, volume, dilution=10, control=ctrl)
        assert not est.upper_limit_only
        lows.append(est.ci95[0])
        hits += est.ci95[0] <= truth <= est.ci95[1]
    assert 0.90 <= hits / trials <= 0.98
    assert min(lows) > 0


def test_without_the_field_to_field_term_overdispersed_fields_undercover() -> None:
    # the check can fail: the same draws with the dispersion ignored miss the truth too often
    rng = np.random.default_rng(7)
    hits = 0
    for _ in range(600):
        truth, zone, ctrl, capture, volume = draw(rng, 3e8, field_cv=0.15)
        est = concentration(zone, capture, volume, dilution=10, control=ctrl)
        drop = est.budget.get("field-to-field", 0.0)
        sd = math.sqrt(max(est.log_sd**2 - math.log1p(drop**2), 0.0))
        hits += est.per_ml * math.exp(-1.96 * sd) <= truth <= est.per_ml * math.exp(1.96 * sd)
    assert hits / 600 < 0.85


def test_estimate_is_unbiased_over_draws() -> None:
    rng = np.random.default_rng(11)
    ratios = [concentration(z, cap, vol, 10, ctrl).per_ml / truth
              for truth, z, ctrl, cap, vol in (draw(rng, 3e8) for _ in range(800))]
    assert np.median(ratios) == pytest.approx(1.0, abs=0.02)


def test_dilution_multiplies_the_concentration() -> None:
    det = Factor("detection", 0.8, 0.03)
    zone = FieldCounts.of([400, 380, 350], SHARES, AREAS, det)
    cap, vol = Factor("capture efficiency", 0.02, 0.05), Factor("volume", 0.05, 0.01)
    neat = concentration(zone, cap, vol, dilution=1)
    diluted = concentration(zone, cap, vol, dilution=10)
    assert diluted.per_ml == pytest.approx(10 * neat.per_ml)
    assert diluted.ci95[0] == pytest.approx(10 * neat.ci95[0])
    # arithmetic: 1130 detected / 0.8 / 0.30 of the zone / 0.02 / 0.05 mL
    assert neat.per_ml == pytest.approx(1130 / 0.8 / 0.30 / 0.02 / 0.05)


def test_control_is_subtracted_per_imaged_area() -> None:
    det = Factor("detection", 1.0, 0.0)
    zone = FieldCounts.of([150, 150, 150], SHARES, AREAS, det)
    ctrl = FieldCounts.of([20, 20], (0.5, 0.5), CONTROL_AREAS, det)
    total = zone_total(zone, ctrl)
    assert total.nonspecific_imaged == pytest.approx(60.0)  # 500 /mm^2 x 0.12 mm^2
    assert total.estimate == pytest.approx((450 - 60) / 0.30)


def test_zone_no_higher_than_its_control_gives_an_upper_limit() -> None:
    det = Factor("detection", 0.9, 0.03)
    zone = FieldCounts.of([3, 1, 2], SHARES, AREAS, det)
    ctrl = FieldCounts.of([4, 3], (0.5, 0.5), CONTROL_AREAS, det)
    est = concentration(zone, Factor("c", 0.02, 0.05), Factor("v", 0.05, 0.01), 1, ctrl)
    assert est.upper_limit_only and est.per_ml == 0.0
    assert est.ci95[0] == 0.0 and est.ci95[1] > 0
    assert math.isinf(est.relative_width)


def test_budget_names_every_source() -> None:
    det = Factor("detection", 0.7, 0.05)
    zone = FieldCounts.of([500, 300, 420], SHARES, AREAS, det)  # over-dispersed
    ctrl = FieldCounts.of([10, 12], (0.5, 0.5), CONTROL_AREAS, det)
    est = concentration(zone, Factor("c", 0.02, 0.08), Factor("v", 0.05, 0.01), 10, ctrl)
    assert set(est.budget) >= {"counting", "field-to-field", "detection", "capture efficiency",
                               "volume", "control counting"}
    assert est.budget["capture efficiency"] == 0.08
    assert est.dof < 10  # the dispersion comes from three fields
    assert zone.dispersion() > 10


@pytest.mark.parametrize(("make", "message"), [
    (lambda: Factor("capture efficiency", 0.0, 0.1), "positive"),
    (lambda: Factor("detection", 0.5, -0.1), "finite number >= 0"),
    (lambda: FieldCounts.of([1, 2], [0.1], [0.1, 0.1], Factor("d", 1, 0)), "one count"),
])
def test_bad_terms_say_what_is_wrong(make, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        make()


def test_dilution_below_one_is_refused() -> None:
    zone = FieldCounts.of([10], [0.1], [0.1], Factor("d", 1, 0))
    with pytest.raises(ValueError, match="dilution"):
        concentration(zone, Factor("c", 0.02, 0.05), Factor("v", 0.05, 0.01), 0.1)
