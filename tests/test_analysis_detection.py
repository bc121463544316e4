"""Detection efficiency from the data: the noise model against the counter, the truncated
brightness fit against known log-normals (with interval coverage), crowding against the counter
at high density, and the whole correction on rendered frames whose vesicles are known."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import optimize, special
from scipy.spatial import cKDTree

from benchmarks.analysis_truth import E_PER_ADU, count, render, uniform_xy
from chipctl.analysis.brightness import peak_model
from chipctl.analysis.crowding import (
    MERGE_RADIUS_PER_SIGMA_F,
    MERGE_RADIUS_RSD,
    Z_GRID,
    merge_radius_px,
    solve_crowding,
)
from chipctl.analysis.detection import (
    CUT_MARGIN,
    FieldNoise,
    SpotNoise,
    detection_factor,
    estimate_detection,
    photons_from_amplitude,
)

NOISE = SpotNoise(1.3, background_e=100.0, read_noise_e=1.6)


def counted_spots(frames: list, sigma: float = 1.3) -> tuple[np.ndarray, np.ndarray, list]:
    """Photons, field index and field noise of the counter's spots on rendered frames."""
    photons, index, fields = [], [], []
    for k, frame in enumerate(frames):
        res = count(frame, sigma)
        p = photons_from_amplitude(res.spots["amplitude"], E_PER_ADU, sigma)
        photons.append(p)
        index.append(np.full(p.size, k))
        fields.append(FieldNoise.from_spots(p, res.spots["snr"], res.threshold,
                                            frame.image.size, sigma))
    return np.concatenate(photons), np.concatenate(index), fields


def observe(x: np.ndarray, rng: np.random.Generator, noise: float = NOISE.sd_photons
            ) -> np.ndarray:
    """The counter's photon estimate of vesicles of x photons, drawn from the peak model."""
    mean, sd = peak_model(1.3).moments(x, np.full(x.size, noise), NOISE.shot_factor)
    return mean + sd * rng.standard_normal(x.size)


def population_fraction(median: float, sd_log: float, cut: float, noise: float) -> float:
    """P(estimate > cut) for a log-normal population seen through the peak model."""
    z = np.linspace(-8, 8, 4001)
    w = np.exp(-z * z / 2)
    x = median * np.exp(sd_log * z)
    mean, sd = peak_model(1.3).moments(x, np.full(x.size, noise), NOISE.shot_factor)
    return float(np.sum(w * special.ndtr((mean - cut) / sd)) / np.sum(w))


def test_noise_model_matches_what_the_counter_measures() -> None:
    rng = np.random.default_rng(1)
    frame = render(uniform_xy(200, rng, border=6), rng.lognormal(math.log(2000), 0.3, 200), rng)
    res = count(frame)
    p = photons_from_amplitude(res.spots["amplitude"], E_PER_ADU, 1.3)
    assert float(np.median(p / res.spots["snr"])) == pytest.approx(NOISE.sd_photons, rel=0.08)
    # photons back from the amplitude: bright spots come out at their true brightness
    d, j = cKDTree(res.xy).query(frame.xy, distance_upper_bound=1.5)
    found = np.isfinite(d)
    assert found.mean() > 0.97
    assert float(np.median(p[j[found]] / frame.photons[found])) == pytest.approx(1.0, abs=0.03)


def peak_model_spots(seed: int, frames: int = 16, per_frame: int = 200
                     ) -> tuple[np.ndarray, ...]:
    """True photons, the counter's photons for each (-inf: not found), the detection cut, the
    noise of its field and the photons its background carried, for `frames` rendered frames
    of `per_frame` vesicles."""
    rng = np.random.default_rng(seed)
    truth, seen, cuts, noises, carried = [], [], [], [], []
    for _ in range(frames):
        frame = render(uniform_xy(per_frame, rng, border=8), rng.uniform(100, 500, per_frame),
                       rng)
        res = count(frame)
        p = photons_from_amplitude(res.spots["amplitude"], E_PER_ADU, 1.3)
        field = FieldNoise.from_spots(p, res.spots["snr"], res.threshold, frame.image.size, 1.3)
        d, j = cKDTree(res.xy).query(frame.xy, distance_upper_bound=1.5)
        truth.append(frame.photons)
        seen.append(np.where(np.isfinite(d), p[np.minimum(j, res.count - 1)], -np.inf))
        cuts.append(np.full(per_frame, field.limit_photons + CUT_MARGIN * field.noise_photons))
        noises.append(np.full(per_frame, field.noise_photons))
        carried.append(np.full(per_frame, field.carried_photons))
    return tuple(np.concatenate(a) for a in (truth, seen, cuts, noises, carried))


