"""Capture efficiency from geometry and mass transport, checked against first principles
computed another way: a finite-difference solution of advection-diffusion between plates."""

from __future__ import annotations

import math

import pytest

from benchmarks.analysis_truth import graetz_pde
from chipctl.analysis.transport import (
    LEVEQUE_A,
    CaptureModel,
    Channel,
    FlowSegment,
    SizeDistribution,
    Zone,
    captured_volume_ml,
    collected_fraction,
    diffusivity_um2_s,
    expected_count,
    expected_count_saturating,
    footprint,
    imaged_share,
    saturating_density,
)


def test_stokes_einstein_matches_reference_table() -> None:
    # spot_counting.md 4.5: 16.4, 9.8, 4.9, 3.3 um^2/s for 30, 50, 100, 150 nm at 25 C
    assert diffusivity_um2_s([30, 50, 100, 150]) == pytest.approx([16.4, 9.8, 4.9, 3.3], rel=0.02)


def test_effective_diffusivity_of_a_lognormal_is_the_closed_form() -> None:
    sizes = SizeDistribution.lognormal(90.0, 1.5)
    # mean of d^(-2/3) over a log-normal: median^(-2/3) exp(2 ln^2(gsd) / 9)
    expected = float(diffusivity_um2_s(90.0)) * math.exp(math.log(1.5) ** 2 / 3)
    assert sizes.effective_diffusivity_um2_s() == pytest.approx(expected, rel=1e-6)
    assert sizes.effective_diffusivity_um2_s() > float(diffusivity_um2_s(90.0))


@pytest.mark.parametrize("xi", [1e-4, 1e-3, 1e-2, 0.1])
def test_collected_fraction_matches_the_advection_diffusion_solution(xi: float) -> None:
    numerical = graetz_pde(xi)
    assert collected_fraction(xi) == pytest.approx(numerical, rel=0.005)


def test_the_curvature_correction_matters_where_the_chip_works() -> None:
    xi = 1e-2  # boundary layer a quarter of the channel height
    leveque = LEVEQUE_A * xi ** (2 / 3)
    assert leveque / graetz_pde(xi) - 1 > 0.02


@pytest.mark.parametrize(("xi", "da"), [(1e-3, 3.0), (1e-3, 30.0), (1e-2, 10.0)])
def test_finite_reaction_rate_within_2_5_percent_of_the_pde(xi: float, da: float) -> None:
    # one size, H = 50 um, D from 100 nm; choose the flow so that the zone's Graetz number is xi
    channel, d = Channel(1000.0, 50.0), float(diffusivity_um2_s(100.0))
    length = 800.0
    u = d * length / (xi * 50.0**2)
    flow = u * 1000.0 * 50.0 / (1e9 / 60)
    model = CaptureModel(channel, Zone(length, 1000.0), SizeDistribution.single(100.0),
                         reaction_velocity_um_s=da * d / 50.0)
    assert model.collected(flow, 0.0, length) == pytest.approx(graetz_pde(xi, da), rel=0.025)


def test_reference_worked_example_within_the_curvature_correction() -> None:
    # spot_counting.md 4.5: H 50 um, W 1 mm, L 10 mm, 100 nm, 1 uL/min: ~22 % captured (Leveque)
    model = CaptureModel(Channel(1000.0, 50.0), Zone(10000.0, 1000.0),
                         SizeDistribution.single(100.0))
    eff = model.efficiency(1.0)
    assert eff == pytest.approx(0.22, rel=0.08)
    assert eff < 0.22  # the parabolic profile's correction lowers Leveque's number
    mean_flux = 1e9 * 1e-12 * eff * 1.0 * 1e9 / 60 / (10000.0 * 1000.0)
    assert mean_flux == pytest.approx(3.7e-4, rel=0.1)


def test_reaction_limited_capture_is_k_r_times_area() -> None:
    channel, zone = Channel(1000.0, 50.0), Zone(800.0, 250.0)
    k_r = 1e-4  # um/s, far below the mass-transfer coefficient (~0.4 um/s)
    model = CaptureModel(channel, zone, SizeDistribution.single(100.0), k_r)
    q = 2.0 * 1e9 / 60
    assert model.efficiency(2.0) == pytest.approx(k_r * 800.0 * 250.0 / q, rel=0.01)
    fast = CaptureModel(channel, zone, SizeDistribution.single(100.0), 1e6)
    limited = CaptureModel(channel, zone, SizeDistribution.single(100.0))
    assert fast.efficiency(2.0) == pytest.approx(limited.efficiency(2.0), rel=1e-3)


def test_efficiency_scales_as_flow_to_the_minus_two_thirds_and_zone_width() -> None:
    channel = Channel(1000.0, 50.0)
    model = CaptureModel(channel, Zone(800.0, 250.0), SizeDistribution.lognormal(100.0, 1.4))
    ratio = model.efficiency(1.0) / model.efficiency(8.0)
    assert ratio == pytest.approx(8 ** (2 / 3), rel=0.03)  # (Q^(1/3) / Q), curvature aside
    wide = CaptureModel(channel, Zone(800.0, 500.0), model.sizes)
    assert wide.efficiency(1.0) == pytest.approx(2 * model.efficiency(1.0), rel=1e-9)


