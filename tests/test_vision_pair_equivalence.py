"""The pair fit (split.fit_pairs) gives what the reference implementation of main edf5514
gives (benchmarks/reference_crowded.py: (K, 7, P) float64 Jacobians, all candidates at once)
on crowded synthetic windows: positions, amplitudes, background, bounds, the likelihood ratio
and the accepted splits."""

from __future__ import annotations

import importlib

import numpy as np
import pytest
from _vision_helpers import CAL, synth

from chipctl.vision import split
from chipctl.vision.background import NoiseModel
from chipctl.vision.field import build_field
from chipctl.vision.fit import fit_spots, light_of, reach_pairs, window_radius

reference = importlib.import_module("benchmarks.reference_crowded")


def _crowded_inputs(n: int, sigma: float, seed: int, size: int = 256):
    """fit_pairs' inputs as localize builds them, on a crowded SNR-4 frame: one candidate
    per group of true spots closer than 2.5 px (so many windows hide a second vesicle),
    its single-emitter fit, and its neighbours' light on the pair window."""
    rng = np.random.default_rng(seed)
    frame = synth.make_frame(synth.SynthConfig(shape=(size, size), n_spots=n, snr=4.0,
                                               psf_sigma=sigma), rng)
    apart = np.hypot(*(frame.xy[:, None, :] - frame.xy[None]).transpose(2, 0, 1)) >= 2.5
    kept = np.zeros(len(frame.xy), bool)
    for k in range(len(frame.xy)):
        kept[k] = apart[k, kept].all()
    xy = frame.xy[kept]
    ys, xs = np.round(xy[:, 1]).astype(np.intp), np.round(xy[:, 0]).astype(np.intp)
    noise = build_field(frame.image, sigma, CAL).noise
    raw = frame.image
    bg = np.full(len(ys), float(np.median(raw)))
    amp0 = np.maximum(raw[ys, xs] - bg, 1.0)
    r = window_radius(sigma) + split.PAIR_MARGIN
    n_near, m_near = reach_pairs(ys, xs, ys, xs, 2 * r)
    near = (n_near[n_near != m_near], m_near[n_near != m_near])
    fit = fit_spots(raw, ys, xs, xy[:, 0], xy[:, 1], amp0, bg, noise, sigma, pairs=near)
    others = light_of(ys, xs, r, fit.x, fit.y, fit.amplitude, sigma, near)
    single = np.stack([fit.x, fit.y, fit.amplitude, fit.background])
    return raw, ys, xs, single, others, noise


CASES = [(1200, 1.3, 21), (1200, 1.453, 22), (700, 1.453, 23)]


@pytest.mark.parametrize(("n", "sigma", "seed"), CASES)
def test_pair_fit_equals_the_reference_on_crowded_windows(n, sigma, seed):
    raw, ys, xs, single, others, noise = _crowded_inputs(n, sigma, seed)
    new = split.fit_pairs(raw, ys, xs, single, others, noise, sigma)
    old = reference.fit_pairs(raw, ys, xs, single, others, noise, sigma)
    for name in ("x", "y", "amplitude", "background", "crlb_x", "crlb_y", "crlb_amplitude",
                 "lr"):
        np.testing.assert_allclose(getattr(new, name), getattr(old, name), rtol=1e-7,
                                   atol=1e-6, err_msg=name)
    won = split.accepted(new, ys, xs, sigma)
    assert np.array_equal(won, split.accepted(old, ys, xs, sigma))
    # crowded enough to mean something: many splits kept, many refused, windows at the edge
    assert 10 <= won.sum() <= len(ys) - 30
    assert np.any((ys < window_radius(sigma) + split.PAIR_MARGIN)
                  | (xs >= raw.shape[1] - window_radius(sigma) - split.PAIR_MARGIN))


def test_pair_fit_equals_the_reference_without_a_camera_gain():
    raw, ys, xs, single, others, noise = _crowded_inputs(1200, 1.3, 24)
    flat = NoiseModel(0.0, noise.intercept + noise.slope * float(np.median(raw)))
    new = split.fit_pairs(raw, ys, xs, single, others, flat, 1.3)
    old = reference.fit_pairs(raw, ys, xs, single, others, flat, 1.3)
    np.testing.assert_allclose(new.x, old.x, rtol=1e-7, atol=1e-6)
    np.testing.assert_allclose(new.amplitude, old.amplitude, rtol=1e-7, atol=1e-6)
    np.testing.assert_allclose(new.lr, old.lr, rtol=1e-7, atol=1e-6)
    assert np.array_equal(split.accepted(new, ys, xs, 1.3), split.accepted(old, ys, xs, 1.3))


def test_a_chunk_boundary_changes_nothing():
    raw, ys, xs, single, others, noise = _crowded_inputs(1200, 1.3, 25)
    whole = split.fit_pairs(raw, ys, xs, single, others, noise, 1.3)
    cut = 7  # the first candidates alone, as a chunk of their own
    head = split.fit_pairs(raw, ys[:cut], xs[:cut], single[:, :cut], others[..., :cut],
                           noise, 1.3)
    assert np.array_equal(head.x, whole.x[:, :cut]) and np.array_equal(head.lr, whole.lr[:cut])
