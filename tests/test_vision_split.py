"""Crowded fields: touching pairs split in two, single spots left alone, the crowding figure
and the count corrected for vesicles hidden in a neighbour."""

from __future__ import annotations

import numpy as np
import pytest
from _vision_helpers import CAL, metrics, synth

from chipctl.vision import CountParams, count_frame


def _pairs_frame(separations: list[float], snr: float, seed: int, size: int = 512):
    """One group per grid cell (24 px apart): a single spot (separation 0) or a pair at the
    given separation, random orientation; returns the frame, the truth and each group's
    centre and separation."""
    rng = np.random.default_rng(seed)
    g = np.arange(16, size - 16, 24, dtype=float)
    xx, yy = np.meshgrid(g, g)
    centres = np.column_stack([xx.ravel(), yy.ravel()]) + rng.uniform(-0.5, 0.5, (xx.size, 2))
    seps = np.array([separations[k % len(separations)] for k in range(len(centres))])
    angle = rng.uniform(0, np.pi, len(centres))
    half = 0.5 * seps[:, None] * np.column_stack([np.cos(angle), np.sin(angle)])
    pairs = seps > 0
    xy = np.vstack([centres[~pairs], centres[pairs] + half[pairs], centres[pairs] - half[pairs]])
    amp = synth.amplitude_for_snr(snr, np.full(len(xy), 100.0), 1.6)
    cfg = synth.SynthConfig(shape=(size, size), vignetting=0.0, texture=0.0, gradient=0.0)
    image = synth.expose(cfg, 100.0 + synth.render_spots(cfg.shape, xy, amp, 1.3), rng)
    return image, xy, centres, seps


def _per_group(result, centres: np.ndarray) -> np.ndarray:
    """Detections per group (each detection assigned to the nearest centre within 6 px)."""
    d = np.hypot(*(result.xy[:, None, :] - centres[None]).transpose(2, 0, 1))
    nearest = np.argmin(d, axis=1)
    return np.bincount(nearest[d.min(axis=1) < 6.0], minlength=len(centres))


@pytest.mark.parametrize("separation", [2.0, 2.5, 3.0])
def test_two_bright_spots_2_to_3_px_apart_are_counted_as_two(separation):
    image, xy, centres, seps = _pairs_frame([0.0, separation], snr=8.0, seed=11)
    res = count_frame(image, CountParams(calibration=CAL))
    per = _per_group(res, centres)
    assert np.mean(per[seps > 0] == 2) >= 0.9
    assert np.mean(per[seps == 0] == 1) >= 0.99  # single spots are not split
    assert res.split >= 0.85 * np.sum(seps > 0)
    i, j = metrics.match(xy, res.xy, max_dist=1.0)
    assert len(i) >= 0.9 * len(xy)
    assert np.all(res.spots["multiplicity"][np.isin(np.arange(res.count), j)] >= 1)


def test_pairs_at_snr_4_three_px_apart_are_mostly_split():
    image, _, centres, seps = _pairs_frame([0.0, 3.0], snr=4.0, seed=12)
    res = count_frame(image, CountParams(calibration=CAL))
    per = _per_group(res, centres)
    assert np.mean(per[seps > 0] == 2) >= 0.85
    assert np.mean(per[seps == 0] > 1) <= 0.01


def test_unresolvable_pair_is_one_detection_not_three():
    image, _, centres, seps = _pairs_frame([1.0], snr=8.0, seed=13)
    res = count_frame(image, CountParams(calibration=CAL))
    per = _per_group(res, centres)
    assert np.all(per <= 2) and np.mean(per == 1) >= 0.8


@pytest.mark.parametrize("n", [300, 1800])
def test_estimated_count_corrects_for_merged_neighbours(n):
    # 1800 spots in 512 x 512 is 29,000 per 2048 x 2048: a third of them touch a neighbour
    cfg = synth.SynthConfig(shape=(512, 512), n_spots=n, snr=6.0)
    f = synth.make_frame(cfg, np.random.default_rng(14))
    res = count_frame(f.image, CountParams(calibration=CAL))
    assert res.estimated_count == pytest.approx(n, rel=0.03)
    assert abs(res.estimated_count - n) <= 3 * res.estimated_count_sd + 2
    if n > 1000:
        assert res.count < 0.96 * n  # the detected count alone is low ...
        assert res.crowding > 0.35  # ... and the field says why
        assert res.split > 50
    else:
        assert res.crowding < 0.12
        assert abs(res.estimated_count - res.count) <= 2 * res.estimated_count_sd
