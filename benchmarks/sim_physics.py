"""The simulated bench's physics, shown: python -m benchmarks.sim_physics [--quick]

1. One protocol and seed at speed 30, 100 and 300: true and counted numbers side by side per
   zone, field and channel (they must agree within counting noise: the light doses only the
   exposures, on the virtual clock, whatever the speed).
2. Captured count against time on the CD63 zone under a steady, concentrated flow, with the
   plateau fitted by scipy, against the site capacity (site density x zone area) and, for a
   reaction-limited chip, Langmuir's tau = site density / (k c0).
3. The fraction of true vesicles counted per channel with the shipped tetraspanin panel's
   exposure and power, at the default sample's density (reference: each >= 0.85).
4. Twenty protocol runs on one long-lived simulator at 300x (the vesicles of every run stay on
   the chip; main failed after 3-6 runs with "device lost" when labelling looped over them).

Bounded: a few minutes on two cores. Figures are printed, never asserted.
"""

from __future__ import annotations

import argparse
import csv
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import yaml
from scipy.optimize import curve_fit
from scipy.spatial import cKDTree

from chipctl.config.bench import load_bench
from chipctl.engine import Engine
from chipctl.protocol import parse_protocol
from chipctl.protocol.model import Image
from chipctl.protocol.script import load_any
from chipctl.run.events import RunEvents, RunState
from chipctl.vision.counter import count_frame
from chipctl.vision.factory import count_params
from hardware_sim.bench import DEFAULT_REAGENTS, SimBench
from hardware_sim.chip import default_chip
from hardware_sim.optics import Renderer, View
from hardware_sim.world import Reagent, World

ROOT = Path(__file__).resolve().parents[1]
ROI = [512, 512, 1024, 1024]
PROTOCOL = """\
schema_version: 1
name: sim physics check
steps:
  - prime: {pump: buffer_pump, volume: 20 uL, rate: 50 uL/min}
  - sample: {pump: sample_pump, volume: 10 uL, rate: 5 uL/min}
  - wash: {pump: buffer_pump, volume: 20 uL, rate: 20 uL/min}
  - stain: {pump: stain_pump, volume: 10 uL, rate: 5 uL/min}
  - incubate: 3 min
  - wash: {pump: buffer_pump, volume: 20 uL, rate: 20 uL/min}
  - image:
      zones: [CD9, CD63]
      fields: 2
      channels:
        - {channel: AF488, exposure: 100 ms, power: 60 %}
        - {channel: AF555, exposure: 120 ms, power: 70 %}
        - {channel: AF647, exposure: 60 ms, power: 40 %}
"""


class SteppedClock:
    """A clock the benchmark sets (simulated seconds)."""

    speed = 1.0

    def __init__(self) -> None:
        self.t = 0.0

    def now(self) -> float:
        return self.t


# -- 1. speed ------------------------------------------------------------------------------
def run_on(bench: SimBench, folder: Path) -> tuple[list[dict[str, str]], float, str]:
    """counts.csv of PROTOCOL on a running simulator, its wall time and how it ended."""
    path = bench.write_bench_file(folder / "bench.yaml")
    document = yaml.safe_load(path.read_text())
    document["devices"]["camera"]["roi"] = ROI
    path.write_text(yaml.safe_dump(document, sort_keys=False))
    engine = Engine(load_bench(path), runs_dir=folder / "runs")
    engine.connect()
    start = time.monotonic()
    try:
        runner = engine.start_run(parse_protocol(PROTOCOL, "check.yaml"), {}, RunEvents())
        state = runner.wait(900)
        record = engine.recorder.folder if engine.recorder else None
    finally:
        engine.close()
    wall = time.monotonic() - start
    if state != RunState.COMPLETED or record is None:
        return [], wall, f"{state} ({getattr(runner, 'reason', '')})"
    with (record / "counts.csv").open() as handle:
        return list(csv.DictReader(handle)), wall, "completed"


def run_at(speed: float, seed: int) -> tuple[list[dict[str, str]], float]:
    """counts.csv of PROTOCOL on a fresh simulator at `speed`, and its wall time."""
    with tempfile.TemporaryDirectory() as tmp:
        bench = SimBench(speed=speed, seed=seed).start()
        try:
            rows, wall, ended = run_on(bench, Path(tmp))
        finally:
            bench.stop()
    if ended != "completed":
        raise SystemExit(f"the run at {speed:g}x ended {ended}")
    return rows, wall


def lifetime_section(runs: int) -> None:
    print(f"\n4. {runs} runs on one simulator at 300x (captured vesicles accumulate)")
    bench = SimBench(speed=300.0, seed=9).start()
    try:
        for i in range(runs):
            with tempfile.TemporaryDirectory() as tmp:
                rows, wall, ended = run_on(bench, Path(tmp))
            on_chip = bench.world.chip.vesicles.n
            print(f"   run {i + 1:>2}: {ended}, {len(rows)} frames, {wall:.1f} s wall, "
                  f"{on_chip} vesicles on the chip")
            if ended != "completed":
                break
    finally:
        bench.stop()


