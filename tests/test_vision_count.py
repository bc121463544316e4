"""count_frame on simulated frames with ground truth and on edge cases."""

from __future__ import annotations

import numpy as np
import pytest
from _vision_helpers import CAL, metrics, small_frame, synth

from chipctl.vision import (
    CameraCalibration,
    CountParams,
    CountResult,
    Spot,
    count_frame,
    sum_frames,
)


@pytest.mark.parametrize(("snr", "min_f1"), [(4.0, 0.97), (7.0, 0.98)])
@pytest.mark.parametrize("cal", [CAL, None])
def test_counts_and_positions_match_ground_truth(snr, min_f1, cal):
    fr = small_frame(snr, n=150, seed=1)
    res = count_frame(fr.image, CountParams(calibration=cal))
    s = metrics.score(fr.xy, res.xy, max_dist=1.0)
    assert abs(res.count - 150) <= 5
    assert s.f1 >= min_f1
    assert s.rmse < 0.4


def test_dim_spots_are_mostly_found_without_flooding():
    fr = small_frame(2.0, n=150, seed=2)
    res = count_frame(fr.image, CountParams(calibration=CAL))
    s = metrics.score(fr.xy, res.xy, max_dist=2.0)
    assert s.recall > 0.6
    assert s.precision > 0.8


def test_spot_coordinates_centre_of_top_left_pixel_is_origin():
    xy = np.array([[10.0, 20.0], [40.3, 7.6]])
    photons = 100 + synth.render_spots((48, 64), xy, np.array([400.0, 400.0]), 1.3)
    frame = (100 + photons / 0.46).astype(np.uint16)  # noiseless
    res = count_frame(frame, CountParams(calibration=CAL))
    assert res.count == 2
    got = res.xy[np.argsort(res.xy[:, 0])]
    assert np.allclose(got, xy, atol=0.1)
    spot = res.spots_list()[0]
    assert isinstance(spot, Spot) and spot.amplitude > 0 and spot.snr > 5


def test_blank_frame_has_at_most_one_false_positive():
    cfg = synth.SynthConfig(shape=(1024, 1024), n_spots=0, hot_fraction=1e-4)
    fr = synth.make_frame(cfg, np.random.default_rng(3))
    for cal in (CAL, None):
        res = count_frame(fr.image, CountParams(calibration=cal))
        assert res.count <= 1
        assert res.expected_false_positives < 1.0


def test_hot_pixels_are_rejected_not_counted():
    rng = np.random.default_rng(4)
    frame = rng.poisson(200, (256, 256)).astype(np.uint16) + 100
    frame[50, 60] += 3000
    frame[200, 30] += 800
    res = count_frame(frame, CountParams(calibration=CameraCalibration(100, 1.0, 1.0)))
    assert res.count == 0
    assert res.rejected["hot_pixel"] == 2


@pytest.mark.parametrize("row, col", [(1, 60), (0, 90), (120, 1), (254, 200)])
def test_hot_pixel_next_to_the_frame_edge_is_rejected(row, col):
    # Mirrored at the edge, the spike ties with its neighbour in the filtered frame and the
    # local maximum lands on the neighbour, not on the spike.
    rng = np.random.default_rng(8)
    frame = rng.poisson(200, (256, 256)).astype(np.uint16) + 100
    frame[row, col] += 1500
    res = count_frame(frame, CountParams(calibration=CameraCalibration(100, 1.0, 1.0)))
    assert res.count == 0
    assert res.rejected["hot_pixel"] == 1


@pytest.mark.parametrize("seed", [0, 7, 11])
def test_no_hot_pixel_is_counted_even_when_noise_moves_its_filtered_peak(seed):
    # 512 x 512 blank frames with 50x the benchmark's hot-pixel density: noise beside a
    # spike often moves the filtered maximum onto a neighbouring pixel.
    cfg = synth.SynthConfig(shape=(512, 512), n_spots=0, hot_fraction=1e-3)
    f = synth.make_frame(cfg, np.random.default_rng(seed))
    res = count_frame(f.image)
    assert res.rejected["hot_pixel"] > 150
    if res.count:
        dist = np.hypot(*(res.xy[:, None, :] - f.hot_xy[None]).transpose(2, 0, 1))
        assert dist.min() > 2.0, "a hot pixel was counted as a vesicle"


def test_saturated_blob_is_rejected():
    fr = small_frame(7.0, n=40, size=256, seed=5)
    img = fr.image.copy()
    img[100:106, 100:106] = 65535
    res = count_frame(img, CountParams(calibration=CAL))
    assert res.rejected["saturated"] >= 1
    assert not np.any(np.hypot(res.xy[:, 0] - 102.5, res.xy[:, 1] - 102.5) < 3)


def test_debris_larger_than_a_vesicle_is_rejected():
    cfg = synth.SynthConfig(shape=(512, 512), n_spots=60, snr=7.0, debris=3)
    fr = synth.make_frame(cfg, np.random.default_rng(6))
    res = count_frame(fr.image, CountParams(calibration=CAL))
    assert res.rejected["debris"] >= 3
    for x, y in fr.debris_xy:
        assert not np.any(np.hypot(res.xy[:, 0] - x, res.xy[:, 1] - y) < 3)
    assert metrics.score(fr.xy, res.xy).recall > 0.85


