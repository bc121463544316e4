"""Capture from sample left standing once the pumps stop: the slab series against a
finite-difference solution of the diffusion equation, the volume it adds to a zone, and the
standing time read from a run's event log (computed stop, next start, the zone's frames)."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from scipy.linalg import solve_banded

from chipctl.analysis.capture import channel_ul, sample_flows
from chipctl.analysis.standing import captured_share
from chipctl.analysis.transport import (
    CaptureModel,
    Channel,
    FlowSegment,
    SizeDistribution,
    Zone,
    captured_volume_ml,
    expected_count,
    footprint,
)
from chipctl.config.bench import load_bench

DATA = Path(__file__).parent / "data"


def slab_by_finite_differences(tau: float, cells: int = 400, steps: int = 4000) -> float:
    """Share captured from a uniform column on [0, 1] with c = 0 at the floor and no flux at
    the ceiling, by implicit Euler in tau on a cell-centred grid (another way than the series)."""
    dz = 1.0 / cells
    dt = tau / steps
    r = dt / dz**2
    main = np.full(cells, 1 + 2 * r)
    main[0] = 1 + 3 * r  # c = 0 half a cell below the first centre (ghost = -c0)
    main[-1] = 1 + r  # no flux through the ceiling
    off = np.full(cells - 1, -r)
    bands = np.vstack([np.r_[0.0, off], main, np.r_[off, 0.0]])
    c = np.ones(cells)
    for _ in range(steps):
        c = solve_banded((1, 1), bands, c)
    return 1.0 - float(c.sum() * dz)


@pytest.mark.parametrize("tau", [0.002, 0.02, 0.1, 0.5, 2.0])
def test_the_series_matches_the_diffusion_equation_solved_another_way(tau: float) -> None:
    assert float(captured_share(tau)) == pytest.approx(slab_by_finite_differences(tau), rel=0.01)


def test_the_share_grows_as_the_root_of_time_then_fills_the_column() -> None:
    assert float(captured_share(1e-4)) == pytest.approx(2 * math.sqrt(1e-4 / math.pi), rel=1e-9)
    late = 1 - captured_share(np.array([2.0, 3.0]))
    # first order, with the slowest mode's rate pi^2 / 4 per unit tau
    assert math.log(late[0] / late[1]) == pytest.approx(math.pi**2 / 4, rel=1e-3)
    assert float(captured_share(0.0)) == 0.0


MODEL = CaptureModel(Channel(1000.0, 50.0), Zone(800.0, 800.0), SizeDistribution.single(100.0))


def test_the_standing_column_over_the_zone_is_what_it_can_give() -> None:
    column_ul = 50.0 * 800.0 * 800.0 * 1e-9
    assert MODEL.standing_ul(1e6) == pytest.approx(column_ul, rel=1e-6)
    d = float(MODEL.sizes.diffusivities_um2_s()[0])
    assert MODEL.standing_ul(10.0) == pytest.approx(
        2 * math.sqrt(d * 10.0 / math.pi) * 800.0 * 800.0 * 1e-9, rel=1e-6)
    flowing = FlowSegment(5.0, 50.0)
    stood = FlowSegment(5.0, 50.0, standing_s=600.0, share=0.5)
    added = captured_volume_ml(MODEL, [stood]) - captured_volume_ml(MODEL, [flowing])
    assert added == pytest.approx(0.5 * MODEL.standing_ul(600.0) * 1e-3, rel=1e-9)


def test_what_stood_lies_evenly_over_the_zone() -> None:
    halves = [footprint(MODEL.zone, (x, 0.0), (400.0, 800.0)) for x in (-200.0, 200.0)]
    only_standing = [FlowSegment(5.0, 1e-9, standing_s=1800.0)]
    upstream, downstream = (expected_count(MODEL, only_standing, 1e9, fp) for fp in halves)
    assert upstream == pytest.approx(downstream, rel=1e-6)
    flowing = [FlowSegment(5.0, 50.0)]
    assert expected_count(MODEL, flowing, 1e9, halves[0]) > 1.5 * expected_count(
        MODEL, flowing, 1e9, halves[1])  # under flow the upstream half takes more


def events(*rows: tuple[str, float, dict[str, Any]]) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for kind, t, extra in rows:
        out.append({"event": kind, "t_s": t, **extra})
    return out


SAMPLE = {"pump": "sample_pump", "direction": "infuse", "rate_ul_min": 5.0, "volume_ul": 50.0}
DONE = {"pump": "sample_pump", "direction": "infuse", "delivered_ul": 50.0, "segments": [50.0]}
WASH = {"pump": "buffer_pump", "direction": "infuse", "rate_ul_min": 20.0, "volume_ul": 30.0}
PARAMS = {"sample_pump": "sample_pump"}


def test_the_standing_time_runs_from_the_pumps_stop_to_the_next_flow() -> None:
    log = events(("step", 0, {"index": 4, "pump": "sample_pump"}), ("pump_start", 100.0, SAMPLE),
                 ("pump_done", 715.0, DONE),  # seen at the next poll, 15 s after the stop
                 ("step", 716, {"index": 5}), ("pump_start", 730.0, WASH))
    (flow,) = sample_flows(log, None, PARAMS)
    assert (flow.stopped_s, flow.resumed_s) == (700.0, 730.0)
    assert flow.segment().standing_s == pytest.approx(30.0)
    assert flow.segment(until_s=710.0).standing_s == pytest.approx(10.0)  # imaged meanwhile


def stain_ran_on(ul_after_the_sample: float) -> list[dict[str, Any]]:
    """Sample and stain at 5 uL/min each; the stain goes on for `ul_after_the_sample`."""
    stain = {"pump": "stain_pump", "direction": "infuse", "rate_ul_min": 5.0, "volume_ul": 100.0}
    end = 600.0 + 60.0 * ul_after_the_sample / 5.0
    return events(("step", 0, {"index": 2, "pump": "sample_pump"}), ("pump_start", 0.0, stain),
                  ("pump_start", 0.0, SAMPLE), ("pump_done", 600.0, DONE),
                  ("pump_done", end, {"pump": "stain_pump", "segments": [50 + ul_after_the_sample],
                                      "delivered_ul": 50.0 + ul_after_the_sample}),
                  ("pump_start", end + 100.0, WASH))


def test_a_sample_pushed_on_by_another_pump_did_not_stand() -> None:
    (flow,) = sample_flows(stain_ran_on(50.0), None, PARAMS)
    assert flow.total_rate_ul_min == pytest.approx(10.0)
    assert flow.segment().standing_s == pytest.approx(100.0)
    assert flow.segment().share == 0.0  # 50 uL of stain pushed it off the zones


def test_what_another_pump_pushes_in_after_the_sample_replaces_it_volume_for_volume() -> None:
    bench = load_bench(DATA / "bench_offline.yaml")
    over_zones = channel_ul(bench)  # 1000 um x 50 um x 5300 um from CD9's edge to isotype's
    assert over_zones == pytest.approx(0.265)
    (flow,) = sample_flows(stain_ran_on(over_zones / 2), bench, PARAMS)
    assert flow.segment().share == pytest.approx(0.5 * 0.5)  # half its share, half left
    (flow,) = sample_flows(stain_ran_on(0.0), bench, PARAMS)
    assert flow.segment().share == pytest.approx(0.5)


def test_a_sample_left_until_the_zone_is_imaged_stands_until_the_frames() -> None:
    with_stain = {"pump": "stain_pump", "direction": "infuse", "rate_ul_min": 5.0,
                  "volume_ul": 5.0}
    log = events(("step", 0, {"index": 2, "pump": "sample_pump"}),
                 ("pump_start", 10.0, with_stain), ("pump_start", 10.0, SAMPLE),
                 ("pump_done", 612.0, DONE),
                 ("pump_done", 70.0, {"pump": "stain_pump", "delivered_ul": 5.0,
                                      "segments": [5.0]}))
    (flow,) = sample_flows(log, None, PARAMS)
    assert flow.segment().standing_s == 0.0  # never imaged: nothing to book
    seg = flow.segment(until_s=1810.0)
    assert seg.standing_s == pytest.approx(1200.0)
    assert seg.share == pytest.approx(0.5)