def speeds_section(seed: int, speeds: tuple[float, ...]) -> None:
    print(f"1. one protocol, seed {seed}: true / counted per zone, field, channel")
    results = {s: run_at(s, seed) for s in speeds}
    keys = [(r["zone"], r["field"], r["channel"]) for r in results[speeds[0]][0]]
    header = "  ".join(f"{s:>5g}x true/counted" for s in speeds)
    print(f"   {'zone':<6} {'field':>5} {'channel':<7}  {header}")
    for i, (zone, field, channel) in enumerate(keys):
        cells = "  ".join(f"{int(results[s][0][i]['true_count']):>8} / "
                          f"{int(results[s][0][i]['count']):<7}" for s in speeds)
        print(f"   {zone:<6} {field:>5} {channel:<7}  {cells}")
    for s in speeds:
        rows = results[s][0]
        true = sum(int(r["true_count"]) for r in rows)
        counted = sum(int(r["count"]) for r in rows)
        print(f"   {s:>5g}x: true {true}, counted {counted} ({counted / true:.3f}), "
              f"{results[s][1]:.0f} s wall")
    base = [int(r["count"]) for r in results[speeds[0]][0]]
    for s in speeds[1:]:
        other = [int(r["count"]) for r in results[s][0]]
        z = [(a - b) / np.sqrt(a + b) for a, b in zip(base, other, strict=True) if a + b]
        print(f"   counted at {s:g}x vs {speeds[0]:g}x: mean difference "
              f"{statistics.fmean(z):+.2f} Poisson sd, rms {np.sqrt(np.mean(np.square(z))):.2f}"
              " (reference: |mean| < 1, rms ~ 1 or less; the same seed captures alike)")


# -- 2. saturation ---------------------------------------------------------------------------
def captured_series(on_rate: float, conc: float, site_density: float, seconds: float,
                    step: float) -> tuple[np.ndarray, np.ndarray, float]:
    world = World(clock=SteppedClock(), seed=3)  # type: ignore[arg-type]
    chip = default_chip(seed=3, site_density_per_um2=site_density, on_rate_um_s=on_rate,
                        nonspecific_um_s=0.0, debris_per_mm2=0)
    world.chip = chip
    world.reagents["sample"] = Reagent("sample", conc, {"CD63": 1.0})

    class Flow:
        reagent = "sample"

        def flow_ul_per_min(self, now: float) -> float:
            return 5.0

    world.pumps["p"] = Flow()
    world.advance()
    times, counts = [], []
    while world.clock.t < seconds:  # type: ignore[attr-defined]
        world.clock.t += step  # type: ignore[attr-defined]
        world.advance()
        times.append(world.clock.t)  # type: ignore[attr-defined]
        counts.append(chip.counts()["CD63"])
    return np.array(times), np.array(counts, float), chip.site_capacity(chip.zones[1])


