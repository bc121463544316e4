"""The focus metric: how sharp a frame is, for autofocus and for the report's image QC.

Normalised variance (Groen et al. 1985; among the best-ranked measures for fluorescence in
Sun et al. 2004) of the frame after a light Gaussian blur (sigma 1 px) that averages away per-
pixel shot and read noise, which do not depend on focus. Defocus spreads each spot's photons
over a wider PSF, so the variance drops as |dz| grows.
"""

from __future__ import annotations

import cv2
import numpy as np


def focus_metric(image: np.ndarray) -> float:
    """Normalised variance of the lightly blurred frame (higher = sharper)."""
    data = np.asarray(image, dtype=np.float32)
    smooth = cv2.GaussianBlur(data, (0, 0), 1.0)
    mean = float(smooth.mean())
    return float(smooth.var()) / max(mean, 1.0)
