"""The counter's photon estimate near the threshold against the peak model, the share of the
spots' light the counter's background carries, and the detection-efficiency correction on dim
populations: figures printed, never asserted.

    python -m benchmarks.peak_model [--old] [--seeds N]

``--old`` takes the model's inputs as before issue 14's peak fix (photons / SNR as the noise,
no light carried by the background), to print the figures before the fix beside those after.
"""

from __future__ import annotations

import argparse
import math

import numpy as np
from scipy import special
from scipy.spatial import cKDTree

from benchmarks.analysis_truth import CALIBRATION, E_PER_ADU, OFFSET_ADU, count, render, uniform_xy
from chipctl.analysis import crowding, detection
from chipctl.analysis.brightness import CARRY_SCALE, peak_model
from chipctl.analysis.crowding import merge_radius_px
from chipctl.analysis.detection import (
    CUT_MARGIN,
    FieldNoise,
    SpotNoise,
    estimate_detection,
    photons_from_amplitude,
)
from chipctl.vision.field import build_field

BANDS = ((100, 150), (150, 200), (200, 250))
BACKGROUND_E = 100.0


def _old_inputs() -> None:
    """The model's inputs before the fix: photons / SNR as s_N, nothing carried, and the
    merge radius balanced without the carried light (1.67 sigma_f)."""
    def ratio_noise(p: np.ndarray, s: np.ndarray, psf: float) -> float:
        r = p / s
        return float(np.median(r[np.isfinite(r) & (r > 0)]))
    detection.estimate_noise = ratio_noise  # type: ignore[assignment]
    detection.background_carried = lambda *a: 0.0  # type: ignore[assignment]
    crowding.MERGE_RADIUS_PER_SIGMA_F = 1.67


def bands() -> None:
    """Share above the fit's cut: observed against the model (the test's frames)."""
    rows = []
    for seed in (8, 9, 10, 11):
        rng = np.random.default_rng(seed)
        for _ in range(16):
            frame = render(uniform_xy(200, rng, border=8), rng.uniform(100, 500, 200), rng)
            res = count(frame)
            p = photons_from_amplitude(res.spots["amplitude"], E_PER_ADU, 1.3)
            f = FieldNoise.from_spots(p, res.spots["snr"], res.threshold, frame.image.size, 1.3)
            d, j = cKDTree(res.xy).query(frame.xy, distance_upper_bound=1.5)
            seen = np.where(np.isfinite(d), p[np.minimum(j, res.count - 1)], -np.inf)
            cut = f.limit_photons + CUT_MARGIN * f.noise_photons
            rows.append(np.column_stack([frame.photons, seen, np.full(200, cut),
                                         np.full(200, f.noise_photons),
                                         np.full(200, f.carried_photons)]))
    x, y, cut, noise, carried = np.concatenate(rows).T
    shot = SpotNoise(1.3).shot_factor
    a = 200 / 512**2 * math.pi * merge_radius_px(1.3) ** 2
    print(f"share above the cut, 4 seeds x 16 frames (s_N {np.median(noise):.1f} photons, "
          f"carried {np.median(carried):.1f} photons, cut {np.median(cut):.0f} photons)")
    for lo, hi in BANDS:
        b = (x >= lo) & (x < hi)
        m, sd = peak_model(1.3).moments(x[b], noise[b], shot)
        p = special.ndtr((m - carried[b] - cut[b]) / sd) * np.exp(-a * (500 - x[b]) / 400)
        sampling = math.sqrt(float(np.sum(p * (1 - p)))) / p.size
        obs, pred = float(np.mean(y[b] > cut[b])), float(np.mean(p))
        print(f"  {lo}-{hi} photons: observed {obs:.3f}, predicted {pred:.3f}, "
              f"difference {obs - pred:+.3f} ({(obs - pred) / sampling:+.1f} sampling sd)")


def carried_share() -> None:
    """Background rise over the spots' mean light, by brightness (mean over the frame)."""
    s_n = SpotNoise(1.3, BACKGROUND_E, 1.6).sd_photons
    level = OFFSET_ADU + BACKGROUND_E / E_PER_ADU
    blank = float(np.mean(build_field(render(np.empty((0, 2)), np.empty(0),
                                             np.random.default_rng(0)).image, 1.3,
                                      CALIBRATION).bg_low)) - level
    print(f"share of the spots' light the background carries (model 1 / (1 + r / "
          f"{CARRY_SCALE:g}), r = photons / s_N, s_N {s_n:.1f})")
    for x in (100, 200, 300, 500, 1000, 2000):
        shares = []
        for n in (200, 800):
            rng = np.random.default_rng(1)
            rise = [float(np.mean(build_field(render(uniform_xy(n, rng, border=8),
                                                     np.full(n, float(x)), rng).image, 1.3,
                                              CALIBRATION).bg_low)) - level - blank
                    for _ in range(4)]
            shares.append(np.mean(rise) / (n * x / 512**2 / E_PER_ADU))
        print(f"  {x:5d} photons (r {x / s_n:4.1f}): measured {shares[0]:.3f} (200 per frame), "
              f"{shares[1]:.3f} (800), model {1 / (1 + x / s_n / CARRY_SCALE):.3f}")


def corrected(median_photons: float, per_frame: int, sd_log: float, seeds: int) -> None:
    """Detected and estimated total over the truth for a log-normal population (4 frames)."""
    raw, ratio = [], []
    for seed in range(seeds):
        rng = np.random.default_rng(900 + seed)
        photons, index, fields = [], [], []
        for k in range(4):
            frame = render(uniform_xy(per_frame, rng),
                           rng.lognormal(math.log(median_photons), sd_log, per_frame), rng)
            res = count(frame)
            p = photons_from_amplitude(res.spots["amplitude"], E_PER_ADU, 1.3)
            photons.append(p)
            index.append(np.full(p.size, k))
            fields.append(FieldNoise.from_spots(p, res.spots["snr"], res.threshold,
                                                frame.image.size, 1.3))
        est = estimate_detection(np.concatenate(photons), np.concatenate(index), fields, 1.3)
        raw.append(est.detected / (4 * per_frame))
        ratio.append(est.estimated_total / (4 * per_frame))
    print(f"  median {median_photons:.0f} photons ({median_photons / est.limit_photons:.1f} x "
          f"the limit), {per_frame} per frame, log-sd {sd_log}: detected / truth "
          f"{np.mean(raw):.3f}, estimated total / truth {np.mean(ratio):.3f} "
          f"+- {np.std(ratio) / math.sqrt(seeds):.3f} ({seeds} seeds)")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--old", action="store_true", help="the model's inputs before the fix")
    ap.add_argument("--seeds", type=int, default=8)
    args = ap.parse_args()
    if args.old:
        _old_inputs()
    bands()
    carried_share()
    print("detection-efficiency correction on dim populations (4 frames of 512 x 512 a seed)")
    for median, n in ((290.0, 300), (190.0, 300), (480.0, 300), (290.0, 1500)):
        corrected(median, n, 0.5, args.seeds)


if __name__ == "__main__":
    main()