def test_peak_model_matches_the_counters_estimate() -> None:
    # bright spots come out 2 % low (the peak falls between pixels); near the threshold the
    # local maximum of a noisy peak comes out high, and every spot of a field low by the light
    # its background carries: the model predicts all three. A statistical test: vesicles of
    # 4 seeds pooled (~1600 per band); the observed fraction differs from the model's
    # expectation by its sampling error (a sum of Bernoulli draws: sd from the predicted
    # probabilities), allowed at 3 sd. (The model's inputs of the old code, photons / SNR as
    # the noise and no carried light, put it 0.02-0.04 high here.)
    x, y, cut, noise, carried = (np.concatenate(a) for a in zip(
        *(peak_model_spots(seed) for seed in (8, 9, 10, 11)), strict=True))
    model = peak_model(1.3)
    a = 200 / 512**2 * math.pi * merge_radius_px(1.3) ** 2  # a brighter neighbour hides it
    for lo, hi in ((100, 150), (150, 200), (200, 250)):
        band = (x >= lo) & (x < hi)
        m, sd = model.moments(x[band], noise[band], NOISE.shot_factor)
        survive = np.exp(-a * (500 - x[band]) / 400)
        p = special.ndtr((m - carried[band] - cut[band]) / sd) * survive
        predicted = float(np.mean(p))
        sampling_sd = math.sqrt(float(np.sum(p * (1 - p)))) / p.size
        assert sampling_sd < 0.012  # enough vesicles that the sampling error stays small
        unbiased = float(np.mean(special.ndtr((x[band] - cut[band]) / sd) * survive))
        observed = float(np.mean(y[band] > cut[band]))
        assert observed == pytest.approx(predicted, abs=3 * sampling_sd), (lo, hi)
        assert predicted > unbiased
    bright = peak_model(1.3).moments(np.array([2000.0]), np.array([50.0]), 0.0)[0][0] / 2000
    assert bright == pytest.approx(0.977, abs=0.003)  # as the counter's photons (test above)


def test_crowding_inverts_the_matern_law_when_all_are_detected() -> None:
    for a in (0.05, 0.3, 1.0):
        assert solve_crowding(-math.expm1(-a), np.ones_like(Z_GRID)) == pytest.approx(a, rel=1e-3)
    half = np.where(Z_GRID > 0, 1.0, 0.0)  # half the population is too dim to count
    assert solve_crowding(0.1, half) > solve_crowding(0.1, np.ones_like(Z_GRID))


def test_half_the_vesicles_at_the_limit_of_detection_are_counted() -> None:
    rng = np.random.default_rng(2)
    seen, lods = [], []
    for _ in range(6):
        xy = uniform_xy(400, rng, border=8)
        photons = rng.uniform(0.5, 1.6, 400) * NOISE.limit_photons(3.8)
        res = count(render(xy, photons, rng))
        lods.append(NOISE.limit_photons(res.threshold))
        d, _ = cKDTree(res.xy).query(xy, distance_upper_bound=1.5)
        seen.append(np.column_stack([photons, np.isfinite(d)]))
    s = np.concatenate(seen)
    near = np.abs(s[:, 0] / np.mean(lods) - 1) < 0.1
    assert 0.35 < s[near, 1].mean() < 0.65
    assert s[s[:, 0] < 0.7 * np.mean(lods), 1].mean() < 0.15
    assert s[s[:, 0] > 1.4 * np.mean(lods), 1].mean() > 0.9


def test_truncated_fit_recovers_the_fraction_with_95_percent_coverage() -> None:
    rng = np.random.default_rng(3)
    s_n, limit = NOISE.sd_photons, NOISE.limit_photons(3.7)
    cut = limit + CUT_MARGIN * s_n
    field = [FieldNoise(limit, s_n, 1e12)]  # no crowding
    hits, trials, ratios = 0, 150, []
    for k in range(trials):
        median, sd_log = (250.0, 0.5) if k % 2 else (400.0, 0.7)
        truth = population_fraction(median, sd_log, limit, s_n)
        y = observe(rng.lognormal(math.log(median), sd_log, 500), rng)
        y = y[y > limit]  # what a clean hard-threshold counter would keep
        est = estimate_detection(y, np.zeros(y.size, int), field, 1.3)
        # the estimate is of the expected fraction of the population above the limit
        hits += abs(math.log(est.counted_fraction / truth)) < 1.96 * est.counted_fraction_rsd
        ratios.append(est.counted_fraction / truth)
    assert 0.90 <= hits / trials <= 0.98
    assert np.median(ratios) == pytest.approx(1.0, abs=0.03)
    assert population_fraction(250.0, 0.5, cut, s_n) < 0.8  # the fit must extrapolate


@pytest.mark.parametrize("sigma", [1.3, 0.9])
def test_merge_radius_of_the_counter(sigma: float) -> None:
    # bright vesicles at densities where merging matters; solve the Matern II law for r_m
    rng = np.random.default_rng(4)
    radii = []
    for n in (2000, 4000):
        res = count(render(uniform_xy(n, rng), rng.lognormal(math.log(1500), 0.5, n), rng,
                           sigma=sigma), sigma)
        rho, rho_obs = n / 512**2, res.count / 512**2
        radii.append(optimize.brentq(
            lambda r, rho=rho, rho_obs=rho_obs: -np.expm1(-rho * math.pi * r * r)
            / (math.pi * r * r) - rho_obs, 0.5, 30))
    sigma_f = math.sqrt(2 * (sigma**2 + 1 / 12))
    # the counter splits bright pairs closer than dim ones: bright vesicles merge within the
    # model's radius, and not far inside it (its stated uncertainty)
    measured = np.mean(radii) / sigma_f
    assert measured > (1 - 2 * MERGE_RADIUS_RSD) * MERGE_RADIUS_PER_SIGMA_F
    assert measured <= 1.02 * MERGE_RADIUS_PER_SIGMA_F
    assert merge_radius_px(sigma) == pytest.approx(MERGE_RADIUS_PER_SIGMA_F * sigma_f)


