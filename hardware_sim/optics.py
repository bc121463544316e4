"""What the simulated microscope sees: fluorescence optics and an sCMOS camera model.

Frame model (../shared/reference/spot_counting.md §3.1, §4.1-4.4, §4.6):

    e(x, y) = Poisson(I(x, y) * [B + sum_k n_k q PSF_sigma(x - x_k)]) + N(0, sigma_r(x, y)^2)
    ADU     = offset(x, y) + gain * e / 0.46, clipped to uint16

- I: excitation profile, radial vignetting (45 % fall-off at the corner); it scales both the
  background B (autofluorescence, per dye channel) and the spots.
- PSF: pixel-integrated (erf) Gaussian, sigma^2 = (0.21 lambda_em / NA)^2 + aberration^2,
  widened by defocus as sigma(dz) = sigma0 sqrt(1 + (dz / z_R)^2), dz = stage Z - the chip
  surface under the spot (the chip may be tilted).
- q: detected photons per dye per second at full LED power; n_k: surviving dyes of vesicle k
  in the excited dye. DYE_TABLE holds the NA 0.45 column of §4.3 at 20 W/cm^2; another
  objective scales it (`Optics.photon_scale`): collection efficiency 1 - cos(asin NA) (air)
  times irradiance ~ NA^2 (the LED fills the back aperture: the power through the objective
  follows its etendue). Bleaching scales with the irradiance, per-pixel autofluorescence
  with photons per area times the pixel's area on the chip.
- Objective: 40x / 0.95 air on 6.5 um sCMOS pixels, 0.1625 um per pixel, so a full 2048 px
  field is 333 um and several distinct fields fit on an 800 um zone.
- Camera: offset 100 ADU (+ per-pixel spread), 0.46 e-/ADU, 1.6 e- rms read noise, 0.1 % hot
  (high-variance) pixels plus a few high-dark-current pixels, full well 30,000 e-.
- Debris: large, bright, non-bleaching blobs in every channel; reported apart from the truth.

Speed: the background's shot + read noise uses a Gaussian approximation drawn from a bank of
pre-computed standard normals at a random offset (independent per pixel, cheap per frame);
spots are Poisson-sampled on small patches only (sums of independent Poissons are Poisson).

Pixel coordinates: x = column, y = row, (0, 0) the centre of the top-left pixel. Sensor column
c sees chip x = stage_x + (c - (W - 1) / 2) * pixel_size (rows likewise with y).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from hardware_sim.chip import DYES, Chip


@dataclass(frozen=True)
class Dye:
    """A fluorophore as the simulated optics see it."""

    excitation_nm: float
    emission_nm: float
    photons_per_s: float  # detected photons per dye per s at full LED power
    bleach_per_s: float  # bleaching rate per dye at full LED power
    background_e_per_s: float  # autofluorescence per pixel per s at full LED power


DYE_TABLE = {
    "AF488": Dye(490, 520, 300.0, 0.04, 1500.0),
    "AF555": Dye(553, 568, 80.0, 0.011, 800.0),
    "AF647": Dye(650, 670, 480.0, 0.065, 600.0),
}


REFERENCE_NA = 0.45  # DYE_TABLE's objective: 10x / 0.45 on 6.5 um pixels
REFERENCE_PIXEL_UM = 0.65


def _collection(na: float) -> float:
    """Fraction of a dye's isotropic emission an air objective of aperture `na` collects (x2)."""
    return 1.0 - math.sqrt(1.0 - min(na, 0.999) ** 2)


def dye_for_wavelength(nm: float, window_nm: float = 40.0) -> str | None:
    """The dye an LED of wavelength `nm` excites (nearest excitation peak within a window)."""
    best = min(DYE_TABLE, key=lambda d: abs(DYE_TABLE[d].excitation_nm - nm))
    return best if abs(DYE_TABLE[best].excitation_nm - nm) <= window_nm else None


