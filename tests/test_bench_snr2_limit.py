"""benchmarks/snr2_limit.py: the ideal matched filter it compares the counter against."""

from __future__ import annotations

import importlib

import numpy as np
from _vision_helpers import metrics, synth

limit = importlib.import_module("benchmarks.snr2_limit")


def _frame(**kw: object):
    cfg = synth.SynthConfig(shape=(384, 384), n_spots=60, snr=7.0, **kw)
    return cfg, synth.make_frame(cfg, np.random.default_rng(5))


def test_ideal_matched_filter_finds_bright_spots_and_drops_hot_pixels():
    cfg, f = _frame(hot_fraction=5e-4)
    assert len(f.hot_xy) > 40  # many hot pixels, most of them far brighter than the spots
    xy, snr = limit.ideal_matched_filter(f, cfg)
    near_hot = np.min(np.hypot(*(xy[:, None, :] - f.hot_xy[None]).transpose(2, 0, 1)), axis=1)
    assert near_hot.min() >= 1.5
    best, t = limit.best_in_hindsight(f.xy, xy, snr)
    assert best.f1 > 0.95 and t in limit.THRESHOLDS
    # The hindsight threshold is the best of the sweep.
    assert all(metrics.score(f.xy, xy[snr > u]).f1 <= best.f1 for u in limit.THRESHOLDS[::10])


def test_main_prints_pooled_figures(capsys, monkeypatch):
    monkeypatch.setattr(limit, "SynthConfig", lambda: synth.SynthConfig(shape=(256, 256),
                                                                       n_spots=40))
    limit.main(["--held", "1", "--seed", "2"])
    out = capsys.readouterr().out
    assert "held-out frame 1:" in out
    pooled = [float(line.rsplit(" ", 1)[1]) for line in out.splitlines() if "pooled F1" in line]
    assert len(pooled) == 3 and all(0.0 < p <= 1.0 for p in pooled)
