"""Co-localization: random point sets and rendered two-channel fields with a known co-positive
fraction and a known channel shift."""

from __future__ import annotations

import math

import numpy as np
import pytest

from benchmarks.analysis_truth import E_PER_ADU, count, render, uniform_xy
from chipctl.analysis.colocalization import FieldPair, colocalize, match, register
from chipctl.analysis.detection import (
    FieldNoise,
    detection_factor,
    estimate_detection,
    photons_from_amplitude,
)
from chipctl.analysis.uncertainty import Factor

SHIFT = np.array([1.7, -0.8])
SHAPE = (512, 512)


def field(rng: np.random.Generator, n_ref: int = 800, positive: float = 0.5, n_only: int = 600,
          sigma: float = 0.4, detect: float = 1.0, broad: float = 0.0) -> FieldPair:
    """Reference vesicles, a share ``positive`` of them seen in the other channel too (shifted,
    each position with its own localisation error), plus vesicles seen only there."""
    ref = uniform_xy(n_ref, rng)
    partner = (rng.random(n_ref) < positive) & (rng.random(n_ref) < detect)
    spread = np.where(rng.random(n_ref) < broad, 3 * sigma, sigma)[:, None]
    other = np.vstack([ref[partner] + SHIFT + rng.standard_normal((partner.sum(), 2))
                       * spread[partner], uniform_xy(n_only, rng)])
    inside = (other >= 0).all(axis=1) & (other[:, 0] < SHAPE[1]) & (other[:, 1] < SHAPE[0])
    return FieldPair(ref + rng.standard_normal(ref.shape) * spread, other[inside], SHAPE)


def test_registration_recovers_shift_and_spread() -> None:
    rng = np.random.default_rng(1)
    fp = field(rng)
    reg = register(fp.ref_xy, fp.other_xy, fp.area_px)
    assert reg.measured
    assert reg.shift_px == pytest.approx(tuple(SHIFT), abs=0.05)
    assert reg.sigma_px == pytest.approx(0.4 * math.sqrt(2), rel=0.1)
    assert reg.capture > 0.99


@pytest.mark.parametrize(("n_ref", "n_only", "trials"), [(800, 600, 200), (2000, 2000, 120)])
def test_chance_corrected_fraction_covers_the_truth(n_ref: int, n_only: int, trials: int) -> None:
    rng = np.random.default_rng(n_ref)
    hits, fractions, raw = 0, [], []
    for _ in range(trials):
        result = colocalize([field(rng, n_ref, n_only=n_only) for _ in range(3)])
        hits += result.ci95[0] <= 0.5 <= result.ci95[1]
        fractions.append(result.fraction)
        raw.append(result.raw_fraction)
    assert 0.90 <= hits / trials <= 0.98
    assert np.median(fractions) == pytest.approx(0.5, abs=0.005)
    assert np.median(raw) > 0.51  # chance pairs inflate the uncorrected fraction


def test_other_channels_detection_efficiency_is_corrected() -> None:
    rng = np.random.default_rng(3)
    fractions = [colocalize([field(rng, detect=0.8) for _ in range(3)],
                            Factor("detection", 0.8, 0.02)).fraction for _ in range(40)]
    assert np.median(fractions) == pytest.approx(0.5, abs=0.01)


def test_heavy_tailed_localisation_is_counted_not_assumed() -> None:
    # a fifth of the vesicles localised three times worse: the Gaussian core alone says 99.8 %
    rng = np.random.default_rng(4)
    fractions = [colocalize([field(rng, sigma=0.3, broad=0.2) for _ in range(3)]).fraction
                 for _ in range(20)]
    assert np.median(fractions) == pytest.approx(0.5, abs=0.015)


def test_matching_is_one_to_one_with_least_total_distance() -> None:
    # closest-first would pair (1, 0)-(0.6, 0) and leave (0, 0) without a partner
    ref = np.array([[0.0, 0.0], [1.0, 0.0]])
    other = np.array([[0.6, 0.0], [1.9, 0.0]])
    i, j = match(ref, other, 1.5)
    assert sorted(zip(i.tolist(), j.tolist(), strict=True)) == [(0, 0), (1, 1)]
    assert match(ref, np.empty((0, 2)), 1.5)[0].size == 0


def test_too_few_spots_fall_back_and_say_so() -> None:
    rng = np.random.default_rng(5)
    reg = register(uniform_xy(5, rng), uniform_xy(5, rng), 512.0 * 512)
    assert not reg.measured and reg.shift_px == (0.0, 0.0)


def test_rendered_two_channel_fields_counted_by_the_counter() -> None:
    # 60 % of the reference channel's vesicles carry the second label; the second channel is
    # shifted by (1.7, -0.8) px and its labels are dimmer, so it misses some of them
    rng = np.random.default_rng(6)
    fields, photons_b, index_b, noise_b = [], [], [], []
    for k in range(3):
        xy = uniform_xy(700, rng)
        positive = rng.random(700) < 0.6
        only = uniform_xy(400, rng)
        xy_b = np.vstack([xy[positive] + SHIFT, only])
        res_a = count(render(xy, rng.lognormal(math.log(1500), 0.4, 700), rng))
        res_b = count(render(xy_b, rng.lognormal(math.log(450), 0.5, len(xy_b)), rng))
        fields.append(FieldPair(res_a.xy, res_b.xy, SHAPE))
        p = photons_from_amplitude(res_b.spots["amplitude"], E_PER_ADU, 1.3)
        photons_b.append(p)
        index_b.append(np.full(p.size, k))
        noise_b.append(FieldNoise.from_spots(p, res_b.spots["snr"], res_b.threshold, 512 * 512,
                                             1.3))
    det_b = estimate_detection(np.concatenate(photons_b), np.concatenate(index_b), noise_b, 1.3)
    result = colocalize(fields, detection_factor(det_b))
    assert result.registration.shift_px == pytest.approx(tuple(SHIFT), abs=0.1)
    assert result.fraction == pytest.approx(0.6, abs=0.05)
    assert result.ci95[0] <= 0.6 <= result.ci95[1]
    assert abs(result.raw_fraction - 0.6) > abs(result.fraction - 0.6)