def erf(x: np.ndarray) -> np.ndarray:
    """Vectorised error function (Abramowitz & Stegun 7.1.26, |error| < 1.5e-7)."""
    sign = np.sign(x)
    a = np.abs(x)
    t = 1.0 / (1.0 + 0.3275911 * a)
    poly = t * (
        0.254829592 + t * (-0.284496736 + t * (1.421413741 + t * (-1.453152027 + t * 1.061405429)))
    )
    return sign * (1.0 - poly * np.exp(-a * a))


@dataclass(frozen=True)
class Optics:
    """Objective, illumination and camera parameters (all overridable from a simulator spec)."""

    pixel_size_um: float = 0.1625  # 6.5 um pixels behind a 40x objective
    sensor: tuple[int, int] = (2048, 2048)  # width, height
    na: float = 0.95
    aberration_um: float = 0.2  # residual aberration, pixel integration, focus jitter
    rayleigh_um: float = 2.5  # defocus at which sigma grows by sqrt(2) (focus drift, coverslip)
    vignetting: float = 0.45
    offset_adu: float = 100.0
    offset_sd_adu: float = 1.0
    e_per_adu: float = 0.46
    read_noise_e: float = 1.6
    hot_fraction: float = 0.001
    hot_noise_e: float = 8.0
    dark_e_per_s: float = 0.5
    hot_dark_fraction: float = 0.0002
    hot_dark_e_per_s: float = 400.0
    full_well_e: float = 30000.0
    debris_dyes: float = 100.0

    def photon_scale(self) -> float:
        """Detected photons per dye relative to DYE_TABLE's NA 0.45 (collection x irradiance)."""
        return _collection(self.na) / _collection(REFERENCE_NA) * self.bleach_scale()

    def bleach_scale(self) -> float:
        """Irradiance (so bleaching rate) relative to DYE_TABLE's NA 0.45."""
        return (self.na / REFERENCE_NA) ** 2

    def background_scale(self) -> float:
        """Autofluorescence per pixel relative to DYE_TABLE's (NA 0.45, 0.65 um pixels)."""
        return self.photon_scale() * (self.pixel_size_um / REFERENCE_PIXEL_UM) ** 2

    def sigma_um(self, dye: str) -> float:
        """In-focus PSF sigma (um) for a dye."""
        diffraction = 0.21 * DYE_TABLE[dye].emission_nm * 1e-3 / self.na
        return math.hypot(diffraction, self.aberration_um)


@dataclass
class View:
    """What the camera is looking at: stage position, excitation and sensor settings."""

    x_um: float
    y_um: float
    z_um: float
    excitation: list[tuple[str, float]]  # (dye, power fraction 0..1)
    exposure_s: float
    roi: tuple[int, int, int, int] | None = None  # x, y, w, h in sensor pixels
    binning: int = 1
    gain: float = 1.0


@dataclass
class Spots:
    """Spot sources of one frame, in sensor-ROI pixel coordinates."""

    cx: np.ndarray
    cy: np.ndarray
    photons: np.ndarray
    sigma: np.ndarray


@dataclass
class Scene:
    """One exposure's view of the chip: its spots and truth, ready to paint."""

    view: View
    roi: tuple[int, int, int, int]
    vesicles: Spots
    debris: Spots
    truth: dict[str, Any]


