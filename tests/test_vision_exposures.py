"""Several exposures of one field: registration of stage drift, sum, one count."""

from __future__ import annotations

import numpy as np
import pytest
from _vision_helpers import CAL, metrics, synth

from chipctl.vision import (
    CountParams,
    combine,
    count_exposures,
    count_field,
    count_frame,
    register,
)

DRIFT = np.array([[0.0, 0.0], [0.7, -0.4], [1.6, -0.9], [2.4, -1.3]])


def _field(snr: float = 2.0, n: int = 250, seed: int = 21, **kw: object):
    cfg = synth.SynthConfig(shape=(512, 512), n_spots=n, snr=snr)
    return synth.static_field(cfg, 4, np.random.default_rng(seed), **kw)


def test_drift_between_exposures_is_measured_to_a_tenth_of_a_pixel():
    frames, _ = _field(snr=3.0, drift=DRIFT)
    drift = register(frames, CountParams(calibration=CAL))
    assert np.allclose(drift, DRIFT, atol=0.1)


def test_four_registered_exposures_count_dim_vesicles_one_cannot():
    frames, xy = _field(drift=DRIFT)
    single = metrics.score(xy, count_frame(frames[0], CountParams(calibration=CAL)).xy)
    res = count_exposures(frames, CountParams(calibration=CAL))
    four = metrics.score(xy, res.xy)  # positions in the first exposure's pixels
    assert res.exposures == 4 and res.shape == frames[0].shape
    assert four.f1 >= 0.95 and four.f1 > single.f1 + 0.08
    assert four.rmse < 0.5
    unregistered = count_exposures(frames, CountParams(calibration=CAL), drift=np.zeros((4, 2)))
    assert metrics.score(xy, unregistered.xy).f1 < four.f1  # the registration is what helps


def test_bleaching_between_exposures_still_gains():
    frames, xy = _field(drift=DRIFT, bleach=[1.0, 0.8, 0.64, 0.51])
    res = count_exposures(frames, CountParams(calibration=CAL))
    single = count_frame(frames[0], CountParams(calibration=CAL))
    assert metrics.score(xy, res.xy).f1 > metrics.score(xy, single.xy).f1 + 0.03


def test_combined_frame_covers_what_every_exposure_saw():
    frames, _ = _field(snr=7.0, n=80, drift=DRIFT)
    comb = combine(frames, CAL, drift=DRIFT)
    # whole-pixel shifts: columns 0..2, rows -1..0; the first exposure's row 0 is not in all
    assert comb.frame.shape == (512 - 1, 512 - 2)
    assert comb.origin == (0, 1)
    assert comb.calibration.offset_adu == pytest.approx(4 * CAL.offset_adu)
    assert comb.psf_sigma_px > 1.3  # the sub-pixel rest widens the summed spots


def test_one_exposure_is_a_plain_count_and_bad_input_is_refused():
    frames, _ = _field(snr=7.0, n=60)
    assert count_exposures(frames[:1], CountParams(calibration=CAL)).count == count_frame(
        frames[0], CountParams(calibration=CAL)).count
    with pytest.raises(ValueError, match="same shape"):
        count_exposures([frames[0], frames[1][:100]])
    with pytest.raises(ValueError, match="no exposures"):
        count_exposures([])
    with pytest.raises(ValueError, match="do not overlap"):
        combine(frames[:2], CAL, drift=np.array([[0.0, 0.0], [600.0, 0.0]]))


def test_a_pixel_saturated_in_one_exposure_stays_saturated_in_the_sum():
    frames, _ = _field(snr=7.0, n=40, seed=22)
    frames = [f.copy() for f in frames]
    frames[2][200:204, 300:304] = 65535
    res = count_exposures(frames, CountParams(calibration=CAL), drift=np.zeros((4, 2)))
    assert res.rejected["saturated"] >= 1
    assert not np.any(np.hypot(res.xy[:, 0] - 301.5, res.xy[:, 1] - 201.5) < 3)


def test_hot_pixels_fixed_to_the_sensor_do_not_become_spots_in_the_sum():
    # the drift shifts each exposure differently, so a hot pixel's copies land side by side
    cfg = synth.SynthConfig(shape=(512, 512), n_spots=100, snr=4.0, hot_fraction=2e-3)
    frames, xy = synth.static_field(cfg, 4, np.random.default_rng(23), drift=DRIFT)
    res = count_exposures(frames, CountParams(calibration=CAL))
    s = metrics.score(xy, res.xy)
    assert s.fp <= 2 and s.recall > 0.97


def test_count_field_takes_a_frame_or_the_exposures_of_one_field():
    frames, _ = _field(snr=7.0, n=60, drift=DRIFT)
    params = CountParams(calibration=CAL)
    assert count_field(frames[0], params).count == count_frame(frames[0], params).count
    assert count_field(frames, params).exposures == 4
    assert count_field(tuple(frames[:2]), params).exposures == 2
