"""Real-time vesicle counting: spot detection, per-region counts, colocalization, tracking."""

from chipctl.vision.coloc import Colocalization, colocalize
from chipctl.vision.counter import count_frame, validate_frame
from chipctl.vision.model import (
    SPOT_DTYPE,
    CameraCalibration,
    CountParams,
    CountResult,
    Spot,
)
from chipctl.vision.pipeline import CountingPipeline, FrameCount, FrameError
from chipctl.vision.regions import RegionCount, count_by_channel, count_in_regions, whole_frame
from chipctl.vision.tracker import TrackUpdate, Vesicle, VesicleTracker

__all__ = [
    "SPOT_DTYPE",
    "CameraCalibration",
    "Colocalization",
    "CountParams",
    "CountResult",
    "CountingPipeline",
    "FrameCount",
    "FrameError",
    "RegionCount",
    "Spot",
    "TrackUpdate",
    "Vesicle",
    "VesicleTracker",
    "colocalize",
    "count_by_channel",
    "count_frame",
    "count_in_regions",
    "validate_frame",
    "whole_frame",
]
