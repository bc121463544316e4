"""Capture from sample left standing over a zone once the pumps stop (transport-limited).

When every pump stops, the channel over a zone still holds the mixture that flowed last, and its
vesicles keep reaching the antibody floor by diffusion. Over the channel height H the column is
a slab with an absorbing floor (the transport limit, as chipctl.analysis.transport assumes under
flow) and a closed ceiling; it starts uniform at the sample's concentration. The share of the
column's content captured after t standing is, with tau = D t / H^2 (Crank, The Mathematics of
Diffusion, 2nd ed., eq. 4.17 for a sheet of thickness 2H):

    F(tau) = 1 - sum_n 8 / ((2n + 1)^2 pi^2) exp(-(2n + 1)^2 pi^2 tau / 4)

At short times that is the semi-infinite result 2 sqrt(tau / pi) (capture per area
2 c0 sqrt(D t / pi)); once the depleted layer spans the height, F approaches 1 with the rate
constant pi^2 D / (4 H^2). Captured vesicles lie evenly over the zone (no gradient along it).

Neglected: the layer the flow had already depleted when it stopped (a few um against a 50 um
column: it lowers the first seconds' capture), supply from fluid beyond the zone's edges, a
finite on-rate, and sites filling.
"""

from __future__ import annotations

import math

import numpy as np
from numpy.typing import ArrayLike, NDArray

_SHORT_TAU = 0.05  # below this the semi-infinite form is exact to < 1e-8 (next image term)
_TERMS = 40  # of the series above _SHORT_TAU: the last is < exp(-1000)


def captured_share(tau: ArrayLike) -> NDArray[np.float64]:
    """Share of a standing column's content captured by the floor after ``tau`` = D t / H^2."""
    t = np.maximum(np.asarray(tau, float), 0.0)
    odd = (2 * np.arange(_TERMS) + 1.0)[:, None]
    flat = t.reshape(1, -1)
    series = 1.0 - np.sum(8.0 / (odd**2 * math.pi**2)
                          * np.exp(-(odd**2) * math.pi**2 * np.maximum(flat, _SHORT_TAU) / 4.0),
                          axis=0)
    short = 2.0 * np.sqrt(flat[0] / math.pi)
    return np.asarray(np.where(flat[0] < _SHORT_TAU, short, series).reshape(t.shape))

