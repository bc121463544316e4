"""Capture under flow, solved numerically: advection-diffusion over the channel height with a
Langmuir (finite-site) reaction on the zone's floor.

This is deliberately NOT a closed form (chipctl's analysis uses the Levêque formula): the
concentration c(x, z) of each vesicle class is marched along the zone (x, the flow) by implicit
finite volumes over the height z (a grid clustered at the floor), in Poiseuille flow
u(z) = 6 U z/H (1 - z/H):

    u(z) dc/dx = D d2c/dz2,   c(0, z) = c0,   dc/dz = 0 at the ceiling,
    D dc/dz = k (1 - theta(x)) c   at the floor (the zone),

k the intrinsic capture rate (um/s: on-rate x site density) and theta the fraction of the
zone's binding sites already taken under x. The floor flux integrated over each strip of the
zone is its capture rate per unit inlet concentration. The solution is quasi-steady (the
concentration field settles in well under a second, coverage over minutes), and is solved
again only when the flow or a strip's coverage has changed. Each zone sees the inlet
concentration: the depletion by zones upstream (which capture other sub-populations) is
neglected. Axial diffusion is neglected (Pe >> 1).

Columns: every (zone, class) pair is one column of the stacked banded system, solved at once.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.linalg import solve_banded

NZ = 40  # cells over the channel height
NX_MARCH = 60  # march steps along a zone (graded: fine at the leading edge)
STRETCH = 5.0  # clustering of the z grid at the floor


@dataclass(frozen=True)
class Channel:
    """The channel a zone sits in (um)."""

    width_um: float
    height_um: float


def _z_grid(height: float) -> tuple[np.ndarray, np.ndarray]:
    """Cell faces and centres over the height, clustered at the floor (z = 0)."""
    s = np.linspace(0.0, 1.0, NZ + 1)
    faces = height * np.expm1(STRETCH * s) / np.expm1(STRETCH)
    return faces, (faces[:-1] + faces[1:]) / 2


def floor_flux(channel: Channel, flow_ul_min: float, diffusivity: np.ndarray,
               rate_um_s: np.ndarray, free: np.ndarray, length_um: float) -> np.ndarray:
    """Capture per strip (vesicles/s per vesicle/um^3 of inlet, per um across the flow) for
    every column: `diffusivity`, `rate_um_s` (ncol,), `free` = 1 - theta (ncol, nstrips)."""
    ncol, nstrips = free.shape
    if flow_ul_min <= 0 or ncol == 0:
        return np.zeros((ncol, nstrips))
    h = channel.height_um
    faces, centres = _z_grid(h)
    dz = np.diff(faces)
    mean_u = flow_ul_min * 1e9 / 60.0 / (channel.width_um * h)
    u = 6 * mean_u * centres / h * (1 - centres / h)
    x_nodes = length_um * (np.arange(NX_MARCH + 1) / NX_MARCH) ** 2
    strip_of = np.minimum((x_nodes[1:] + x_nodes[:-1]) / 2 / length_um * nstrips,
                          nstrips - 1).astype(int)
    d = diffusivity[:, None]
    inner = d / np.diff(centres)[None, :]  # conductance between cells j and j+1 (ncol, NZ-1)
    c = np.ones((ncol, NZ))
    captured = np.zeros((ncol, nstrips))
    for step in range(NX_MARCH):
        dx = x_nodes[step + 1] - x_nodes[step]
        k = rate_um_s * free[:, strip_of[step]]
        wall = np.where(k > 0, 1.0 / (1.0 / np.maximum(k, 1e-30) + centres[0] / diffusivity), 0.0)
        c = _implicit_step(c, (u * dz)[None, :] / dx, inner, wall)
        captured[:, strip_of[step]] += wall * c[:, 0] * dx
    return captured


def _implicit_step(c: np.ndarray, storage: np.ndarray, inner: np.ndarray,
                   wall: np.ndarray) -> np.ndarray:
    """One backward-Euler step in x of every column (one banded solve for them all)."""
    ncol = c.shape[0]
    lower = np.zeros((ncol, NZ))
    upper = np.zeros((ncol, NZ))
    upper[:, :-1] = -inner
    lower[:, 1:] = -inner
    diag = storage.repeat(ncol, axis=0) if storage.shape[0] == 1 else storage.copy()
    diag[:, :-1] += inner
    diag[:, 1:] += inner
    diag[:, 0] += wall
    bands = np.zeros((3, ncol * NZ))
    bands[0, 1:] = upper.ravel()[:-1]
    bands[1] = diag.ravel()
    bands[2, :-1] = lower.ravel()[1:]
    rhs = (storage * c).ravel()
    return solve_banded((1, 1), bands, rhs, overwrite_ab=True, overwrite_b=True,
                        check_finite=False).reshape(ncol, NZ)


def leveque_flux(channel: Channel, flow_ul_min: float, diffusivity: float,
                 length_um: float) -> float:
    """The closed-form Levêque capture (per vesicle/um^3, per um across the flow) of a
    perfectly absorbing zone: only for tests and benchmarks to compare the numerics with."""
    q = flow_ul_min * 1e9 / 60.0
    pe_s = 6.0 * (length_um / channel.height_um) ** 2 * q / (channel.width_um * diffusivity)
    return 0.81 * pe_s ** (1 / 3) * diffusivity
