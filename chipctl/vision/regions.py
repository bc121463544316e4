"""Counts and densities per region (capture zone, field of view) and per channel."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from chipctl.vision.model import CountResult

Box = tuple[float, float, float, float]


@dataclass(frozen=True)
class RegionCount:
    """Spots whose centre lies in the box x0 <= x < x1, y0 <= y < y1 (pixel coordinates)."""

    name: str
    count: int
    area_px: float
    area_mm2: float

    @property
    def density_per_mm2(self) -> float:
        """Spots per mm^2 of sample (0 for an empty region)."""
        return self.count / self.area_mm2 if self.area_mm2 > 0 else 0.0


def count_in_regions(result: CountResult, regions: Mapping[str, Box], pixel_size_um: float
                     ) -> dict[str, RegionCount]:
    """Count and density per named region; ``pixel_size_um`` is the pixel size at the sample.

    Boxes are (x0, y0, x1, y1) in pixels with (0, 0) at the centre of the top-left pixel,
    so the whole frame of width W and height H is (-0.5, -0.5, W - 0.5, H - 0.5).
    """
    if not (np.isfinite(pixel_size_um) and pixel_size_um > 0):
        raise ValueError(f"pixel size must be positive, got {pixel_size_um}")
    xy = result.xy
    out = {}
    for name, box in regions.items():
        x0, y0, x1, y1 = (float(v) for v in box)
        if not (x1 > x0 and y1 > y0):
            raise ValueError(f"region {name!r}: need x0 < x1 and y0 < y1, got {box}")
        inside = (xy[:, 0] >= x0) & (xy[:, 0] < x1) & (xy[:, 1] >= y0) & (xy[:, 1] < y1)
        area_px = (x1 - x0) * (y1 - y0)
        out[name] = RegionCount(name, int(inside.sum()), area_px,
                                area_px * (pixel_size_um * 1e-3) ** 2)
    return out


def whole_frame(result: CountResult) -> dict[str, Box]:
    """The region covering the whole frame of ``result``, named "frame"."""
    h, w = result.shape
    return {"frame": (-0.5, -0.5, w - 0.5, h - 0.5)}


def count_by_channel(results: Mapping[str, CountResult], regions: Mapping[str, Box],
                     pixel_size_um: float) -> dict[str, dict[str, RegionCount]]:
    """``count_in_regions`` for each channel: {channel: {region: RegionCount}}."""
    return {ch: count_in_regions(res, regions, pixel_size_um) for ch, res in results.items()}