def test_fields_tiling_a_zone_share_all_of_it_upstream_first() -> None:
    zone = Zone(800.0, 250.0, center_um=(1000.0, 0.0))
    model = CaptureModel(Channel(1000.0, 50.0), zone, SizeDistribution.single(100.0))
    fps = [footprint(zone, (600.0 + 100.0 + 200.0 * k, 0.0), (200.0, 250.0)) for k in range(4)]
    shares = [model.field_share(2.0, fp) for fp in fps]
    assert sum(shares) == pytest.approx(1.0, abs=1e-9)
    assert shares == sorted(shares, reverse=True)
    # thin boundary layer: the x^(-1/3) flux integrates to x^(2/3)
    leveque = 200 ** (2 / 3) / (800 ** (2 / 3) - 600 ** (2 / 3))
    assert shares[0] / shares[3] == pytest.approx(leveque, rel=0.03)
    assert imaged_share(model, [FlowSegment(2.0, 50.0)], fps[:2]) == pytest.approx(
        shares[0] + shares[1])


def test_footprint_geometry() -> None:
    zone = Zone(800.0, 250.0, center_um=(1000.0, 500.0))
    big = footprint(zone, (1000.0, 500.0), (1331.0, 1331.0))
    assert (big.start_um, big.end_um, big.across_fraction) == (0.0, 800.0, 1.0)
    assert big.area_mm2 == pytest.approx(zone.area_mm2)
    upstream = footprint(zone, (700.0, 500.0), (200.0, 125.0))
    assert (upstream.start_um, upstream.end_um, upstream.across_fraction) == (0.0, 200.0, 0.5)
    reverse = Zone(800.0, 250.0, center_um=(1000.0, 500.0), flow_axis="-x")
    assert footprint(reverse, (700.0, 500.0), (200.0, 250.0)).start_um == 600.0
    outside = footprint(zone, (1000.0, 900.0), (200.0, 200.0))
    assert outside.across_fraction == 0.0 and outside.area_mm2 == 0.0


def test_saturation_reaction_limited_is_first_order_in_time() -> None:
    # k_r << k_M: the wall sees c0, so b(t) = b_m (1 - exp(-k_on c0 t))
    b_m, k_r, c0 = 2.0, 1e-4, 3e10  # per um^2, um/s, per mL
    model = CaptureModel(Channel(1000.0, 50.0), Zone(800.0, 250.0),
                         SizeDistribution.single(100.0), k_r)
    segs = [FlowSegment(2.0, 500.0), FlowSegment(2.0, 500.0)]
    b = saturating_density(model, segs, c0, [100.0, 700.0], b_m)
    t = sum(s.duration_s for s in segs)
    expected = b_m * (1 - math.exp(-(k_r / b_m) * c0 * 1e-12 * t))
    assert b == pytest.approx([expected, expected], rel=0.02)


def test_saturating_count_limits() -> None:
    zone = Zone(800.0, 250.0)
    model = CaptureModel(Channel(1000.0, 50.0), zone, SizeDistribution.lognormal(90.0, 1.5))
    segs = [FlowSegment(2.0, 100.0)]
    fp = footprint(zone, (-200.0, 0.0), (300.0, 250.0))
    free = expected_count(model, segs, 1e9, fp)
    assert expected_count_saturating(model, segs, 1e9, fp, 1e6) == pytest.approx(free, rel=2e-3)
    full = expected_count_saturating(model, segs, 1e12, fp, 0.01)
    assert full == pytest.approx(0.01 * fp.area_mm2 * 1e6, rel=1e-3)
    assert captured_volume_ml(model, segs) == pytest.approx(model.efficiency(2.0) * 0.1)
    reacting = CaptureModel(model.channel, zone, model.sizes, reaction_velocity_um_s=0.2)
    slow = expected_count(reacting, segs, 1e9, fp)
    assert slow < free
    assert expected_count_saturating(reacting, segs, 1e9, fp, 1e6) == pytest.approx(slow, rel=2e-3)


def test_regime_flags_a_zone_outside_the_checked_range() -> None:
    model = CaptureModel(Channel(1000.0, 50.0), Zone(800.0, 250.0),
                         SizeDistribution.single(100.0))
    assert model.regime(2.0).valid and model.regime(2.0).boundary_layer_ratio < 0.2
    assert not model.regime(0.01).valid


@pytest.mark.parametrize(("make", "message"), [
    (lambda: Channel(0.0, 50.0), "positive"),
    (lambda: Zone(800.0, -1.0), "positive"),
    (lambda: SizeDistribution.lognormal(90.0, 0.8), "geometric sd"),
    (lambda: SizeDistribution.from_sample([80.0, -5.0]), "positive"),
    (lambda: SizeDistribution.from_sample([80.0, 90.0], [0.0, 0.0]), "not all zero"),
])
def test_bad_geometry_or_sizes_say_what_is_wrong(make, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        make()