def test_one_spot_at_the_border():
    xy = np.array([[0.0, 30.0]])
    rng = np.random.default_rng(7)
    photons = 100 + synth.render_spots((64, 64), xy, np.array([300.0]), 1.3)
    frame = (100 + rng.poisson(photons) / 0.46).astype(np.uint16)
    res = count_frame(frame, CountParams(calibration=CAL))
    assert res.count == 1
    assert np.hypot(*(res.xy[0] - xy[0])) < 1.0


def test_eight_bit_input():
    fr = small_frame(7.0, n=80, size=256, seed=8)
    img8 = np.clip((fr.image.astype(float) - 100) / 2, 0, 255).astype(np.uint8)
    res = count_frame(img8)
    s = metrics.score(fr.xy, res.xy)
    assert s.f1 > 0.9


def test_float_input_equals_integer_input_counts():
    fr = small_frame(7.0, n=80, size=256, seed=9)
    a = count_frame(fr.image, CountParams(calibration=CAL))
    b = count_frame(fr.image.astype(np.float64), CountParams(calibration=CAL))
    assert abs(a.count - b.count) <= 1


@pytest.mark.parametrize("value", [0, 100, 65535])
def test_constant_frames_have_no_spots(value):
    res = count_frame(np.full((128, 128), value, np.uint16))
    assert res.count == 0


@pytest.mark.parametrize("shape", [(1, 1), (3, 5), (8, 8), (1, 200), (17, 9)])
def test_tiny_frames(shape):
    frame = np.random.default_rng(0).poisson(100, shape).astype(np.uint16)
    res = count_frame(frame)
    assert isinstance(res, CountResult) and res.count >= 0


def test_all_background_noise_frame_uncalibrated_low_light():
    frame = np.random.default_rng(10).poisson(20, (1024, 1024)).astype(np.uint16) + 100
    assert count_frame(frame).count <= 2


@pytest.mark.parametrize(
    "bad",
    [np.zeros((4, 4), complex), np.full((8, 8), np.nan), np.zeros((2, 3, 4)),
     np.zeros((0, 5)), np.array(["a"])],
)
def test_invalid_frames_raise_value_error(bad):
    with pytest.raises(ValueError):
        count_frame(bad)


def test_fixed_threshold_bypasses_adaptive_rule():
    fr = small_frame(4.0, n=100, size=256, seed=11)
    res = count_frame(fr.image, CountParams(calibration=CAL, fixed_threshold=6.0))
    assert res.threshold == 6.0
    assert np.all(res.spots["snr"] > 6.0)


def test_undersampled_psf():
    fr = small_frame(7.0, n=100, size=256, seed=12, psf_sigma=0.7)
    res = count_frame(fr.image, CountParams(psf_sigma_px=0.7, calibration=CAL))
    assert metrics.score(fr.xy, res.xy).f1 > 0.95


def test_summing_frames_of_a_static_field_recovers_dim_vesicles():
    cfg = synth.SynthConfig(shape=(512, 512), n_spots=120, snr=2.0)
    frames = synth.same_field_frames(cfg, 4, np.random.default_rng(13))
    single = count_frame(frames[0], CountParams(calibration=CAL))
    total, cal = sum_frames(frames, CAL)
    assert cal.offset_adu == 400.0 and cal.read_noise_e == pytest.approx(3.2)
    summed = count_frame(total, CountParams(calibration=cal))
    assert summed.count > single.count
    assert abs(summed.count - 120) <= 8
    with pytest.raises(ValueError):
        sum_frames([frames[0], frames[0][:10]])


@pytest.mark.parametrize("sigma", [1.6, 2.0])
def test_defocused_field_is_flagged_and_counted_with_the_width_it_shows(sigma):
    fr = small_frame(4.0, n=200, seed=15, psf_sigma=sigma)
    res = count_frame(fr.image, CountParams(calibration=CAL))  # told the in-focus 1.3 px
    assert res.defocused
    assert res.psf_width_px == pytest.approx(sigma, rel=0.1)
    assert res.psf_sigma_px == pytest.approx(sigma, rel=0.1)
    assert metrics.score(fr.xy, res.xy).f1 > 0.97
    assert abs(res.count - 200) <= 6  # wide spots are not split into pairs


def test_in_focus_field_keeps_the_configured_psf():
    fr = small_frame(4.0, n=200, seed=16)
    res = count_frame(fr.image, CountParams(calibration=CAL))
    assert not res.defocused and res.psf_sigma_px == 1.3
    assert res.psf_width_px == pytest.approx(1.3, abs=0.1)


def test_aggregates_of_vesicles_are_rejected_not_counted():
    cfg = synth.SynthConfig(shape=(512, 512), n_spots=150, snr=6.0, aggregates=6)
    fr = synth.make_frame(cfg, np.random.default_rng(17))
    res = count_frame(fr.image, CountParams(calibration=CAL))
    assert res.rejected["aggregate"] >= 5
    on = [np.hypot(res.xy[:, 0] - x, res.xy[:, 1] - y).min() < 4 for x, y in fr.aggregate_xy]
    assert sum(on) <= 1
    assert metrics.score(fr.xy, res.xy).recall > 0.95