@pytest.mark.parametrize(("median", "per_frame", "seeds"), [(300.0, 300, 5), (1500.0, 2000, 2),
                                                          (600.0, 2000, 2)])
def test_estimated_total_recovers_the_vesicles_on_rendered_frames(median: float, per_frame: int,
                                                                  seeds: int) -> None:
    # dim (a fifth below the limit) and crowded (a quarter merged) populations, 4 fields each
    ratios, raw, z = [], [], []
    for seed in range(seeds):
        rng = np.random.default_rng(int(median) + per_frame + seed)
        frames = [render(uniform_xy(per_frame, rng),
                         rng.lognormal(math.log(median), 0.5, per_frame), rng) for _ in range(4)]
        photons, index, fields = counted_spots(frames)
        est = estimate_detection(photons, index, fields, 1.3)
        assert est.measured and est.detected == photons.size
        truth = 4 * per_frame
        ratios.append(est.estimated_total / truth)
        raw.append(est.detected / truth)
        z.append(math.log(ratios[-1]) / est.counted_fraction_rsd)
    assert max(raw) < 0.93  # the correction is needed ...
    assert np.median(ratios) == pytest.approx(1.0, abs=0.04)  # ... and it holds
    assert max(abs(v) for v in z) < 3.0
    if per_frame >= 2000:
        assert est.crowding_fraction < 0.93  # the counter splits most touching pairs
    else:
        assert est.brightness_fraction < 0.9


def test_floor_counts_only_vesicles_brighter_than_it() -> None:
    rng = np.random.default_rng(5)
    s_n, limit = NOISE.sd_photons, NOISE.limit_photons(3.7)
    y = observe(rng.lognormal(math.log(500), 0.5, 4000), rng)
    y = y[y > limit]
    field = [FieldNoise(limit, s_n, 1e12)]
    whole = estimate_detection(y, np.zeros(y.size, int), field, 1.3)
    half = estimate_detection(y, np.zeros(y.size, int), field, 1.3, floor_photons=500.0)
    assert whole.estimated_total == pytest.approx(4000, rel=0.05)
    assert half.estimated_total == pytest.approx(2000, rel=0.06)
    assert "above 500 photons" in half.describe() and "detected" in half.describe()
    assert "extrapolated below the limit" in whole.describe()
    factor = detection_factor(whole)
    assert factor.value == whole.counted_fraction and factor.rsd == whole.counted_fraction_rsd


def test_too_few_spots_correct_crowding_only_and_say_so() -> None:
    field = [FieldNoise(180.0, 48.0, 512.0 * 512)]
    est = estimate_detection(np.full(20, 400.0), np.zeros(20, int), field, 1.3)
    assert not est.measured and est.brightness is None
    assert est.brightness_fraction == 1.0
    assert est.detected == 20 and est.estimated_total >= 20


def test_a_supplied_pooled_fit_is_used_for_a_small_zone() -> None:
    rng = np.random.default_rng(6)
    s_n, limit = NOISE.sd_photons, NOISE.limit_photons(3.7)
    field = [FieldNoise(limit, s_n, 1e12)]
    y = observe(rng.lognormal(math.log(300), 0.5, 5000), rng)
    y = y[y > limit]
    pooled = estimate_detection(y, np.zeros(y.size, int), field, 1.3).brightness
    small = estimate_detection(y[:30], np.zeros(30, int), field, 1.3, brightness=pooled)
    assert small.measured and small.brightness is pooled
    assert small.counted_fraction == pytest.approx(population_fraction(300, 0.5, limit, s_n),
                                                   rel=0.1)


def test_field_noise_needs_spots_or_the_model() -> None:
    with pytest.raises(ValueError, match="from_model"):
        FieldNoise.from_spots([], [], 4.0, 100.0, 1.3)
    model = FieldNoise.from_model(NOISE, 4.0, 100.0)
    assert model.limit_photons == pytest.approx(4.0 * NOISE.sd_photons)


@pytest.mark.parametrize(("index", "areas", "message"), [
    ([0, 1], [100.0], "outside the 1 fields"),
    ([0, 0], [0.0], "area > 0"),
    ([0], [100.0], "one field index per spot"),
])
def test_bad_field_descriptions_are_refused(index: list, areas: list, message: str) -> None:
    fields = [FieldNoise(180.0, 48.0, a) for a in areas]
    with pytest.raises(ValueError, match=message):
        estimate_detection([300.0, 400.0], index, fields, 1.3)
