"""Sections of the counting benchmark beyond single-frame detection: a density sweep, several
exposures per field, and robustness to what a real chip shows (defocus, uneven illumination,
debris and aggregates, bleaching between exposures). Each prints its own table."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import replace

import numpy as np

from benchmarks.metrics import Scores, score
from benchmarks.reference_detectors import Detector
from benchmarks.synth import SynthConfig, SynthFrame, make_frame, static_field
from chipctl.vision import (
    CameraCalibration,
    CountingPipeline,
    CountParams,
    CountResult,
    VesicleTracker,
    count_exposures,
    count_frame,
)

DENSITIES = (2000, 10000, 30000)  # spots per 2048 x 2048 frame
DENSITY_TARGETS = (0.02, 0.05, 0.10)  # count within this fraction of the truth
DRIFT_STEP = np.array([0.7, -0.45])  # stage drift per exposure (px)
ExposureCounter = Callable[[Sequence[np.ndarray], CountParams], CountResult]


def density_sweep(base: SynthConfig, cal: CameraCalibration, refs: dict[str, Detector],
                  rng: np.random.Generator) -> None:
    """Count and F1 at SNR 4 for three densities, chipctl beside the references."""
    scale = base.shape[0] * base.shape[1] / 2048**2
    print("\nDensity sweep, SNR 4, one frame per density (targets: count within 2 / 5 / 10 % "
          "of the truth)")
    print(f"{'spots/2048^2':>12}  {'method':<28}{'count':>7} {'vs truth':>9} {'F1':>6}  notes")
    for n2048, target in zip(DENSITIES, DENSITY_TARGETS, strict=True):
        n = int(round(n2048 * scale))
        frame = make_frame(replace(base, snr=4.0, n_spots=n), rng)
        res = count_frame(frame.image, CountParams(calibration=cal))
        s = score(frame.xy, res.xy)
        est, sd = res.estimated_count, res.estimated_count_sd
        ok = "meets" if abs(est - n) <= target * n else "MISSES"
        print(f"{n2048:>12}  {'chipctl, detected':<28}{res.count:>7} {_rel(res.count, n):>9} "
              f"{s.f1:6.3f}  {res.split} split; crowding {res.crowding:.2f}")
        print(f"{'':>12}  {'chipctl, estimated':<28}{est:>7.0f} {_rel(est, n):>9} {'':>6}  "
              f"+- {sd:.0f} (1 sd); {ok} the {target:.0%} target")
        for name, det in refs.items():
            xy = det(frame.image)
            print(f"{'':>12}  {name:<28}{len(xy):>7} {_rel(len(xy), n):>9} "
                  f"{score(frame.xy, xy).f1:6.3f}  threshold tuned at 2,000 spots")


def exposures(base: SynthConfig, cal: CameraCalibration, counter: ExposureCounter,
              path: str, rng: np.random.Generator) -> None:
    """F1 at SNR 2 from K = 1, 2, 4 exposures of one drifting field, counted by ``counter``
    (the protocol path: a run of ``image: {frames: K}``)."""
    drift = np.outer(np.arange(4), DRIFT_STEP)
    frames, xy = static_field(replace(base, snr=2.0), 4, rng, drift=drift)
    out = []
    for k in (1, 2, 4):
        res = counter(frames[:k], CountParams(calibration=cal))
        out.append(f"K={k}: F1 {score(xy, res.xy).f1:.3f}")
    print(f"\nSeveral exposures per field, SNR 2, stage drift {DRIFT_STEP[0]:+.2f} / "
          f"{DRIFT_STEP[1]:+.2f} px per exposure, through {path} (target F1 >= 0.98 at K=4): "
          + ", ".join(out))


def robustness(base: SynthConfig, cal: CameraCalibration, refs: dict[str, Detector],
               rng: np.random.Generator) -> None:
    """chipctl (and the references) on frames that break the benchmark's clean model."""
    print("\nRobustness, SNR 4 unless stated (F1 at 2 px; chipctl told PSF sigma 1.3 px)")
    params = CountParams(calibration=cal)
    for sigma in (1.6, 2.0):
        f = make_frame(replace(base, snr=4.0, psf_sigma=sigma), rng)
        res = count_frame(f.image, params)
        width = np.nanmedian(res.spots["width"][res.spots["snr"] > 6])
        _row(f"defocus: PSF sigma {sigma} px", score(f.xy, res.xy), res.count, len(f.xy),
             f"median measured spot width {width:.2f} px (in focus: 1.3)", f, refs)
    for label, cfg in (("uneven light: 80 % vignetting, constant SNR",
                        replace(base, snr=4.0, vignetting=0.8, gradient=0.3)),
                       ("uneven light: spots dim with it (SNR 4 at centre)",
                        replace(base, snr=4.0, vignetting=0.8, gradient=0.3,
                                constant_snr=False))):
        f = make_frame(cfg, rng)
        res = count_frame(f.image, params)
        _row(label, score(f.xy, res.xy), res.count, len(f.xy), "", f, refs)
    n_obj = max(4, int(40 * base.shape[0] * base.shape[1] / 2048**2))
    f = make_frame(replace(base, snr=4.0, debris=n_obj, aggregates=n_obj), rng)
    res = count_frame(f.image, params)
    on_objects = _near(res.xy, np.vstack([f.debris_xy, f.aggregate_xy]), 8.0)
    _row(f"{n_obj} debris + {n_obj} aggregates of 12", score(f.xy, res.xy[~on_objects]),
         res.count, len(f.xy), f"{int(on_objects.sum())} spots counted on them; rejected "
         f"{res.rejected['debris']} as debris", f, refs, objects=True)
    drift = np.outer(np.arange(4), DRIFT_STEP)
    frames, xy = static_field(replace(base, snr=2.0), 4, rng, drift=drift,
                              bleach=0.75 ** np.arange(4))
    one = count_frame(frames[0], params)
    four = count_exposures(frames, params)
    print(f"  {'bleaching 25 % per exposure, SNR 2':<52} chipctl F1 {score(xy, one.xy).f1:.3f}"
          f" (1 exposure) -> {score(xy, four.xy).f1:.3f} (4 registered)")


