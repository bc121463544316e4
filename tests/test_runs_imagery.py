"""Image QC helpers: drift from spot positions, colocalization pairing, capture rate fits."""

from __future__ import annotations

import numpy as np
import pytest

from chipctl.analysis.imagery import drift_px, pair_fraction


def test_drift_is_found_from_spots_that_stay_while_new_ones_arrive() -> None:
    rng = np.random.default_rng(3)
    early = rng.uniform(0, 512, (300, 2))
    arrived = rng.uniform(0, 512, (900, 2))
    late = np.vstack([early + [2.6, -1.4], arrived]) + rng.normal(0, 0.1, (1200, 2))
    shift = drift_px(early, late)
    assert shift is not None
    assert shift == pytest.approx((2.6, -1.4), abs=0.15)
    still = drift_px(early, np.vstack([early, arrived]))
    assert still == pytest.approx((0.0, 0.0), abs=0.05)
    assert drift_px(early, rng.uniform(0, 512, (5, 2))) is None


def test_pairing_counts_points_with_a_partner_within_the_radius() -> None:
    a = np.array([[10.0, 10.0], [50.0, 50.0], [90.0, 90.0]])
    b = np.array([[11.0, 10.5], [90.0, 93.0]])
    assert pair_fraction(a, b, radius=2.0) == 1
    assert pair_fraction(a, b, radius=3.5) == 2
    assert pair_fraction(a, np.empty((0, 2))) == 0


def test_capture_rate_is_fitted_per_step() -> None:
    from chipctl.analysis.counts import Geometry, kinetics

    rng = np.random.default_rng(5)
    rows = []
    for step, rate_per_s, t0 in ((1, 2.0, 0.0), (2, 6.0, 600.0)):
        for i in range(10):
            t = t0 + 60.0 * i
            rows.append({"t_s": t, "step": step, "zone": "CD63", "channel": "AF555", "field": 0,
                         "count": int(rng.poisson(100 + rate_per_s * (t - t0)))})
    fits = kinetics(rows, Geometry(0.65, 512, 512))
    assert [(k.step, len(k.t_s)) for k in fits] == [(1, 10), (2, 10)]
    for fit, per_min in zip(fits, (120.0, 360.0), strict=True):
        assert fit.rate_ci95[0] < per_min < fit.rate_ci95[1]
        assert fit.rate_ci95[1] - fit.rate_ci95[0] < 0.4 * per_min
        assert fit.regime == "linear" and fit.k_ci95[0] == 0  # no plateau in view
        assert fit.rate_per_mm2_min == pytest.approx(fit.rate_per_min / (0.65 * 0.512) ** 2)
