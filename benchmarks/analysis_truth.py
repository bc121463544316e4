"""Inputs with known answers for the estimation core's tests and benchmark, computed
independently of the simulator and of chipctl.analysis: camera frames of known vesicles
(pixel-integrated Gaussian spots of known photons on a flat background, Poisson shot noise,
Gaussian read noise, offset, gain) and a finite-difference solution of advection-diffusion
between plates (the transport closed form's reference)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.linalg import solve_banded
from scipy.special import erf

from chipctl.vision import CameraCalibration, CountParams, CountResult, count_frame

OFFSET_ADU, E_PER_ADU, READ_NOISE_E = 100.0, 0.46, 1.6
CALIBRATION = CameraCalibration(OFFSET_ADU, E_PER_ADU, READ_NOISE_E)


@dataclass(frozen=True)
class Frame:
    """A rendered frame and its truth: positions (x column, y row) and photons per vesicle."""

    image: np.ndarray
    xy: np.ndarray
    photons: np.ndarray


def render(xy: np.ndarray, photons: np.ndarray, rng: np.random.Generator,
           shape: tuple[int, int] = (512, 512), sigma: float = 1.3,
           background_e: float = 100.0) -> Frame:
    """Spots of ``photons`` detected photoelectrons each at ``xy`` on a flat background."""
    h, w = shape
    rad = int(np.ceil(4 * sigma)) + 1
    d = np.arange(-rad, rad + 1)
    e = np.full(shape, background_e, np.float64)
    cx, cy = np.round(xy[:, 0]).astype(int), np.round(xy[:, 1]).astype(int)
    px, py = cx[:, None] + d, cy[:, None] + d
    s = sigma * np.sqrt(2)
    gx = (erf((px + 0.5 - xy[:, :1]) / s) - erf((px - 0.5 - xy[:, :1]) / s)) / 2
    gy = (erf((py + 0.5 - xy[:, 1:]) / s) - erf((py - 0.5 - xy[:, 1:]) / s)) / 2
    vals = gy[:, :, None] * gx[:, None, :] * photons[:, None, None]
    yy = np.broadcast_to(py[:, :, None], vals.shape)
    xx = np.broadcast_to(px[:, None, :], vals.shape)
    ok = (yy >= 0) & (yy < h) & (xx >= 0) & (xx < w)
    np.add.at(e, (yy[ok], xx[ok]), vals[ok])
    electrons = rng.poisson(e) + rng.normal(0.0, READ_NOISE_E, shape)
    image = np.clip(np.rint(OFFSET_ADU + electrons / E_PER_ADU), 0, 65535).astype(np.uint16)
    return Frame(image, xy, photons)


def uniform_xy(n: int, rng: np.random.Generator, shape: tuple[int, int] = (512, 512),
               border: float = 0.0) -> np.ndarray:
    """``n`` positions uniformly over the frame."""
    return np.column_stack([rng.uniform(border, shape[1] - border, n),
                            rng.uniform(border, shape[0] - border, n)])


def count(frame: Frame, sigma: float = 1.3) -> CountResult:
    """The project's counter on a rendered frame, with the camera calibration."""
    return count_frame(frame.image, CountParams(psf_sigma_px=sigma, calibration=CALIBRATION))


def graetz_pde(xi_end: float, wall_damkohler: float | None = None, n: int = 900,
               steps: int = 1500) -> float:
    """Collected fraction of the stream from 6 eta (1 - eta) dc/dxi = d2c/deta2 with c = 1 at
    the inlet, an absorbing (or reacting, dc/deta = Da c) bottom wall and an inert top wall."""
    s = np.linspace(0, 1, n)
    eta = (np.exp(4 * s) - 1) / (np.exp(4) - 1)  # clustered at the capture wall
    u = 6 * eta * (1 - eta)
    h = np.diff(eta)
    lo, di, up = np.zeros(n), np.zeros(n), np.zeros(n)
    lo[1:-1] = 2 / (h[:-1] * (h[:-1] + h[1:]))
    up[1:-1] = 2 / (h[1:] * (h[:-1] + h[1:]))
    di[1:-1] = -(lo[1:-1] + up[1:-1])
    lo[-1] = 2 / h[-1] ** 2
    di[-1] = -lo[-1]
    c = np.ones(n)
    grid = np.concatenate([[0.0], np.geomspace(xi_end * 1e-7, xi_end, steps)])
    for dxi in np.diff(grid):
        band = np.zeros((3, n))
        band[1] = u / dxi - di
        band[0, 1:] = -up[:-1]
        band[2, :-1] = -lo[1:]
        rhs = u / dxi * c
        band[1, 0] = 1.0 if wall_damkohler is None else 1.0 + wall_damkohler * h[0]
        band[0, 1] = 0.0 if wall_damkohler is None else -1.0
        rhs[0] = 0.0
        c = solve_banded((1, 1), band, rhs)
    return 1.0 - float(np.trapezoid(u * c, eta) / np.trapezoid(u, eta))
