"""Where a simulated run's concentration loses or gains against the sample file: a diagnostic
that reads the simulator's truth (never done in product code).

For each antibody zone, in its own label's channel, over the fields the report used:

- *detection*: the report's estimated total in view over the frames' true count of labelled
  vesicles in view (photons > 0): the detection-efficiency correction alone;
- *capture*: the analysis's mass-transport efficiency over the simulator's own capture kernel
  for an empty zone at the run's flow rate (its numerical solution, its size classes);
- *epitope-less*: the share of captured marker-positive vesicles with no epitope at all
  (Poisson(copies x (d / 100 nm)^2) = 0): captured, but never bright, so no brightness model
  of the visible spots can count them.

    python -m benchmarks.detection_truth RUN_FOLDER SAMPLE_FILE [--flow 5]
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
from pathlib import Path

import numpy as np

from benchmarks.accuracy import sample_truth
from chipctl.analysis import transport
from hardware_sim.chip import default_chip
from hardware_sim.population import SIZE_BINS, draw_diameters, size_classes
from hardware_sim.sample import load_sample


def epitope_less(sample: Path, flow_ul_min: float) -> tuple[float, float]:
    """(simulator capture efficiency of a marker zone, share of its captures with no epitope)."""
    reagent = load_sample(sample)
    chip = default_chip()
    kernel = chip.capture_kernel(reagent, flow_ul_min)
    columns = chip._columns(reagent)
    rng = np.random.default_rng(0)
    per_class = np.zeros(SIZE_BINS)
    for k, (zone, size, condition, _) in enumerate(columns):
        if zone == 1 and condition is not None and condition[1]:
            per_class[size] += kernel[k].sum()
    empty = np.array([np.mean(np.exp(-chip.copies_at_100nm * (draw_diameters(
        rng, reagent, np.full(20000, k)) / 100.0) ** 2)) for k in range(SIZE_BINS)])
    efficiency = per_class.sum() / SIZE_BINS / (flow_ul_min * 1e9 / 60)
    return float(efficiency), float(per_class @ empty / per_class.sum())


def model_efficiency(sample: Path, flow_ul_min: float, sizes: transport.SizeDistribution
                     ) -> float:
    """The analysis's efficiency of the same zone (the default chip's geometry)."""
    chip = default_chip()
    z = chip.zones[1]
    model = transport.CaptureModel(transport.Channel(chip.channel_width_um,
                                                     chip.channel_height_um),
                                   transport.Zone(z.width_um, z.height_um, (z.x_um, z.y_um)),
                                   sizes)
    return model.efficiency(flow_ul_min)


def main(argv: list[str] | None = None) -> int:
    """Print the decomposition for one run folder."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("run", type=Path)
    parser.add_argument("sample", type=Path)
    parser.add_argument("--flow", type=float, default=5.0, help="capture flow, uL/min")
    args = parser.parse_args(argv)
    report = json.loads((args.run / "report.json").read_text())
    rows = list(csv.DictReader((args.run / "counts.csv").open()))
    truth = sample_truth(args.sample)
    reagent = load_sample(args.sample)
    sim_eff, empty = epitope_less(args.sample, args.flow)
    sizes = transport.SizeDistribution.lognormal(reagent.size_median_nm, reagent.size_gsd)
    model_eff = model_efficiency(args.sample, args.flow, sizes)
    four = transport.SizeDistribution(tuple(float(d) for d in size_classes(reagent)),
                                      (1.0,) * SIZE_BINS)
    print(f"{args.sample.name}: capture efficiency model {model_eff:.5f} (on the simulator's "
          f"{SIZE_BINS} size classes {model_efficiency(args.sample, args.flow, four):.5f}), "
          f"simulator {sim_eff:.5f}: model / simulator {model_eff / sim_eff:.3f}; "
          f"epitope-less captures {100 * empty:.1f} %")
    print("zone | detected | true labelled in view | estimated in view | detection / truth | "
          "report / truth | expected from capture and epitope-less")
    step = max(int(r["step"]) for r in rows)
    for r in report["results"]:
        true_in_view = sum(int(c["true_count"]) for c in rows if int(c["step"]) == step and
                           c["zone"] == r["zone"] and c["channel"] == r["channel"] and
                           c.get("true_count"))
        want = truth["per_ml"] * truth["markers"][r["marker"]]
        expect = sim_eff / model_eff * (1 - empty)
        print(f"{r['zone']:7s} | {r['detected']:8d} | {true_in_view:8d} | "
              f"{r['estimated_in_view']:10.0f} | {r['estimated_in_view'] / true_in_view:6.3f} | "
              f"{r['per_ml'] / want:6.3f} | {expect:6.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
