"""Temporal accumulation: sum K frames of a static field to raise every spot's SNR by ~sqrt(K).

Captured vesicles do not move, so summing consecutive frames of one field (after any stage
drift has been removed) is the cheapest way to count dim vesicles. The sum of K frames from a
camera with offset o, gain g (e-/ADU) and read noise r is statistically a frame from a camera
with offset K*o, the same gain and read noise r*sqrt(K); :func:`sum_frames` returns both.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from chipctl.vision.model import CameraCalibration


def sum_frames(frames: Sequence[np.ndarray], calibration: CameraCalibration | None = None
               ) -> tuple[np.ndarray, CameraCalibration | None]:
    """The float32 sum of equally shaped 2D ``frames`` and the matching calibration."""
    if len(frames) == 0:
        raise ValueError("no frames to sum")
    shape = np.shape(frames[0])
    if any(np.shape(f) != shape for f in frames):
        raise ValueError("frames to sum must all have the same shape")
    total = np.zeros(shape, np.float32)
    for f in frames:
        total += np.asarray(f, np.float32)
    return total, summed_calibration(calibration, len(frames))


def summed_calibration(cal: CameraCalibration | None, k: int) -> CameraCalibration | None:
    """The calibration of the sum of ``k`` frames from a camera calibrated as ``cal``."""
    if cal is None:
        return None
    return CameraCalibration(
        offset_adu=None if cal.offset_adu is None else cal.offset_adu * k,
        e_per_adu=cal.e_per_adu,
        read_noise_e=None if cal.read_noise_e is None else cal.read_noise_e * np.sqrt(k),
    )