def _row(label: str, s: Scores, count: int, truth: int, note: str, frame: SynthFrame,
         refs: dict[str, Detector], objects: bool = False) -> None:
    others = []
    blobs = np.vstack([frame.debris_xy, frame.aggregate_xy])
    for name, det in refs.items():
        xy = det(frame.image)
        if objects:
            xy = xy[~_near(xy, blobs, 8.0)]
        others.append(f"{name.split()[0]} {score(frame.xy, xy).f1:.3f}")
    print(f"  {label:<52} chipctl F1 {s.f1:.3f}, count {count} of {truth}"
          + (f"; {note}" if note else "") + " | F1 " + ", ".join(others))


def _near(xy: np.ndarray, centres: np.ndarray, radius: float) -> np.ndarray:
    if len(xy) == 0 or len(centres) == 0:
        return np.zeros(len(xy), bool)
    d = np.hypot(*(xy[:, None, :] - centres[None]).transpose(2, 0, 1))
    return d.min(axis=1) < radius


def _rel(value: float, truth: int) -> str:
    return f"{(value - truth) / truth:+.1%}"


def undersampled(base: SynthConfig, cal: CameraCalibration, rng: np.random.Generator,
                 tune: Callable[[SynthFrame], Detector]) -> None:
    """PSF sigma 0.7 px (20x optics): chipctl told 0.7, trackpy d=5 tuned per SNR."""
    cfg = replace(base, psf_sigma=0.7)
    line = []
    for snr in (2.0, 4.0, 7.0):
        tuning, held = (make_frame(replace(cfg, snr=snr), rng) for _ in range(2))
        ours = count_frame(held.image, CountParams(psf_sigma_px=0.7, calibration=cal))
        theirs = tune(tuning)(held.image)
        line.append(f"SNR {snr:g}: {score(held.xy, ours.xy).f1:.3f} vs "
                    f"{score(held.xy, theirs).f1:.3f}")
    print("\nPSF sigma 0.7 px (undersampled), F1 chipctl vs trackpy.locate d=5 (minmass tuned "
          "per SNR): " + "; ".join(line))