class Renderer:
    """Renders frames of a chip; holds the fixed-pattern maps of one camera."""

    def __init__(self, optics: Optics | None = None, seed: int = 0) -> None:
        self.optics = o = optics or Optics()
        self.rng = np.random.default_rng(seed)
        w, h = o.sensor
        cols = (np.arange(w, dtype=np.float32) - (w - 1) / 2) / ((w - 1) / 2)
        rows = (np.arange(h, dtype=np.float32) - (h - 1) / 2) / ((h - 1) / 2)
        r2 = (rows[:, None] ** 2 + cols[None, :] ** 2) / 2
        self.vignette = (1.0 - o.vignetting * r2).astype(np.float32)
        read_var = np.full((h, w), o.read_noise_e**2, np.float32)
        hot = self.rng.random((h, w)) < o.hot_fraction
        read_var[hot] = o.hot_noise_e**2
        self.read_var = read_var
        self.offset = (o.offset_adu + 0.5 + self.rng.normal(0, o.offset_sd_adu, (h, w))).astype(
            np.float32
        )
        n_hot = int(o.hot_dark_fraction * w * h)
        self.hot_dark = self.rng.choice(w * h, n_hot, replace=False)
        self.bank = self.rng.standard_normal(w * h + (1 << 20), dtype=np.float32)

    # -- geometry ---------------------------------------------------------------------------
    def roi(self, view: View) -> tuple[int, int, int, int]:
        """The effective ROI (full sensor when None), trimmed to a multiple of binning."""
        w, h = self.optics.sensor
        x, y, rw, rh = view.roi or (0, 0, w, h)
        b = view.binning
        return x, y, rw - rw % b, rh - rh % b

    def to_sensor(self, view: View, x_um: np.ndarray, y_um: np.ndarray) -> tuple[Any, Any]:
        """Chip um -> sensor pixel coordinates (column, row)."""
        w, h = self.optics.sensor
        p = self.optics.pixel_size_um
        return (x_um - view.x_um) / p + (w - 1) / 2, (y_um - view.y_um) / p + (h - 1) / 2

    def field_um(self, view: View, margin_px: float = 0.0) -> tuple[float, float, float, float]:
        """Chip rectangle (x0, y0, x1, y1) seen by the full sensor, plus a margin."""
        w, h = self.optics.sensor
        p = self.optics.pixel_size_um
        hw, hh = (w / 2 + margin_px) * p, (h / 2 + margin_px) * p
        return view.x_um - hw, view.y_um - hh, view.x_um + hw, view.y_um + hh

    def excitation_at(self, cx: np.ndarray, cy: np.ndarray) -> np.ndarray:
        """Relative excitation (vignetting) at sensor coordinates."""
        w, h = self.optics.sensor
        u = (cx - (w - 1) / 2) / ((w - 1) / 2)
        v = (cy - (h - 1) / 2) / ((h - 1) / 2)
        return np.clip(1.0 - self.optics.vignetting * (u * u + v * v) / 2, 0.0, 1.0)

    # -- rendering --------------------------------------------------------------------------
    def render(self, chip: Chip, view: View) -> tuple[np.ndarray, dict[str, Any]]:
        """One frame (uint16, ROI and binning applied) and its ground truth."""
        scene = self.scene(chip, view)
        return self.paint(scene), scene.truth

    def scene(self, chip: Chip, view: View) -> Scene:
        """What the exposure sees of the chip (cheap; reads the chip, draws nothing): a
        simulator holding its bench lock takes this, then paints it without the lock."""
        roi = self.roi(view)
        vesicles, truth = self._vesicle_spots(chip, view, roi)
        debris = self._debris_spots(chip, view, roi)
        truth["debris_xy"] = self._frame_xy(view, roi, debris.cx, debris.cy)
        return Scene(view, roi, vesicles, debris, truth)

    def paint(self, scene: Scene) -> np.ndarray:
        """The frame of a scene: background, spots and the camera's noise (the costly part;
        uses only the renderer's own state)."""
        view, (x0, y0, w, h) = scene.view, scene.roi
        electrons = self._background(view, x0, y0, w, h)
        # Two passes: each patch size follows its own widest PSF (debris are much wider).
        self._add_spots(electrons, scene.vesicles, scene.roi)
        self._add_spots(electrons, scene.debris, scene.roi)
        b = view.binning
        if b > 1:
            electrons = electrons.reshape(h // b, b, w // b, b).sum(axis=(1, 3))
        np.minimum(electrons, self.optics.full_well_e * b * b, out=electrons)
        electrons *= view.gain / self.optics.e_per_adu
        offset = self.offset[y0 : y0 + h : b, x0 : x0 + w : b]
        electrons += offset
        np.clip(electrons, 0, 65535, out=electrons)
        return electrons.astype(np.uint16)

    def _background(self, view: View, x0: int, y0: int, w: int, h: int) -> np.ndarray:
        scale = sum(DYE_TABLE[d].background_e_per_s * p for d, p in view.excitation)
        scale *= view.exposure_s * self.optics.background_scale()
        mean = self.vignette[y0 : y0 + h, x0 : x0 + w] * np.float32(scale)
        mean += np.float32(self.optics.dark_e_per_s * view.exposure_s)
        std = mean + self.read_var[y0 : y0 + h, x0 : x0 + w]
        np.sqrt(std, out=std)
        start = int(self.rng.integers(0, len(self.bank) - w * h))
        std *= self.bank[start : start + w * h].reshape(h, w)
        mean += std
        self._hot_dark(mean, view, x0, y0, w, h)
        return mean

    def _hot_dark(self, image: np.ndarray, view: View, x0: int, y0: int, w: int, h: int) -> None:
        sw = self.optics.sensor[0]
        rows, cols = np.divmod(self.hot_dark, sw)
        keep = (rows >= y0) & (rows < y0 + h) & (cols >= x0) & (cols < x0 + w)
        dark = self.optics.hot_dark_e_per_s * view.exposure_s
        image[rows[keep] - y0, cols[keep] - x0] += self.rng.poisson(dark, int(keep.sum()))

    def _sigma_px(self, chip: Chip, view: View, x: np.ndarray, y: np.ndarray, base: float) -> Any:
        dz = view.z_um - (chip.surface_z_um + chip.tilt[0] * x + chip.tilt[1] * y)
        blur = np.sqrt(1.0 + (dz / self.optics.rayleigh_um) ** 2)
        return base * blur / self.optics.pixel_size_um

    def _in_roi(self, cx: np.ndarray, cy: np.ndarray, roi: tuple[int, int, int, int]) -> Any:
        x0, y0, w, h = roi
        return (cx >= x0 - 0.5) & (cx < x0 + w - 0.5) & (cy >= y0 - 0.5) & (cy < y0 + h - 0.5)

    def _frame_xy(self, view: View, roi: tuple[int, int, int, int], cx: Any, cy: Any) -> list:
        inside = self._in_roi(cx, cy, roi)
        b = view.binning
        fx = (cx[inside] - roi[0] - (b - 1) / 2) / b
        fy = (cy[inside] - roi[1] - (b - 1) / 2) / b
        return np.round(np.stack([fx, fy], axis=1), 3).tolist()

    def _vesicle_spots(
        self, chip: Chip, view: View, roi: tuple[int, int, int, int]
    ) -> tuple[Spots, dict[str, Any]]:
        rows = chip.in_box(*self.field_um(view, margin_px=20))
        v = chip.vesicles
        x, y = v.x[rows], v.y[rows]
        cx, cy = self.to_sensor(view, x, y)
        photons = np.zeros(len(rows))
        sigma = np.zeros(len(rows))
        for dye, power in view.excitation:
            d = DYE_TABLE[dye]
            n = v.dyes[rows, DYES.index(dye)]
            photons += n * d.photons_per_s * self.optics.photon_scale() * power * view.exposure_s
            sigma = np.maximum(sigma, self._sigma_px(chip, view, x, y, self.optics.sigma_um(dye)))
        photons *= self.excitation_at(cx, cy)
        inside = self._in_roi(cx, cy, roi)
        visible = inside & (photons > 0)
        truth = {
            "count": int(visible.sum()),
            "xy": self._frame_xy(view, roi, cx[visible], cy[visible]),
            "photons": np.round(photons[visible], 1).tolist(),
            "diameter_nm": np.round(v.diameter[rows][visible], 1).tolist(),
            "markers": v.positive[rows][visible].astype(int).tolist(),
            "captured_in_view": int(inside.sum()),
        }
        return Spots(cx, cy, photons, sigma), truth

    def _debris_spots(self, chip: Chip, view: View, roi: tuple[int, int, int, int]) -> Spots:
        d = chip.debris
        cx, cy = self.to_sensor(view, d.x, d.y)
        x0, y0, w, h = roi
        near = (cx > x0 - 30) & (cx < x0 + w + 30) & (cy > y0 - 30) & (cy < y0 + h + 30)
        per_dye = self.optics.photon_scale() * sum(DYE_TABLE[dye].photons_per_s * p
                                                   for dye, p in view.excitation)
        photons = d.brightness[near] * self.optics.debris_dyes * per_dye * view.exposure_s
        photons = photons * self.excitation_at(cx[near], cy[near])
        base = np.hypot(self.optics.sigma_um("AF555"), d.size_um[near])
        sigma = self._sigma_px(chip, view, d.x[near], d.y[near], 1.0) * base
        return Spots(cx[near], cy[near], photons, sigma)

    def _add_spots(self, image: np.ndarray, spots: Spots, roi: tuple[int, int, int, int]) -> None:
        keep = spots.photons > 0
        if not keep.any():
            return
        x0, y0, w, h = roi
        cx, cy = spots.cx[keep] - x0, spots.cy[keep] - y0
        sigma, photons = spots.sigma[keep], spots.photons[keep]
        half = int(min(16, max(2, math.ceil(3 * float(sigma.max())))))
        near = (cx > -half - 1) & (cx < w + half) & (cy > -half - 1) & (cy < h + half)
        cx, cy, sigma, photons = cx[near], cy[near], sigma[near], photons[near]
        k = 2 * half + 1
        ix = np.floor(cx + 0.5).astype(np.int64) - half
        iy = np.floor(cy + 0.5).astype(np.int64) - half
        wx = _pixel_weights(cx - ix, sigma, k)
        wy = _pixel_weights(cy - iy, sigma, k)
        lam = photons[:, None, None] * wy[:, :, None] * wx[:, None, :]
        counts = self.rng.poisson(lam).astype(np.float32)
        cols = ix[:, None, None] + np.arange(k)[None, None, :]
        rows = iy[:, None, None] + np.arange(k)[None, :, None]
        valid = (counts > 0) & (cols >= 0) & (cols < w) & (rows >= 0) & (rows < h)
        flat = np.broadcast_to(rows, counts.shape) * w + np.broadcast_to(cols, counts.shape)
        np.add.at(image.reshape(-1), flat[valid], counts[valid])


def _pixel_weights(offset: np.ndarray, sigma: np.ndarray, k: int) -> np.ndarray:
    """Fraction of a unit Gaussian (centre `offset` px from patch pixel 0) in each of k pixels."""
    edges = np.arange(k + 1, dtype=np.float64)[None, :] - 0.5 - offset[:, None]
    cdf = 0.5 * erf(edges / (math.sqrt(2.0) * sigma[:, None]))
    return np.diff(cdf, axis=1)


def bleach_field(chip: Chip, renderer: Renderer, view: View, seconds: float) -> None:
    """Photobleach the dyes in the illuminated field for `seconds` of the view's excitation:
    each dye survives with exp(-k x power x seconds x the local excitation), a function of
    the light dose only."""
    with chip.lock:
        _bleach(chip, renderer, view, seconds)


def _bleach(chip: Chip, renderer: Renderer, view: View, seconds: float) -> None:
    if seconds <= 0 or not view.excitation or chip.vesicles.n == 0:
        return
    rows = chip.in_box(*renderer.field_um(view))
    if len(rows) == 0:
        return
    cx, cy = renderer.to_sensor(view, chip.vesicles.x[rows], chip.vesicles.y[rows])
    dose = renderer.excitation_at(cx, cy) * seconds
    for dye, power in view.excitation:
        rate = DYE_TABLE[dye].bleach_per_s * renderer.optics.bleach_scale()
        survival = np.exp(-rate * power * dose)
        chip.bleach(rows, dye, survival)