def saturation_section() -> None:
    print("\n2. captured count on the CD63 zone against time (5 uL/min, CD63+ sample)")
    for label, on_rate, conc, density in (
            ("reaction-limited, k = 0.05 um/s, 1e9 /mL", 0.05, 1e9, 0.02),
            ("default chip (k = 100 um/s, transport-limited), 3e8 /mL", 100.0, 3e8, 1.0)):
        t, n, capacity = captured_series(on_rate, conc, density, 6000.0, 100.0)
        (n_max, tau), cov = curve_fit(lambda t, a, b: a * (1 - np.exp(-t / b)), t, n,
                                      p0=(n[-1], t[-1] / 3))
        print(f"   {label}")
        marks = range(0, len(t), max(1, len(t) // 8))
        print("     t (s):    " + " ".join(f"{t[i]:>7.0f}" for i in marks))
        print("     captured: " + " ".join(f"{n[i]:>7.0f}" for i in marks))
        print(f"     fitted plateau {n_max:.0f} +- {np.sqrt(cov[0, 0]):.0f} vs site capacity "
              f"{capacity:.0f} (site density {density:g} /um^2 x 0.64 mm^2): "
              f"{n_max / capacity:.3f}")
        langmuir = density / (on_rate * conc * 1e-12)
        full = t[np.argmax(n >= 0.99 * capacity)] if (n >= 0.99 * capacity).any() else np.nan
        note = (f"Langmuir tau {langmuir:.0f} s: {tau / langmuir:.3f}" if on_rate < 1 else
                f"capacity / initial rate {capacity / (n[0] / t[0]):.0f} s; 99 % full at "
                f"{full:.0f} s (a saturation front moving down the zone, not one exponential)")
        print(f"     fitted tau {tau:.0f} s vs {note}")


# -- 3. detection ----------------------------------------------------------------------------
def detection_section(quick: bool) -> None:
    print("\n3. fraction of true vesicles counted per channel, tetraspanin panel's settings, "
          "default sample")
    protocol = load_any(ROOT / "protocols" / "tetraspanin_panel.yaml")
    image = next(s for s in protocol.flat_steps() if isinstance(s, Image))
    bench = SimBench(seed=5).start()
    try:
        camera = load_bench_document(bench.bench_document())
    finally:
        bench.stop()
    params = count_params(camera)
    chip = captured_default_chip()
    renderer = Renderer(seed=11)
    zones = {"AF488": "CD9", "AF555": "CD63", "AF647": "CD81"}
    for setting in image.channels:
        zone = next(z for z in chip.zones if z.name == zones[setting.channel])
        found = true = 0
        for dx, dy in image.field_offsets()[: 1 if quick else None]:
            view = View(zone.x_um + dx, zone.y_um + dy, 0.0,
                        [(setting.channel, setting.power_pct / 100)],
                        setting.exposure_ms / 1000)
            frame, truth = renderer.render(chip, view)
            result = count_frame(frame, params)
            xy = np.array(truth["xy"]).reshape(-1, 2)
            spots = np.column_stack([result.spots["x"], result.spots["y"]])
            if len(xy) and len(spots):
                distance, _ = cKDTree(spots).query(xy, distance_upper_bound=2.0)
                found += int(np.isfinite(distance).sum())
            true += len(xy)
        fraction = found / true if true else float("nan")
        print(f"   {setting.channel} ({setting.exposure_ms:g} ms, {setting.power_pct:g} %) on "
              f"{zone.name}: {found} of {true} true vesicles counted = {fraction:.3f} "
              "(reference >= 0.85)")


def load_bench_document(document: dict[str, Any]) -> Any:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "bench.yaml"
        path.write_text(yaml.safe_dump(document, sort_keys=False))
        return load_bench(path).camera


class _Flow:
    """A pump delivering `rate` uL/min of `reagent` from `start` to `stop` (simulated s)."""

    def __init__(self, reagent: str, start: float, stop: float, rate: float) -> None:
        self.reagent, self.start, self.stop, self.rate = reagent, start, stop, rate

    def flow_ul_per_min(self, now: float) -> float:
        return self.rate if self.start <= now < self.stop else 0.0


def labelling_section(conc_per_ml: float = 3e9) -> None:
    """Wall time of a long stain over a crowded chip: 600 advances of labelling over every
    captured vesicle (tests/test_chip_capture.py checks what labelling does, on fewer)."""
    world = World(clock=SteppedClock(), seed=3)  # type: ignore[arg-type]
    world.chip = default_chip(seed=3)
    world.reagents = {"sample": Reagent("sample", conc_per_ml, {"CD9": 0.7, "CD63": 0.5},
                                        ("AF488", "AF555")),
                      "detect": Reagent("detect", labels=("AF488",))}
    world.pumps = {"p1": _Flow("sample", 0, 300, 10.0), "p2": _Flow("detect", 300, 1e9, 2.0)}
    world.advance()
    for _ in range(10):  # the capture: 300 s
        world.clock.t += 30.0  # type: ignore[attr-defined]
        world.advance()
    started, captured = time.perf_counter(), world.chip.vesicles.n
    for _ in range(600):  # the stain: 600 s in 1 s advances
        world.clock.t += 1.0  # type: ignore[attr-defined]
        world.advance()
    seconds = time.perf_counter() - started
    print(f"4. labelling: {captured} captured vesicles, 600 advances of a stain: "
          f"{seconds:.2f} s wall ({seconds / 600 * 1e3:.2f} ms per advance)")


def captured_default_chip() -> Any:
    """The default sample through the panel's capture (50 uL at 5 uL/min), fully stained."""
    world = World(clock=SteppedClock(), seed=5)  # type: ignore[arg-type]
    world.chip = default_chip(seed=5)
    world.reagents = dict(DEFAULT_REAGENTS)

    world.pumps = {"sample": _Flow("sample", 0, 600, 5.0), "stain": _Flow("stain", 600, 1200, 2.0)}
    world.advance()
    while world.clock.t < 1800:  # type: ignore[attr-defined]
        world.clock.t += 20  # type: ignore[attr-defined]
        world.advance()
    return world.chip


def main() -> None:
    """Print the sections."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks.sim_physics")
    parser.add_argument("--quick", action="store_true", help="speeds 30 and 300, one field")
    parser.add_argument("--seed", type=int, default=4)
    args = parser.parse_args()
    speeds = (30.0, 300.0) if args.quick else (30.0, 100.0, 300.0)
    speeds_section(args.seed, speeds)
    saturation_section()
    detection_section(args.quick)
    lifetime_section(5 if args.quick else 20)
    labelling_section()


if __name__ == "__main__":
    main()
