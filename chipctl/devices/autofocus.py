"""Image-based autofocus: a coarse-to-fine search over Z on the focus metric of the frames
(chipctl.vision.focus: normalised variance of the lightly blurred frame).

Search: scan Z over `span_um` around the start with `coarse_step_um`, then +-coarse/2 around
the best plane with `fine_step_um`, and finish with a least-squares parabola through the
samples within `fit_half_width_um` of the best one.
The light must be on (and something fluorescent in view) while it runs.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from chipctl.devices.interfaces import Camera, Stage
from chipctl.vision.focus import focus_metric


@dataclass
class FocusResult:
    """The plane found, its metric, and every (z, metric) measured on the way."""

    z_um: float
    metric: float
    samples: list[tuple[float, float]] = field(default_factory=list)


def _measure(camera: Camera, stage: Stage, z: float, timeout_s: float) -> float:
    stage.focus_to(z)
    stage.wait_idle(timeout_s)
    return focus_metric(camera.snap(timeout_s).image)


def _scan(
    camera: Camera, stage: Stage, centre: float, half: float, step: float, timeout_s: float
) -> list[tuple[float, float]]:
    count = int(round(half / step))
    planes = [centre + i * step for i in range(-count, count + 1)]
    return [(z, _measure(camera, stage, z, timeout_s)) for z in planes]


def parabola_peak(samples: list[tuple[float, float]], half_width: float) -> float:
    """Vertex of a least-squares parabola through the samples near the best one (clamped to
    them); the best sample itself when the fit is not a peak."""
    best_z = max(samples, key=lambda s: s[1])[0]
    near = sorted({z: m for z, m in samples if abs(z - best_z) <= half_width + 1e-9}.items())
    if len(near) < 3:
        return best_z
    zs = np.array([z for z, _ in near])
    ms = np.array([m for _, m in near])
    a, b, _ = np.polyfit(zs - best_z, ms, 2)
    if a >= 0:
        return best_z
    return float(best_z + np.clip(-b / (2 * a), zs.min() - best_z, zs.max() - best_z))


def autofocus(
    camera: Camera,
    stage: Stage,
    *,
    span_um: float = 60.0,
    coarse_step_um: float = 2.0,  # under 40x / 0.95 the depth of field is ~0.6 um: a 5 um step
    fine_step_um: float = 0.5,    # can fall between a plane's flanks and pick a noise peak
    fit_half_width_um: float = 1.0,
    roi: tuple[int, int, int, int] | None = None,
    timeout_s: float = 10.0,
) -> FocusResult:
    """Find the focal plane near the current Z, move there, and return it."""
    start = stage.focus()
    previous_roi: Any = getattr(camera, "roi", None)
    if roi is not None and hasattr(camera, "roi"):
        camera.roi = roi
    try:
        samples = _scan(camera, stage, start, span_um / 2, coarse_step_um, timeout_s)
        best = max(samples, key=lambda s: s[1])[0]
        half = fine_step_um * math.ceil(coarse_step_um / 2 / fine_step_um)
        fine = _scan(camera, stage, best, half, fine_step_um, timeout_s)
        samples += fine
        z = parabola_peak(fine, fit_half_width_um)
        stage.focus_to(z)
        stage.wait_idle(timeout_s)
    finally:
        if roi is not None and previous_roi is not None:
            camera.roi = previous_roi  # type: ignore[attr-defined]
    return FocusResult(z_um=z, metric=max(m for _, m in samples), samples=samples)
