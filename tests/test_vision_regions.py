"""Per-region counts, densities and colocalization on constructed inputs."""

from __future__ import annotations

import numpy as np
import pytest

from chipctl.vision import CountResult, colocalize, count_by_channel, count_in_regions
from chipctl.vision.regions import whole_frame


def test_counts_and_density_per_region():
    xy = [[10, 10], [20, 10], [99.4, 50], [150, 150], [-0.4, 0]]
    res = CountResult.from_xy(np.array(xy, float), shape=(200, 200))
    regions = {"left": (-0.5, -0.5, 99.5, 199.5), "right": (99.5, -0.5, 199.5, 199.5),
               "tiny": (0, 0, 10, 10)}
    out = count_in_regions(res, regions, pixel_size_um=0.5)
    assert out["left"].count == 4
    assert out["right"].count == 1
    assert out["tiny"].count == 0  # x < x1 is half-open: (10, 10) lies outside
    # left: 100 x 200 px at 0.5 um -> 50 um x 100 um = 0.005 mm^2
    assert out["left"].area_mm2 == pytest.approx(0.005)
    assert out["left"].density_per_mm2 == pytest.approx(800.0)
    assert count_in_regions(res, whole_frame(res), 0.5)["frame"].count == 5


def test_count_by_channel_and_invalid_regions():
    a = CountResult.from_xy(np.array([[1.0, 1.0]]), (10, 10))
    b = CountResult.from_xy(np.empty((0, 2)), (10, 10))
    out = count_by_channel({"CD9": a, "CD63": b}, {"z": (0, 0, 5, 5)}, 1.0)
    assert out["CD9"]["z"].count == 1 and out["CD63"]["z"].density_per_mm2 == 0.0
    with pytest.raises(ValueError):
        count_in_regions(a, {"bad": (5, 0, 1, 5)}, 1.0)
    with pytest.raises(ValueError):
        count_in_regions(a, {"z": (0, 0, 5, 5)}, 0.0)


def _channels():
    # particles: P1 all three markers, P2 CD9+CD63, P3 CD63+CD81, P4 CD9 only,
    # P5 CD81 only, P6 CD63 only; CD81 of P1 is 1.5 px away (inside 2 px)
    cd9 = [[10, 10], [30, 10], [70, 70]]
    cd63 = [[10.5, 10], [30, 11], [50, 50.2], [90, 10]]
    cd81 = [[11.5, 10], [50.5, 50], [10, 90]]
    mk = lambda p: CountResult.from_xy(np.array(p, float), (100, 100))  # noqa: E731
    return {"CD9": mk(cd9), "CD63": mk(cd63), "CD81": mk(cd81)}


def test_colocalization_table():
    co = colocalize(_channels(), max_dist_px=2.0)
    assert co.total == 6
    assert co.exactly("CD9", "CD63", "CD81") == 1
    assert co.exactly("CD9", "CD63") == 1
    assert co.exactly("CD63", "CD81") == 1
    assert co.exactly("CD9") == 1 and co.exactly("CD81") == 1 and co.exactly("CD63") == 1
    t = co.table()
    assert t["CD9"] == 3 and t["CD63"] == 4 and t["CD81"] == 3
    assert t["CD9+CD63"] == 2 and t["CD63+CD81"] == 2 and t["CD9+CD81"] == 1
    assert t["CD9+CD63+CD81"] == 1


def test_colocalization_distance_and_offsets():
    ch = _channels()
    strict = colocalize(ch, max_dist_px=0.6)
    assert strict.co_positive("CD9", "CD63", "CD81") == 0
    shifted = {"A": CountResult.from_xy(np.array([[5.0, 5.0]])),
               "B": CountResult.from_xy(np.array([[8.0, 5.0]]))}
    assert colocalize(shifted).co_positive("A", "B") == 0
    assert colocalize(shifted, offsets={"B": (-3.0, 0.0)}).co_positive("A", "B") == 1


def test_colocalization_is_one_to_one():
    a = CountResult.from_xy(np.array([[0.0, 0.0]]))
    b = CountResult.from_xy(np.array([[0.5, 0.0], [-0.5, 0.0]]))
    co = colocalize({"A": a, "B": b})
    assert co.total == 2 and co.exactly("A", "B") == 1 and co.exactly("B") == 1
