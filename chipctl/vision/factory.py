"""Where counters are made: counting parameters from the camera's bench settings.

The run's streaming pipeline, the GUI's live overlay and a report that must count again all
build their counter here, so they count alike: the PSF sigma and, where the bench states it,
the camera calibration (an uncalibrated camera's noise model is estimated on each frame).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import asdict
from typing import Any

import numpy as np

from chipctl.config.devices import CameraSettings
from chipctl.vision.counter import count_frame
from chipctl.vision.exposures import count_field
from chipctl.vision.model import CameraCalibration, CountParams, CountResult
from chipctl.vision.pipeline import CountingPipeline

Counter = Callable[[np.ndarray], CountResult]


def count_params(camera: CameraSettings | None) -> CountParams:
    """Counting parameters from the camera's settings (defaults without a camera)."""
    if camera is None:
        return CountParams()
    calibration = None
    if camera.e_per_adu is not None:
        calibration = CameraCalibration(offset_adu=camera.offset_adu, e_per_adu=camera.e_per_adu,
                                        read_noise_e=camera.read_noise_e)
    return CountParams(psf_sigma_px=camera.psf_sigma_px, calibration=calibration)


def make_counter(params: CountParams) -> Counter:
    """count_frame bound to `params`."""
    return lambda image: count_frame(image, params)


def make_pipeline(params: CountParams, maxsize: int = 64,
                  counter: Callable[[Any, CountParams], CountResult] = count_field
                  ) -> CountingPipeline:
    """The streaming counter of a run (not started); `counter` stands in for count_frame in
    tests."""
    return CountingPipeline(params, maxsize=maxsize, counter=counter)


def params_record(params: CountParams) -> dict[str, Any]:
    """The parameters as JSON-able data (what a run records in run.json)."""
    return asdict(params)


def params_from_record(record: Mapping[str, Any]) -> CountParams:
    """The parameters a run recorded (params_record's inverse)."""
    data = dict(record)
    calibration = data.pop("calibration", None)
    known = {k: v for k, v in data.items() if k in CountParams.__dataclass_fields__}
    return CountParams(**known, calibration=CameraCalibration(**calibration)
                       if isinstance(calibration, Mapping) else None)
