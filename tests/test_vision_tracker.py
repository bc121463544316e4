"""VesicleTracker: each static vesicle counted once despite drift and bleaching."""

from __future__ import annotations

import numpy as np
from _vision_helpers import CAL, metrics, synth

from chipctl.vision import CountParams, CountResult, VesicleTracker, count_frame


def test_static_vesicles_counted_once_with_drift_and_bleaching():
    cfg = synth.SynthConfig(shape=(256, 256), snr=8.0, hot_fraction=0.0)
    seq = synth.make_sequence(cfg, n_frames=30, n_initial=40, arrival_rate=1.5,
                              drift_step=(0.6, -0.35), half_life_frames=12.0,
                              rng=np.random.default_rng(21))
    tracker = VesicleTracker()
    counts = []
    for t, frame in enumerate(seq.frames):
        counts.append(tracker.update(count_frame(frame, CountParams(calibration=CAL)), t).count)
    assert counts == sorted(counts)  # bleaching never un-counts
    assert np.allclose(tracker.drift, seq.drift[-1], atol=0.3)
    seen_twice = seq.arrival <= len(seq.frames) - 2
    ves = tracker.vesicles()
    got = np.array([[v.x, v.y] for v in ves])
    i, j = metrics.match(seq.xy[seen_twice], got, max_dist=1.5)
    gaps = np.hypot(*(seq.xy[:, None] - seq.xy[None]).transpose(2, 0, 1))
    isolated = np.sort(gaps, axis=1)[:, 1][seen_twice] > 4.0  # resolvable vesicles
    assert np.isin(np.flatnonzero(isolated), i).all()
    assert abs(len(ves) - seen_twice.sum()) <= 0.06 * seen_twice.sum()
    assert len(ves) - len(j) <= 2  # no vesicle counted twice, almost no spurious ones
    arrival_ok = np.array([ves[k].arrival for k in j]) == seq.arrival[seen_twice][i]
    assert arrival_ok.mean() >= 0.9


def test_vesicle_that_disappears_stays_counted():
    tracker = VesicleTracker(min_detections=2)
    a = CountResult.from_xy(np.array([[10.0, 10.0], [50.0, 50.0]]))
    tracker.update(a, 0.0)
    tracker.update(a, 1.0)
    assert tracker.count == 2
    tracker.update(CountResult.from_xy(np.array([[10.2, 9.9]])), 2.0)
    tracker.update(CountResult.from_xy(np.empty((0, 2))), 3.0)
    assert tracker.count == 2
    assert [v.arrival for v in tracker.vesicles()] == [0.0, 0.0]


def test_single_noise_detection_is_not_confirmed():
    tracker = VesicleTracker(min_detections=2)
    tracker.update(CountResult.from_xy(np.array([[5.0, 5.0]])), 0.0)
    tracker.update(CountResult.from_xy(np.array([[80.0, 5.0]])), 1.0)
    assert tracker.count == 0


def test_large_stage_jump_is_registered():
    rng = np.random.default_rng(3)
    xy = rng.uniform(20, 480, (200, 2))
    tracker = VesicleTracker()
    tracker.update(CountResult.from_xy(xy), 0.0)
    upd = tracker.update(CountResult.from_xy(xy + [9.0, -6.5]), 1.0)
    assert np.allclose(upd.drift, (9.0, -6.5), atol=0.05)
    assert upd.new == 0 and tracker.count == 200


def test_unconfirmed_noise_is_forgotten_confirmed_vesicles_kept():
    tracker = VesicleTracker(min_detections=2, forget_after=3)
    static = np.array([[100.0, 100.0], [300.0, 200.0]])
    rng = np.random.default_rng(5)
    for t in range(20):
        noise = rng.uniform(0, 400, (5, 2))
        tracker.update(CountResult.from_xy(np.vstack([static, noise])), float(t))
    assert tracker.count == 2
    assert len(tracker._pos) <= 2 + 5 * 3  # only recent unconfirmed detections remain
