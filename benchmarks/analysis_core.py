"""The estimation core against inputs whose answer is known: bias and 95 % interval coverage of
each correction, beside the uncorrected figure and the targets of issue 14 (|bias| <= 10 %,
coverage 90-98 %, co-localization within 0.05, rate constant within 20 %).

Fields are rendered by benchmarks.analysis_truth and counted by the project's counter; the
other inputs are synthetic draws. Not the end-to-end accuracy benchmark (simulated runs).

    python -m benchmarks.analysis_core          # quick: about two minutes on one core
    python -m benchmarks.analysis_core --full   # four times the draws
"""

from __future__ import annotations

import argparse
import math

import numpy as np

from benchmarks.analysis_truth import E_PER_ADU, count, graetz_pde, render, uniform_xy
from chipctl.analysis.colocalization import FieldPair, colocalize
from chipctl.analysis.detection import FieldNoise, estimate_detection, photons_from_amplitude
from chipctl.analysis.kinetics import fit_kinetics
from chipctl.analysis.transport import (
    CaptureModel,
    Channel,
    SizeDistribution,
    Zone,
    collected_fraction,
    diffusivity_um2_s,
)
from chipctl.analysis.uncertainty import Factor, FieldCounts, concentration


def transport() -> None:
    print("transport: closed form / finite-difference solution of advection-diffusion")
    for xi in (1e-4, 1e-3, 1e-2, 0.1):
        leveque = 1.4674 * xi ** (2 / 3)
        pde = graetz_pde(xi)
        print(f"  xi {xi:7.0e}  corrected {collected_fraction(xi) / pde:.4f}   "
              f"plain Leveque {leveque / pde:.4f}")
    d = float(diffusivity_um2_s(100.0))
    for xi, da in ((1e-3, 3.0), (1e-3, 30.0), (1e-2, 10.0)):
        flow = d * 800.0 / (xi * 50.0**2) * 1000.0 * 50.0 / (1e9 / 60)
        model = CaptureModel(Channel(1000.0, 50.0), Zone(800.0, 1000.0),
                             SizeDistribution.single(100.0), da * d / 50.0)
        print(f"  xi {xi:7.0e}  Da_H {da:4.0f}  with reaction "
              f"{model.collected(flow, 0.0, 800.0) / graetz_pde(xi, da):.4f}")


def detection(seeds: int) -> None:
    print(f"detection: 4 rendered 512x512 fields per run, {seeds} runs per row; coverage of "
          "the truth by the fraction's interval widened by binomial counting")
    print("  median photons  log-sd  per field | detected/truth | median est/truth | coverage")
    for median, sd_log, per_field in ((300, 0.5, 300), (200, 0.6, 300), (600, 0.5, 300),
                                      (1500, 0.5, 2000), (400, 0.7, 1000)):
        raw, ratio, hits = [], [], 0
        for seed in range(seeds):
            rng = np.random.default_rng(700 + seed)
            photons, index, fields = [], [], []
            for k in range(4):
                frame = render(uniform_xy(per_field, rng, border=6),
                               rng.lognormal(math.log(median), sd_log, per_field), rng)
                res = count(frame)
                p = photons_from_amplitude(res.spots["amplitude"], E_PER_ADU, 1.3)
                photons.append(p)
                index.append(np.full(p.size, k))
                fields.append(FieldNoise.from_spots(p, res.spots["snr"], res.threshold,
                                                    frame.image.size, 1.3))
            est = estimate_detection(np.concatenate(photons), np.concatenate(index), fields, 1.3)
            truth = 4 * per_field
            raw.append(est.detected / truth)
            ratio.append(est.estimated_total / truth)
            f = est.counted_fraction
            sd = math.hypot(est.counted_fraction_rsd, math.sqrt((1 - min(f, 1.0)) / est.detected))
            hits += abs(math.log(ratio[-1])) < 1.96 * sd
        print(f"  {median:14d}  {sd_log:6.1f}  {per_field:9d} | {np.median(raw):14.3f} | "
              f"{np.median(ratio):16.3f} | {hits / seeds:8.2f}")


