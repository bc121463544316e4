"""Image-based autofocus: sweep the focus drive, score each frame's sharpness, go to the best.

Sharpness is the normalised variance of the image (variance / mean), a standard, robust score for
fluorescence spots on a dark background. A coarse sweep is followed by a fine one around the best
coarse position.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from chipctl.devices import Camera, Stage


def sharpness(image: np.ndarray) -> float:
    """Normalised variance of an image (higher is sharper)."""
    data = np.asarray(image, dtype=np.float64)
    mean = float(data.mean())
    return float(data.var() / mean) if mean > 0 else 0.0


def sweep(stage: Stage, camera: Camera, positions: list[float],
          check: Callable[[], None] = lambda: None) -> tuple[float, float]:
    """Score each z position; returns (best z, best score)."""
    best = (positions[0], -1.0)
    for z in positions:
        check()
        stage.focus_to(z)
        stage.wait_idle()
        score = sharpness(camera.snap().image)
        if score > best[1]:
            best = (z, score)
    return best


def autofocus(stage: Stage, camera: Camera, range_um: float = 20.0, steps: int = 7,
              check: Callable[[], None] = lambda: None) -> float:
    """Coarse then fine sweep around the current focus; leaves the stage at the best z."""
    z0 = stage.focus()
    coarse = list(np.linspace(z0 - range_um / 2, z0 + range_um / 2, steps))
    best, _ = sweep(stage, camera, coarse, check)
    step = range_um / max(1, steps - 1)
    fine = list(np.linspace(best - step / 2, best + step / 2, 5))
    best, _ = sweep(stage, camera, fine, check)
    stage.focus_to(best)
    stage.wait_idle()
    return float(best)
