"""The simulated sample from a sample file: parsing (FILE:LINE), what it changes on the chip,
brightness that follows size, co-expression, and the command line."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from scope_support import ConstantFlow, ManualClock

from chipctl.cli.main import main
from hardware_sim.bench import DEFAULT_REAGENTS, SimBench
from hardware_sim.chip import default_chip
from hardware_sim.optics import Renderer, View
from hardware_sim.population import draw_markers, draw_sites
from hardware_sim.sample import SampleError, load_sample
from hardware_sim.world import World

ROOT = Path(__file__).resolve().parents[1]


def write(tmp_path: Path, text: str, name: str = "sample.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def test_shipped_samples_load_and_span_two_decades() -> None:
    samples = [load_sample(p) for p in sorted((ROOT / "samples").glob("*.yaml"))]
    assert len(samples) >= 5
    concentrations = [s.vesicles_per_ml for s in samples]
    assert max(concentrations) / min(concentrations) >= 100
    assert len({s.co_expression for s in samples}) >= 3
    assert len({s.size_median_nm for s in samples}) >= 4
    batch7 = load_sample(ROOT / "samples" / "msc_cm_batch7.yaml")
    assert batch7.vesicles_per_ml == 3.0e8 and batch7.markers["CD63"] == 0.75
    assert (batch7.size_median_nm, batch7.size_gsd) == (90.0, 1.5)
    assert batch7.free_protein_ug_ml == 12.0 and batch7.labelling_efficiency == 0.85
    assert batch7.description == "MSC-CM batch 7, 1:10"


@pytest.mark.parametrize(("text", "line", "words"), [
    ("concentration: lots\n", 1, "concentration must be particles per mL"),
    ("name: x\nconcentration: 1e8 /mL\nmarkers: {CD9: 1.5}\n", 3, "fraction 0..1"),
    ("concentration: 1e8 /mL\nmarkers:\n  CD99: 0.5\n", 3, "unknown marker 'CD99'"),
    ("concentration: 1e8 /mL\nsize_nm: {median: 90, sd: 3}\n", 2, "size_nm is"),
    ("concentration: 1e8 /mL\ncolour: red\n", 2, "unknown key 'colour'"),
    ("concentration: 1e8 /mL\nconcentration: 2e8 /mL\n", 2, "given twice"),
    ("concentration: 1e8 /mL\nfree_protein: 12\n", 2, "with its unit"),
    ("concentration: nan /mL\n", 1, "concentration must be"),
    ("concentration: 1e8 /mL\nco_expression: [1]\n", 2, "fraction 0..1"),
    ("name: x\n", 1, "missing 'concentration'"),
    ("concentration: [1e8\n", 2, "not valid YAML"),
])
def test_bad_sample_files_name_file_and_line(tmp_path: Path, text: str, line: int,
                                             words: str) -> None:
    path = write(tmp_path, text)
    with pytest.raises(SampleError) as caught:
        load_sample(path)
    assert str(caught.value).startswith(f"{path}:{line}: ") and words in str(caught.value)


def test_run_with_a_bad_sample_file_exits_2_naming_file_and_line(tmp_path: Path,
                                                                 capsys) -> None:
    bad = write(tmp_path, "concentration: 1e8 /mL\nmarkers: {CD9: 2}\n", "bad.yaml")
    code = main(["run", "quickstart", "--sim", "--sample", str(bad), "--runs-dir",
                 str(tmp_path / "runs")])
    err = capsys.readouterr().err
    assert code == 2 and f"{bad.resolve()}:2: markers.CD9 must be a fraction" in err
    assert "Traceback" not in err
    assert main(["run", "quickstart", "--bench", str(ROOT / "tests/data/bench_offline.yaml"),
                 "--sample", str(bad)]) == 2  # a real bench has a real sample
    assert "--sample describes the simulated sample" in capsys.readouterr().err


def test_default_sample_stays_as_today() -> None:
    bench = SimBench(seed=1).start()
    try:
        assert bench.world.reagents["sample"] == DEFAULT_REAGENTS["sample"]
        assert DEFAULT_REAGENTS["sample"].vesicles_per_ml == 1e8
        assert DEFAULT_REAGENTS["sample"].markers == {"CD9": 0.5, "CD63": 0.8, "CD81": 0.7}
        assert "capture_efficiency" not in bench.bench_document()["chip"]
    finally:
        bench.stop()


def captured(path: Path, seconds: float = 600.0, seed: int = 3) -> World:
    world = World(clock=ManualClock(), seed=seed)  # type: ignore[arg-type]
    world.chip = default_chip(seed=seed, debris_per_mm2=0)
    sample = load_sample(path)
    world.reagents["sample"] = sample
    world.pumps["p"] = ConstantFlow("sample", 5.0)
    world.advance()
    for _ in range(int(seconds / 20)):
        world.clock.t += 20  # type: ignore[attr-defined]
        world.advance()
    return world


def test_twice_the_concentration_captures_twice_well_below_saturation(tmp_path: Path) -> None:
    low = captured(write(tmp_path, "concentration: 2.0e7 /mL\n", "low.yaml"))
    high = captured(write(tmp_path, "concentration: 4.0e7 /mL\n", "high.yaml"))
    assert low.chip is not None and high.chip is not None
    assert high.chip.coverage().max() < 0.1  # well below saturation, even at the leading edge
    for zone in ("CD9", "CD63", "CD81"):
        n_low, n_high = low.chip.counts()[zone], high.chip.counts()[zone]
        assert n_low > 1000
        assert n_high / n_low == pytest.approx(2.0, rel=0.08)


def test_brightness_follows_size(tmp_path: Path) -> None:
    """Label copies go with the surface area (Poisson spread): photons ~ diameter^2."""
    path = write(tmp_path, "concentration: 1e8 /mL\nsize_nm: {median: 100, gsd: 1.6}\n"
                           "markers: {CD9: 1.0, CD63: 1.0, CD81: 1.0}\nlabels: [AF555]\n")
    world = captured(path, seconds=300)
    renderer = Renderer(seed=2)
    _, truth = renderer.render(world.chip, View(1500.0, 0.0, 0.0, [("AF555", 0.5)], 0.1))
    d = np.array(truth["diameter_nm"])
    photons = np.array(truth["photons"])
    assert len(d) > 500 and d.std() / d.mean() > 0.3
    slope = np.polyfit(np.log(d), np.log(photons), 1)[0]
    assert 1.6 < slope < 2.4
    small, large = photons[d < 80], photons[d > 130]
    assert np.median(large) > 2.5 * np.median(small)


def test_co_expression_nests_markers() -> None:
    rng = np.random.default_rng(0)
    sample = DEFAULT_REAGENTS["sample"]
    nested = draw_markers(rng, type(sample)("s", 1.0, {"CD9": 0.3, "CD81": 0.9},
                                            co_expression=1.0), 20000)
    independent = draw_markers(rng, type(sample)("s", 1.0, {"CD9": 0.3, "CD81": 0.9}), 20000)
    for drawn in (nested, independent):
        assert drawn[:, 0].mean() == pytest.approx(0.3, abs=0.02)  # marginals kept
        assert drawn[:, 2].mean() == pytest.approx(0.9, abs=0.02)
    assert (nested[:, 0] & ~nested[:, 2]).mean() == 0.0  # CD9+ are all CD81+
    assert (independent[:, 0] & ~independent[:, 2]).mean() == pytest.approx(0.03, abs=0.01)


def test_a_marker_positive_vesicle_carries_at_least_one_epitope() -> None:
    rng = np.random.default_rng(3)
    diameter = np.full(200_000, 40.0)  # mean 6 x 0.16 = 0.96 epitopes: 38 % would draw none
    positive = np.zeros((diameter.size, 3), bool)
    positive[::2, 1] = True
    sites = draw_sites(rng, diameter, positive, copies_at_100nm=6.0)
    assert (sites[positive] >= 1).all() and (sites[~positive] == 0).all()
    lam = 0.96  # the zero-truncated Poisson's mean, lam / (1 - exp(-lam)) = 1.558
    assert sites[positive].mean() == pytest.approx(lam / (1 - np.exp(-lam)), rel=0.01)