def concentration_coverage(trials: int) -> None:
    print(f"concentration: {trials} synthetic runs per row (1:10 dilution, 3 fields, isotype "
          "control, detection and capture off by their stated uncertainty)")
    print("  c0 /mL   field CV | median est/truth | coverage | lower bound > 0")
    for c0, cv in ((3e6, 0.0), (3e7, 0.0), (3e8, 0.0), (3e8, 0.15), (3e8, 0.3)):
        rng = np.random.default_rng(int(c0) % 997 + int(100 * cv))
        ratios, hits, positive = [], 0, 0
        for _ in range(trials):
            zone, ctrl, capture = _synthetic_run(rng, c0, cv)
            est = concentration(zone, capture, Factor("volume", 50e-3, 0.01), 10, ctrl)
            ratios.append(est.per_ml / c0)
            hits += est.ci95[0] <= c0 <= est.ci95[1]
            positive += est.ci95[0] > 0
        print(f"  {c0:7.0e}  {cv:8.2f} | {np.median(ratios):16.3f} | {hits / trials:8.3f} | "
              f"{positive / trials:.3f}")


def _synthetic_run(rng: np.random.Generator, c0: float, cv: float
                   ) -> tuple[FieldCounts, FieldCounts, Factor]:
    shares, areas = (0.12, 0.10, 0.08), (0.04, 0.04, 0.04)
    captured = rng.poisson(c0 / 10 * 50e-3 * rng.lognormal(0, 0.01) * 0.02)
    fields = rng.multinomial(captured, [*shares, 1 - sum(shares)])[:3].astype(float)
    if cv > 0:
        fields = rng.poisson(fields * rng.gamma(1 / cv**2, cv**2, 3))
    counts = rng.binomial((fields + rng.poisson(50.0 * np.asarray(areas))).astype(int), 0.7)
    det = Factor("detection", 0.7 * rng.lognormal(0, 0.04), 0.04)
    control = rng.binomial(rng.poisson(50.0 * np.array([0.04, 0.04])), 0.7)
    return (FieldCounts.of(counts, shares, areas, det),
            FieldCounts.of(control, (0.5, 0.5), (0.04, 0.04), det),
            Factor("capture efficiency", 0.02 * rng.lognormal(0, 0.05), 0.05))


def colocalization(trials: int) -> None:
    print(f"co-localization: {trials} draws of 3 fields, shift (1.7, -0.8) px, true fraction 0.5")
    print("  reference  other-only | raw fraction | corrected | coverage")
    for n_ref, n_only in ((800, 600), (2000, 2000)):
        rng = np.random.default_rng(n_ref)
        raw, frac, hits = [], [], 0
        for _ in range(trials):
            result = colocalize([_pair_field(rng, n_ref, n_only) for _ in range(3)])
            raw.append(result.raw_fraction)
            frac.append(result.fraction)
            hits += result.ci95[0] <= 0.5 <= result.ci95[1]
        print(f"  {n_ref:9d}  {n_only:10d} | {np.median(raw):12.3f} | {np.median(frac):9.3f} | "
              f"{hits / trials:8.3f}")


def _pair_field(rng: np.random.Generator, n_ref: int, n_only: int) -> FieldPair:
    ref = uniform_xy(n_ref, rng)
    partner = rng.random(n_ref) < 0.5
    other = np.vstack([ref[partner] + [1.7, -0.8] + rng.normal(0, 0.4, (partner.sum(), 2)),
                       uniform_xy(n_only, rng)])
    inside = (other >= 0).all(axis=1) & (other < 512).all(axis=1)
    return FieldPair(ref + rng.normal(0, 0.4, ref.shape), other[inside], (512, 512))


def kinetics(trials: int) -> None:
    times = np.arange(0, 41, 2) * 60.0
    print(f"kinetics: {trials} fields, plateau 1500, k 0.08 /min, a frame every 2 min for 40 min")
    print("  detection per frame | median k/true | 95th pct |k/true - 1| | coverage of k")
    for detect in (1.0, 0.8):
        rng = np.random.default_rng(int(detect * 10))
        ratio, hits = [], 0
        for _ in range(trials):
            mean = 1500 * (1 - np.exp(-0.08 * times / 60))
            true = 12 + np.cumsum(rng.poisson(np.diff(mean, prepend=0.0)))
            seen = rng.binomial(true, detect) if detect < 1 else true
            fit = fit_kinetics(times, seen)
            ratio.append(fit.k_per_min / 0.08)
            hits += fit.k_ci95[0] <= 0.08 <= fit.k_ci95[1]
        err = np.percentile(np.abs(np.asarray(ratio) - 1), 95)
        print(f"  {detect:19.1f} | {np.median(ratio):13.3f} | {err:22.3f} | {hits / trials:.3f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--full", action="store_true", help="four times the draws")
    scale = 4 if parser.parse_args().full else 1
    transport()
    detection(6 * scale)
    concentration_coverage(500 * scale)
    colocalization(100 * scale)
    kinetics(200 * scale)


if __name__ == "__main__":
    main()