def streaming(base: SynthConfig, cal: CameraCalibration, rng: np.random.Generator,
              n: int, fps: float = 20.0) -> None:
    """``n`` frames of one field at ``fps`` through CountingPipeline with a tracker."""
    frames = static_field(replace(base, snr=4.0), 8, rng)[0]
    tracker = VesicleTracker()
    pipe = CountingPipeline(CountParams(calibration=cal), tracker=tracker)
    pipe.start(frame_shape=frames[0].shape)
    t0 = time.perf_counter()
    for k in range(n):
        delay = t0 + k / fps - time.perf_counter()
        if delay > 0:
            time.sleep(delay)
        pipe.submit(frames[k % len(frames)])
    pipe.stop()
    p50, p99 = pipe.latency_percentiles()
    print(f"\nStreaming at {fps:g} fps (CountingPipeline + VesicleTracker, one static field, "
          f"fresh noise per frame): {pipe.counted_frames}/{n} frames counted, latency p50 "
          f"{p50 * 1e3:.1f} ms, p99 {p99 * 1e3:.1f} ms (frame interval {1e3 / fps:.0f} ms); "
          f"tracker count {tracker.count} of {base.n_spots}")


STAGES = {  # stage of count_frame -> the functions whose cumulative time it is
    "matched filter": ("detect.py", "matched_filter"),
    "background + noise model": ("background.py", "low_res_background", "noise_model"),
    "normalisation": ("field.py", "_empirical_normalisation"),
    "extrema (maxima + minima)": ("detect.py", "extrema"),
    "ML fit of accepted spots": ("fit.py", "fit_spots"),
    "split candidates + pair fits": ("localize.py", "_split"),
    "unexplained-light test": ("split.py", "unexplained_light"),
    "crowding": ("crowding.py", "crowding"),
}


def stage_profile(image: np.ndarray, params: CountParams, repeats: int = 10) -> None:
    """Where count_frame's CPU time goes, per stage (cProfile on the thread clock; the
    profiler's own overhead inflates the Python-heavy stages)."""
    import cProfile
    import pstats

    count_frame(image, params)
    prof = cProfile.Profile(time.thread_time)
    prof.enable()
    for _ in range(repeats):
        count_frame(image, params)
    prof.disable()
    stats = pstats.Stats(prof).stats  # type: ignore[attr-defined]
    total = sum(v[3] for k, v in stats.items() if k[2] == "count_frame") / repeats * 1e3
    parts = []
    for name, (module, *funcs) in STAGES.items():
        ms = sum(v[3] for k, v in stats.items() if k[0].endswith(module) and k[2] in funcs)
        parts.append(f"{name} {ms / repeats * 1e3:.1f}")
    print(f"  where the time goes (CPU ms per frame under cProfile, total {total:.1f}): "
          + "; ".join(parts))


def stage_times(image: np.ndarray, params: CountParams, repeats: int = 15) -> None:
    """Wall-clock ms of count_frame and of its frame-wide stages, each called on its own
    (no profiler; the stages take turns, so a busy machine slows all of them alike): min and
    median of ``repeats``. The rest of count_frame is the per-spot work on the candidates."""
    from chipctl.vision import detect
    from chipctl.vision.background import low_res_background, noise_model
    from chipctl.vision.field import build_field
    from chipctl.vision.kernels import matched_kernel

    sigma, cal, scale = params.psf_sigma_px, params.calibration, params.background_px
    fld = build_field(image, sigma, cal, scale)
    bg, kernel, t = low_res_background(image, scale), matched_kernel(sigma), params.min_threshold
    every = 2 if image.shape[0] >= 8 * detect.STRIP else 1
    stages: dict[str, Callable[[], object]] = {
        "count_frame": lambda: count_frame(image, params),
        "field": lambda: build_field(image, sigma, cal, scale),
        "matched filter": lambda: detect.matched_filter(image, kernel,
                                                        fld.filtered.dtype != np.float32),
        "background": lambda: low_res_background(image, scale),
        "noise model": lambda: noise_model(image, bg, cal),
        "extrema": lambda: detect.extrema(fld.filtered, fld.gate(t), fld.gate(t, True), every),
    }
    ms: dict[str, list[float]] = {name: [] for name in stages}
    for _ in range(repeats):
        for name, run in stages.items():
            t0 = time.perf_counter()
            run()
            ms[name].append((time.perf_counter() - t0) * 1e3)
    lo = {name: min(v) for name, v in ms.items()}
    mid = {name: float(np.median(v)) for name, v in ms.items()}
    rest = [d["count_frame"] - d["field"] - d["extrema"] for d in (lo, mid)]
    print("  stages on their own, wall ms min / median of " + f"{repeats}: " + "; ".join(
        f"{name} {lo[name]:.1f} / {mid[name]:.1f}" for name in stages)
        + f"; per-spot work (count_frame - field - extrema) {rest[0]:.1f} / {rest[1]:.1f}")
