"""End-to-end accuracy of what a report says, over simulated runs of several samples and seeds.

Each run goes through the public command line as a scientist's would:
`chipctl run PROTOCOL --sim --sample FILE --seed S`, then `chipctl runs report`. The truth is
read from the sample file only (concentration x marker fraction; co-expression from its
marker fractions and co_expression), never from the simulator's internals. What the user would
know and enter about the sample (sizes from NTA, the dilution, a measured labelling efficiency)
is passed as `--info`, from the same file, each measured value off the truth by a seeded draw
of its stated uncertainty (NTA median 5 %, labelling 5 %); the simulated chip and syringes are
made within their maker's tolerance (hardware_sim.manufacturing) while the bench file gives their
drawing. The 95 % interval is then judged against what it claims to cover.

Printed per marker: median relative bias of the concentration and the 95 % interval's coverage,
each beside the raw (uncorrected: detected counts, no detection or isotype correction) figure;
co-expression error (corrected and raw matched fraction). Kinetics: the stopped-flow protocol
(protocols/stopped_flow_kinetics.yaml) on every sample and `--kinetics-seeds` seeds, at
`--kinetics-speed` (a frame per minute of protocol time must fit in the wall time); its rate
constant, plateau and initial rate against the same fit of the simulator's per-frame true counts,
for the detected spots (raw) and the crowding-corrected estimates, with the fits that leave the
rate constant undetermined. Targets (issue 14): |bias| <= 10 %, coverage 90-98 %,
co-expression within 0.05, rate constant within 20 %.

Each run has a seed of its own (100 x the sample's place + 1..N), so each is made on a chip of its
own (the simulated chip as built is one draw per seed): with the same seeds for every sample,
one thin chip would push every sample's first run the same way.

    python -m benchmarks.accuracy                      # 5 samples x 4 seeds = 20 panel runs
    python -m benchmarks.accuracy --seeds 2 --samples samples/a.yaml samples/b.yaml
    python -m benchmarks.accuracy --seeds 0            # the kinetics runs only
    python -m benchmarks.accuracy --seeds 10 --keep ~/acc --acquire-only  # record (resumable)
    python -m benchmarks.accuracy --seeds 10 --keep ~/acc   # report the kept runs (and any left)
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import json
import math
import statistics
import subprocess
import sys
import tempfile
import zlib
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import yaml
from scipy import stats

from chipctl.analysis.kinetics import fit_kinetics
from chipctl.config.units import to_unit

ROOT = Path(__file__).resolve().parents[1]
DENSE_PER_ML = 3e8  # samples above this run slower (run_speed)
TARGETS = "targets: |bias| <= 10 %, coverage 90-98 %, co-expression <= 0.05, k within 20 %"


def chipctl(*args: str, timeout: float = 900) -> subprocess.CompletedProcess[str]:
    """The public command line, as a user runs it."""
    return subprocess.run([sys.executable, "-m", "chipctl", *args], capture_output=True,
                          text=True, timeout=timeout, cwd=ROOT, stdin=subprocess.DEVNULL)


def sample_truth(path: Path) -> dict[str, Any]:
    """What the sample file says: concentration per mL, marker fractions, sizes, labelling."""
    data = yaml.safe_load(path.read_text())
    conc = data["concentration"]
    per_ml = float(conc) if isinstance(conc, int | float) else to_unit(str(conc), "1/mL")
    size = data.get("size_nm") or {}
    return {"name": str(data.get("name") or path.stem), "per_ml": per_ml,
            "markers": {str(k): float(v) for k, v in data["markers"].items()},
            "co_expression": float(data.get("co_expression") or 0.0),
            "labelling": data.get("labelling_efficiency"), "median_nm": size.get("median"),
            "gsd": size.get("gsd")}


def coexpression_truth(truth: dict[str, Any], marker: str, other: str) -> float:
    """P(other | marker) as the sample file defines co_expression c: each marker of a vesicle
    follows one shared uniform with probability c, else its own (independent at 0, maximally
    nested at 1). Two markers both follow the shared one with probability c^2, so the
    fraction is quadratic in c, not linear (at c = 0.5 the linear form is 0.04-0.10 high)."""
    fa, fb = truth["markers"][marker], truth["markers"][other]
    nested = min(fa, fb) / fa
    both = truth["co_expression"] ** 2
    return (1 - both) * fb + both * nested


NTA_MEDIAN_RSD = 0.05  # NTA's median diameter, one sd (chipctl's default size uncertainty)
LABELLING_RSD = 0.05  # a labelling efficiency measured on a reference (chipctl's default)


def measured(truth: dict[str, Any], seed: int) -> dict[str, Any]:
    """What the scientist measured of the sample before the run: the size by NTA and the
    labelling efficiency, each off the truth by one seeded draw of its stated uncertainty
    (the interval claims to cover exactly that; entering the truth itself would test nothing)."""
    rng = np.random.default_rng([seed, zlib.crc32(truth["name"].encode())])
    z_size, z_label = rng.standard_normal(2)
    out = dict(truth)
    if truth["median_nm"]:
        out["median_nm"] = round(float(truth["median_nm"]) * (1 + NTA_MEDIAN_RSD * z_size), 1)
    if truth["labelling"]:
        out["labelling"] = round(min(1.0, float(truth["labelling"]) * (1 + LABELLING_RSD
                                                                          * z_label)), 3)
    return out


def info_args(entered: dict[str, Any]) -> list[str]:
    """What a user knows of the sample and enters with the run (``measured``)."""
    out = []
    if entered["median_nm"]:
        out += ["--info", f"size_median_nm={entered['median_nm']}"]
    if entered["gsd"]:
        out += ["--info", f"size_gsd={entered['gsd']}"]
    if entered["labelling"]:
        out += ["--info", f"labelling_efficiency={entered['labelling']}",
                "--info", f"labelling_rsd={LABELLING_RSD}"]
    return out


def run_speed(truth: dict[str, Any], speed: float) -> float:
    """The speed factor for a sample: a dense one (1e9/mL) asks the simulator for ~6x the
    capture work of 3e8/mL per simulated second, more than one loaded core gives at 300x."""
    return min(speed, speed * DENSE_PER_ML / truth["per_ml"])


def one_run(protocol: str, sample: Path, seed: int, speed: float, runs_dir: Path,
            truth: dict[str, Any], report: bool = True, report_only: bool = False
            ) -> dict[str, Any] | str | None:
    """Run, report, and return report.json (or why not). A run the simulator could not keep
    up with (a device it serves timed out) is tried once more at a third of the speed, and
    says so: the simulated truth does not depend on the speed. A completed run already
    recorded in `runs_dir` (``--keep``) is reported again with today's analysis, not rerun.
    Without `report`, only runs (None once the run completed)."""
    if completed(runs_dir):
        return _report(runs_dir) if report else None
    if report_only:
        return "not recorded yet"
    got = _run(protocol, sample, seed, speed, runs_dir, truth)
    if isinstance(got, str) and ("device lost" in got or "timeout" in got):
        print(f"{sample.name} seed {seed}: at {speed:g}x {got.splitlines()[0][-140:]}; "
              f"again at {speed / 3:g}x", flush=True)
        got = _run(protocol, sample, seed, speed / 3, runs_dir, truth)
    return got if got is not None or not report else _report(runs_dir)


def _run(protocol: str, sample: Path, seed: int, speed: float, runs_dir: Path,
         truth: dict[str, Any]) -> str | None:
    """Run; why not, or None when it completed."""
    run = chipctl("run", protocol, "--sim", "--sample", str(sample), "--seed", str(seed),
                  "--speed", str(speed), "--runs-dir", str(runs_dir), "--yes",
                  "--param", f"sample={truth['name']}", *info_args(measured(truth, seed)))
    if run.returncode != 0:
        said = [line for line in (run.stdout + run.stderr).splitlines()
                if line.startswith(("run failed", "run aborted"))]
        return f"run failed ({run.returncode}): " + (said[-1][:300] if said else
                                                     (run.stderr or run.stdout).strip()[-300:])
    return None


def completed(runs_dir: Path) -> bool:
    """Whether the last run recorded in `runs_dir` completed."""
    runs = sorted(runs_dir.glob("*/run.json")) if runs_dir.is_dir() else []
    return bool(runs) and json.loads(runs[-1].read_text()).get("status") == "completed"


def analysis_code() -> str:
    """A fingerprint of the code a report runs (every chipctl module): a kept report made by
    the same code is read, not made again."""
    digest = hashlib.sha256()
    for path in sorted((ROOT / "chipctl").rglob("*.py")):
        digest.update(path.relative_to(ROOT).as_posix().encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()[:16]


def _report(runs_dir: Path) -> dict[str, Any] | str:
    """`chipctl runs report last` in `runs_dir`, unless its report was made by this code."""
    folder = sorted(runs_dir.glob("*/run.json"))[-1].parent
    made_by, path = folder / "report.analysis", folder / "report.json"
    if path.is_file() and made_by.is_file() and made_by.read_text() == analysis_code():
        return {**json.loads(path.read_text()), "folder": str(folder)}
    report = chipctl("runs", "--runs-dir", str(runs_dir), "report", "last")
    if report.returncode != 0:
        return f"report failed: {report.stderr.strip()[-300:]}"
    path = Path(report.stdout.split("report:", 1)[1].strip()).with_suffix(".json")
    made_by.write_text(analysis_code())
    return {**json.loads(path.read_text()), "folder": str(path.parent)}


def collect(data: dict[str, Any], truth: dict[str, Any], table: dict[str, dict[str, list]]
            ) -> None:
    """Per marker: relative errors, coverage, co-expression errors."""
    for r in data["results"]:
        true = truth["per_ml"] * truth["markers"][r["marker"]]
        row = table.setdefault(r["marker"], {"bias": [], "raw": [], "cover": [],
                                             "cover_raw": [], "coex": [], "coex_raw": []})
        row["bias"].append(r["per_ml"] / true - 1)
        row["raw"].append(r["raw_per_ml"] / true - 1)
        row["cover"].append(r["ci95"][0] <= true <= r["ci95"][1])
        raw_ci = r.get("raw_ci95") or [math.nan, math.nan]
        row["cover_raw"].append(raw_ci[0] <= true <= raw_ci[1])
        for c in r["coexpression"]:
            expect = coexpression_truth(truth, r["marker"], c["other"])
            row["coex"].append(abs(c["fraction"] - expect))
            row["coex_raw"].append(abs(c["raw_fraction"] - expect))


KINETIC_KEYS = ("k", "k_raw", "plateau", "plateau_raw", "rate", "rate_raw")


def _field_rows(rows: list[dict[str, str]], k: dict[str, Any]) -> list[dict[str, str]]:
    return [r for r in rows if r.get("true_count") and (int(r["step"]), r["zone"], r["channel"],
            int(r["field"])) == (k["step"], k["zone"], k["channel"], k["field"])]


def kinetic_errors(data: dict[str, Any], sample: str) -> dict[str, list[Any]]:
    """Each kinetics fit of a run against the same fit of the simulator's true counts of the
    same frames (counts.csv's true_count): relative errors of the rate constant and the plateau
    (where both fits saturate) and of the initial rate, for the report's fit of the detected
    spots (raw) and for the same fit of the crowding-corrected estimates (corrected); and each
    fit's regime, with the sample, where the true counts saturate but the report's do not."""
    rows = list(csv.DictReader((Path(data["folder"]) / "counts.csv").open()))
    out: dict[str, list[Any]] = {key: [] for key in (*KINETIC_KEYS, "regimes", "undetermined")}
    for k in data["kinetics"]:
        field = _field_rows(rows, k)
        if len(field) != len(k["t_s"]) or len(set(k["t_s"])) < 3:
            continue
        true = fit_kinetics(k["t_s"], [int(r["true_count"]) for r in field], k["t0_s"])
        fits = {"_raw": fit_kinetics(k["t_s"], k["counts"], k["t0_s"])}
        if all(r.get("estimated_count") for r in field):
            fits[""] = fit_kinetics(k["t_s"], [float(r["estimated_count"]) for r in field],
                                    k["t0_s"])
        out["regimes"].append(true.regime)
        for suffix, fit in fits.items():
            if true.rate_per_min > 0:
                out["rate" + suffix].append(fit.rate_per_min / true.rate_per_min - 1)
            if true.regime == "saturating" and fit.regime == "saturating":
                out["k" + suffix].append(fit.k_per_min / true.k_per_min - 1)
                out["plateau" + suffix].append(fit.plateau / true.plateau - 1)
            elif true.regime == "saturating" and suffix == "_raw":
                out["undetermined"].append(f"{sample}: {fit.regime}")
    return out


def _spread(values: list[float]) -> str:
    """Median, interquartile range and extremes, in percent."""
    q = statistics.quantiles(values, n=4) if len(values) > 1 else [values[0]] * 3
    return (f"median {100 * q[1]:+.1f} % (IQR {100 * q[0]:+.1f} to {100 * q[2]:+.1f} %, "
            f"range {100 * min(values):+.1f} to {100 * max(values):+.1f} %)")


def print_kinetics(errors: dict[str, list[Any]]) -> None:
    """Rate constant, plateau and initial rate errors, corrected beside raw, and the fits whose
    regime leaves the rate constant undetermined."""
    regimes = errors["regimes"]
    print(f"\nkinetics: {len(regimes)} fits; the simulator's true counts fit as "
          + ", ".join(f"{regimes.count(r)} {r}" for r in sorted(set(regimes))))
    names = {"k": "rate constant", "plateau": "plateau", "rate": "initial rate"}
    for key, name in names.items():
        for suffix, what in (("", "corrected"), ("_raw", "raw")):
            values = errors[key + suffix]
            print(f"{name:13s} {what:9s}: " + (f"{_spread(values)} over {len(values)} fits"
                                               if values else "no fit to compare"))
    for note in errors["undetermined"]:
        print(f"  rate constant not determined from the detected spots ({note})")


def print_table(table: dict[str, dict[str, list]], runs: int) -> None:
    """Per marker: bias, coverage (with a binomial test of its count against 95 %) and
    co-expression error, each beside the raw figure; then the coverage pooled."""
    print(f"\n{runs} panel runs; {TARGETS}")
    print("marker | median bias (raw) | 95 % coverage (raw) | p vs 95 % | "
          "co-expression error (raw) | n")
    for marker, row in sorted(table.items()):
        coex = (f"{statistics.median(row['coex']):.3f} ({statistics.median(row['coex_raw']):.3f})"
                if row["coex"] else "–")
        n = len(row["cover"])
        print(f"{marker:6s} | {100 * statistics.median(row['bias']):+6.1f} % "
              f"({100 * statistics.median(row['raw']):+6.1f} %) | "
              f"{100 * sum(row['cover']) / n:5.1f} % ({100 * sum(row['cover_raw']) / n:3.0f} %) | "
              f"{stats.binomtest(sum(row['cover']), n, 0.95).pvalue:9.2f} | {coex:>25s} | {n}")
    held = sum(sum(row["cover"]) for row in table.values())
    total = sum(len(row["cover"]) for row in table.values())
    if total:
        print(f"pooled: {held} of {total} intervals hold the truth ({100 * held / total:.1f} %; "
              f"binomial p vs 95 % = {stats.binomtest(held, total, 0.95).pvalue:.2f})")


@dataclass(frozen=True)
class Job:
    """One simulated run of the benchmark."""

    protocol: str
    sample: Path
    seed: int
    speed: float
    runs_dir: Path
    truth: dict[str, Any]
    kinetics: bool


def jobs(args: argparse.Namespace, place: Path) -> list[Job]:
    """Every run, seed by seed across the samples (a benchmark stopped early has as many
    seeds for each sample): seed s of sample i is 100 i + s, a chip of its own."""
    out = []
    samples = [(number, sample, sample_truth(sample)) for number, sample in
               enumerate(args.samples)]
    kinetics = 0 if args.kinetics == "none" else args.kinetics_seeds
    for s in range(1, max(args.seeds, kinetics) + 1):
        for number, sample, truth in samples:
            seed = 100 * number + s
            if s <= args.seeds:
                out.append(Job(args.protocol, sample, seed, run_speed(truth, args.speed),
                               place / f"{args.protocol}-{sample.stem}-{seed}", truth, False))
            if s <= kinetics:
                out.append(Job(args.kinetics, sample, seed, args.kinetics_speed,
                               place / f"{args.kinetics}-{sample.stem}-{seed}", truth, True))
    return out


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark; 2 when the simulator cannot take a sample file."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--samples", nargs="*", type=Path,
                        default=sorted((ROOT / "samples").glob("*.yaml")))
    parser.add_argument("--seeds", type=int, default=4)
    parser.add_argument("--speed", type=float, default=300.0)
    parser.add_argument("--protocol", default="tetraspanin_panel")
    parser.add_argument("--kinetics", default="stopped_flow_kinetics",
                        help="the kinetics protocol ('none': panel runs only)")
    parser.add_argument("--kinetics-seeds", type=int, default=2)
    parser.add_argument("--kinetics-speed", type=float, default=30.0,
                        help="the kinetics runs' speed: a frame every 1 min of protocol time "
                        "needs the frame's wall time x speed below 60 s")
    parser.add_argument("--keep", type=Path, metavar="DIR",
                        help="record the runs under DIR and keep them; a run already "
                        "completed there is reported again (today's analysis), not rerun")
    parser.add_argument("--jobs", type=int, default=1,
                        help="runs (or reports) at a time (the simulated truth does not depend "
                        "on the host's load; a run that times out is retried slower)")
    parser.add_argument("--report-only", action="store_true",
                        help="with --keep: report the runs recorded there, run none")
    parser.add_argument("--acquire-only", action="store_true",
                        help="with --keep: record the runs, report nothing (report them with "
                        "the same command without this)")
    args = parser.parse_args(argv)
    if "--sample" not in chipctl("run", "--help").stdout:
        print("this chipctl's simulated bench takes no sample file (`chipctl run P --sim "
              "--sample FILE`): nothing to measure against until it does")
        return 2
    if len(args.samples) < 1:
        print("no sample files (samples/*.yaml)")
        return 2
    table: dict[str, dict[str, list]] = {}
    k_errors: dict[str, list[Any]] = {key: [] for key in (*KINETIC_KEYS, "regimes",
                                                           "undetermined")}
    done = 0
    with tempfile.TemporaryDirectory() as tmp, ThreadPoolExecutor(args.jobs) as pool:
        todo = jobs(args, args.keep or Path(tmp))
        outcomes = pool.map(lambda job: one_run(job.protocol, job.sample, job.seed, job.speed,
                                                job.runs_dir, job.truth,
                                                not args.acquire_only, args.report_only), todo)
        for job, got in zip(todo, outcomes, strict=True):
            what = f"{job.sample.name}{' kinetics' if job.kinetics else ''} seed {job.seed}"
            if isinstance(got, str) or got is None:
                print(f"{what}: {got or 'recorded'}", flush=True)
                continue
            if job.kinetics:
                for key, values in kinetic_errors(got, job.sample.name).items():
                    k_errors[key] += values
                print(f"{what}: " + "; ".join(
                    f"k {k['k_per_min']:.3g} /min [{k['k_ci95'][0]:.3g}, {k['k_ci95'][1]:.3g}]"
                    f" plateau {k['plateau']:.4g} ({k['regime']}, {len(k['t_s'])} frames over "
                    f"{(k['t_s'][-1] - k['t0_s']) / 60:.0f} min)" for k in got["kinetics"]),
                    flush=True)
                continue
            done += 1
            collect(got, job.truth, table)
            print(f"{what}: " + ", ".join(
                f"{r['marker']} {r['per_ml']:.3g} [{r['ci95'][0]:.3g}, {r['ci95'][1]:.3g}]"
                f" truth {job.truth['per_ml'] * job.truth['markers'][r['marker']]:.3g}"
                for r in got["results"]), flush=True)
    if args.acquire_only:
        return 0
    print_table(table, done)
    print_kinetics(k_errors)
    return 0


if __name__ == "__main__":
    sys.exit(main())
