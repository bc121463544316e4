"""Shared helpers for the vision tests: the benchmark's frame generator and scorer."""

from __future__ import annotations

import importlib
import sys
from pathlib import Path

import numpy as np

_ROOT = str(Path(__file__).resolve().parents[1])
if _ROOT not in sys.path:
    sys.path.insert(0, _ROOT)

synth = importlib.import_module("benchmarks.synth")
metrics = importlib.import_module("benchmarks.metrics")

CAL = importlib.import_module("chipctl.vision").CameraCalibration(100.0, 0.46, 1.6)


def small_frame(snr: float, n: int = 150, size: int = 512, seed: int = 0, **kw: object):
    """A synthetic size x size frame with n spots at the given SNR."""
    cfg = synth.SynthConfig(shape=(size, size), n_spots=n, snr=snr, **kw)
    return synth.make_frame(cfg, np.random.default_rng(seed))
