"""Real-time vesicle counting: spot detection, per-region counts, colocalization, tracking."""

from chipctl.vision.counter import count_frame, validate_frame
from chipctl.vision.model import (
    SPOT_DTYPE,
    CameraCalibration,
    CountParams,
    CountResult,
    Spot,
)

__all__ = [
    "SPOT_DTYPE",
    "CameraCalibration",
    "CountParams",
    "CountResult",
    "Spot",
    "count_frame",
    "validate_frame",
]
