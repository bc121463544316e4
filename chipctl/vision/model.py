"""Value types of the vesicle counter: camera calibration, parameters, spots and results."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

SPOT_DTYPE = np.dtype([
    ("x", "f8"), ("y", "f8"), ("amplitude", "f8"), ("snr", "f8"), ("photons", "f8"),
    ("background", "f8"), ("crlb_x", "f8"), ("crlb_y", "f8"), ("width", "f8"),
    ("multiplicity", "i2"),
])
"""Row layout of :attr:`CountResult.spots`.

x is the column and y the row in pixels, (0, 0) at the centre of the top-left pixel, from the
maximum-likelihood Gaussian fit; ``amplitude`` is the peak above the background (ADU) as the
matched filter measures it (the value the score divides by its noise; for a split detection,
each component's fitted peak); ``snr`` the local SNR score of the detection; ``photons`` the
maximum-likelihood fit's signal in electrons (NaN when the camera gain is unknown and cannot be
estimated); ``background`` the fitted level under the spot (ADU); ``crlb_x``/``crlb_y`` the
Cramer-Rao lower bounds (standard deviations, px) of x and y from the fitted photons and
background; ``width`` the apparent PSF sigma (px) measured from the detection's filtered peak
(NaN where too faint to measure); ``multiplicity`` the number of spots the detection was split
into (1: not split).
"""

REJECTION_KINDS = ("hot_pixel", "saturated", "debris", "aggregate")


@dataclass(frozen=True)
class CameraCalibration:
    """sCMOS calibration: ADU = offset + electrons / e_per_adu, read noise in electrons rms.

    A field set to ``None`` is estimated from the frame itself (photon-transfer fit).
    """

    offset_adu: float | None = 100.0
    e_per_adu: float | None = 0.46
    read_noise_e: float | None = 1.6


@dataclass(frozen=True)
class CountParams:
    """Parameters of :func:`count_frame`; the defaults need no per-image tuning.

    ``calibration=None`` estimates the camera noise model from the frame. The detection
    threshold is chosen per frame from the calibrated null distribution of local maxima:
    it maximizes the expected F1, but is lowered below the level that gives
    ``blank_fp_per_frame`` false positives per 2048 x 2048 pixels only when the frame holds
    significantly more maxima than noise alone would produce. ``fixed_threshold`` (a
    local-SNR value) bypasses the adaptive rule.
    """

    psf_sigma_px: float = 1.3
    calibration: CameraCalibration | None = None
    blank_fp_per_frame: float = 0.3
    min_threshold: float = 3.4  # lowest threshold the adaptive rule may choose
    fixed_threshold: float | None = None
    max_spot_sigma_px: float | None = None  # None: 2 x psf_sigma_px
    saturation_adu: float | None = None  # None: the dtype maximum (integer input)
    reject_hot_pixels: bool = True
    adapt_psf: bool = True  # count a defocused field again with the width its spots show
    background_px: float = 20.0  # smoothing scale of the background estimate

    @property
    def debris_sigma_px(self) -> float:
        """Apparent Gaussian sigma above which a blob counts as debris."""
        return self.max_spot_sigma_px or 2.0 * self.psf_sigma_px


@dataclass(frozen=True)
class Spot:
    """One detected vesicle; x is the column, y the row, amplitude the peak in ADU.

    The other fields are as in :data:`SPOT_DTYPE` (NaN and 1 when not measured).
    """

    x: float
    y: float
    amplitude: float
    snr: float
    photons: float = float("nan")
    background: float = float("nan")
    crlb_x: float = float("nan")
    crlb_y: float = float("nan")
    width: float = float("nan")
    multiplicity: int = 1


@dataclass(frozen=True, eq=False)
class CountResult:
    """Result of counting one frame.

    ``count`` is the number of detected spots (a detection split into two counts two) and
    ``spots`` their rows (:data:`SPOT_DTYPE`); ``split`` how many of them splitting added.
    ``rejected`` counts candidates above threshold that were rejected as hot pixels, saturated
    blobs or debris; ``threshold`` is the local-SNR threshold used and
    ``expected_false_positives`` the number of noise maxima the null model predicts above it.

    ``estimated_count`` (an estimate, not a detection count) corrects ``count`` for vesicles
    hidden in an unresolved neighbour's spot (from the deficit of close pairs against a
    spatially random field, :mod:`chipctl.vision.crowding`) and for the expected false
    positives; ``estimated_count_sd`` is its standard uncertainty. ``crowding`` is the
    fraction of vesicles with a neighbour close enough to merge with (0 sparse, 0.45 at
    30,000 per 2048 x 2048 frame and PSF sigma 1.3 px). ``exposures`` is the number of
    registered exposures summed before counting (:mod:`chipctl.vision.exposures`).
    ``psf_width_px`` is the median apparent PSF sigma of the bright single spots (NaN when
    under 30), ``psf_sigma_px`` the PSF sigma the count used: the configured one, or the
    measured width when the field was out of focus (then ``defocused`` is True).
    """

    count: int
    spots: np.ndarray
    rejected: dict[str, int] = field(default_factory=lambda: dict.fromkeys(REJECTION_KINDS, 0))
    threshold: float = float("nan")
    expected_false_positives: float = float("nan")
    shape: tuple[int, int] = (0, 0)
    split: int = 0
    estimated_count: float = float("nan")
    estimated_count_sd: float = float("nan")
    crowding: float = float("nan")
    exposures: int = 1
    psf_sigma_px: float = float("nan")
    psf_width_px: float = float("nan")
    defocused: bool = False

    @property
    def density_per_mpx(self) -> float:
        """Detected spots per million pixels of the frame (NaN for an unknown shape)."""
        pixels = self.shape[0] * self.shape[1]
        return self.count / pixels * 1e6 if pixels else float("nan")

    def measures(self) -> dict[str, float | int | None]:
        """What a counts row records of this count beside the count itself, so the limit of
        detection can be computed from the record: the local-SNR ``threshold``, ``noise_adu``
        (median amplitude / SNR of the spots: the noise sd the score divided by, in peak ADU;
        None without spots), spots rejected as ``saturated``, the ``psf_sigma_px`` used and the
        crowding-corrected ``estimated_count``."""
        def number(value: float, digits: int) -> float | None:
            return round(float(value), digits) if np.isfinite(value) else None

        noise = float("nan")
        if self.count:
            ratio = self.spots["amplitude"] / self.spots["snr"]
            ratio = ratio[np.isfinite(ratio) & (ratio > 0)]
            noise = float(np.median(ratio)) if ratio.size else noise
        return {"threshold": number(self.threshold, 3), "noise_adu": number(noise, 4),
                "saturated": int(self.rejected.get("saturated", 0)),
                "psf_sigma_px": number(self.psf_sigma_px, 3),
                "estimated_count": number(self.estimated_count, 1)}

    @classmethod
    def from_xy(cls, xy: np.ndarray, shape: tuple[int, int] = (0, 0)) -> CountResult:
        """A result holding spots at ``xy`` (N x 2: x, y), e.g. from another detector."""
        xy = np.asarray(xy, float).reshape(-1, 2)
        spots = empty_spots(len(xy))
        spots["x"], spots["y"] = xy[:, 0], xy[:, 1]
        return cls(len(xy), spots, shape=shape)

    def spots_list(self) -> list[Spot]:
        """The spots as :class:`Spot` objects."""
        return [Spot(float(r["x"]), float(r["y"]), float(r["amplitude"]), float(r["snr"]),
                     float(r["photons"]), float(r["background"]), float(r["crlb_x"]),
                     float(r["crlb_y"]), float(r["width"]), int(r["multiplicity"]))
                for r in self.spots]

    @property
    def xy(self) -> np.ndarray:
        """N x 2 float array of (x, y) positions."""
        return np.column_stack([self.spots["x"], self.spots["y"]]) if self.count else np.empty(
            (0, 2))


def empty_spots(n: int) -> np.ndarray:
    """``n`` spot rows: zero positions, NaN measurements, multiplicity 1."""
    spots = np.zeros(n, dtype=SPOT_DTYPE)
    for name in ("amplitude", "snr", "photons", "background", "crlb_x", "crlb_y", "width"):
        spots[name] = np.nan
    spots["multiplicity"] = 1
    return spots
