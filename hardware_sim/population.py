"""A sample's vesicles as the chip captures them: sizes, marker profiles and label sites.

- Diameter: log-normal (median, geometric SD). Capture is computed in `SIZE_BINS` classes of
  equal number (each with the Stokes-Einstein diffusivity of its middle diameter); a captured
  vesicle's diameter is drawn within its class.
- Markers: each vesicle's marker m is positive when u_m < f_m, u_m uniform; with probability
  `co_expression` u_m is one value shared by the vesicle's markers, else its own. The marginal
  fractions are those of the sample; at 1 the markers are maximally nested.
- Label sites: for each positive marker, Poisson(copies x (d / 100 nm)^2) epitopes, so the
  brightness follows the surface area with Poisson spread, conditioned on at least one: a
  vesicle positive for a marker carries it (zero-truncated Poisson; a draw of none would be a
  marker-negative vesicle, which the sample's fraction already counts as such).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from scipy.special import ndtri

MARKERS = ("CD9", "CD63", "CD81")
SIZE_BINS = 4
_REDRAWS = 64  # zero-truncated Poisson by rejection: P(0) < 0.6 down to 30 nm at 6 copies
BOLTZMANN = 1.380649e-23
WATER_VISCOSITY = 0.89e-3  # Pa s at 25 C


def diffusivity_um2_s(diameter_nm: float | np.ndarray, temperature_k: float = 298.15) -> Any:
    """Stokes-Einstein diffusivity of a sphere in water (um^2/s)."""
    radius_m = np.asarray(diameter_nm) * 1e-9 / 2
    return BOLTZMANN * temperature_k / (6 * math.pi * WATER_VISCOSITY * radius_m) * 1e12


def size_classes(reagent: Any) -> np.ndarray:
    """The middle diameter (nm) of each of the SIZE_BINS equal-number classes."""
    mids = (np.arange(SIZE_BINS) + 0.5) / SIZE_BINS
    return _diameter(reagent, mids)


def _diameter(reagent: Any, quantile: np.ndarray) -> np.ndarray:
    gsd = max(float(getattr(reagent, "size_gsd", 1.0)), 1.0)
    median = float(getattr(reagent, "size_median_nm", 100.0))
    return median * np.exp(math.log(gsd) * ndtri(np.clip(quantile, 1e-6, 1 - 1e-6)))


def draw_diameters(rng: np.random.Generator, reagent: Any, size_class: np.ndarray) -> np.ndarray:
    """Diameters (nm) of vesicles of the given classes, within each class's quantiles."""
    return _diameter(reagent, (size_class + rng.random(len(size_class))) / SIZE_BINS)


def draw_markers(rng: np.random.Generator, reagent: Any, n: int,
                 condition: tuple[int, bool] | None = None) -> np.ndarray:
    """(n, 3) marker positivity; `condition` (marker column, value) keeps only vesicles with
    that marker positive (True) or negative (False), as a zone's capture selects them."""
    fractions = np.array([reagent.markers.get(m, 0.0) for m in MARKERS])
    rho = float(getattr(reagent, "co_expression", 0.0))
    kept: list[np.ndarray] = []
    have, tries = 0, 0
    while have < n and tries < 50:
        batch = max(64, 2 * (n - have) + 16)
        shared = rng.random((batch, 1))
        own = rng.random((batch, 3))
        u = np.where(rng.random((batch, 3)) < rho, shared, own)
        positive = u < fractions
        if condition is not None:
            positive = positive[positive[:, condition[0]] == condition[1]]
        kept.append(positive)
        have += len(positive)
        tries += 1
    rows = np.concatenate(kept)[:n] if kept else np.zeros((0, 3), bool)
    if len(rows) < n:  # a condition the sample (almost) never meets: force it
        extra = np.zeros((n - len(rows), 3), bool)
        if condition is not None:
            extra[:, condition[0]] = condition[1]
        rows = np.concatenate([rows, extra])
    return rows


def draw_sites(rng: np.random.Generator, diameter_nm: np.ndarray, positive: np.ndarray,
               copies_at_100nm: float) -> np.ndarray:
    """(n, 3) epitopes per marker: Poisson(copies x (d / 100 nm)^2) conditioned on >= 1
    where positive (drawn again where a positive marker drew none), 0 where negative."""
    mean = copies_at_100nm * (diameter_nm[:, None] / 100.0) ** 2 * positive
    sites = rng.poisson(mean)
    for _ in range(_REDRAWS):
        empty = positive & (sites == 0)
        if not empty.any():
            break
        sites[empty] = rng.poisson(mean[empty])
    sites[positive & (sites == 0)] = 1  # a mean so small that no redraw took: its one copy
    return sites.astype(np.int32)


@dataclass
class Particles:
    """Struct-of-arrays store of captured vesicles (grows by doubling)."""

    n: int = 0
    x: np.ndarray = field(default_factory=lambda: np.zeros(0))
    y: np.ndarray = field(default_factory=lambda: np.zeros(0))
    t: np.ndarray = field(default_factory=lambda: np.zeros(0))
    zone: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int16))
    positive: np.ndarray = field(default_factory=lambda: np.zeros((0, 3), bool))
    sites: np.ndarray = field(default_factory=lambda: np.zeros((0, 3), np.int32))
    dyes: np.ndarray = field(default_factory=lambda: np.zeros((0, 3), np.int32))
    labelled: np.ndarray = field(default_factory=lambda: np.zeros((0, 3), bool))
    diameter: np.ndarray = field(default_factory=lambda: np.zeros(0))
    # stain exposure (s) at which each dye labels the vesicle (inf: never)
    label_at: np.ndarray = field(default_factory=lambda: np.zeros((0, 3)))

    def append(self, **columns: np.ndarray) -> None:
        """Append rows (every column of the same length)."""
        count = len(columns["x"])
        need = self.n + count
        if need > len(self.x):
            self._grow(max(need, 2 * len(self.x), 1024))
        for key, values in columns.items():
            getattr(self, key)[self.n : need] = values
        self.n = need

    def _grow(self, capacity: int) -> None:
        for key in ("x", "y", "t", "zone", "positive", "sites", "dyes", "labelled", "diameter",
                    "label_at"):
            old = getattr(self, key)
            new = np.zeros((capacity, *old.shape[1:]), old.dtype)
            new[: self.n] = old[: self.n]
            setattr(self, key, new)

    def view(self, key: str) -> np.ndarray:
        """The live rows of one column."""
        return getattr(self, key)[: self.n]


@dataclass(frozen=True)
class Debris:
    """Bright, large, non-bleaching particles (dust, aggregates): never counted."""

    x: np.ndarray
    y: np.ndarray
    size_um: np.ndarray
    brightness: np.ndarray  # relative to a 100-dye vesicle


def scatter_debris(rng: np.random.Generator, extent: tuple[float, float, float, float],
                   per_mm2: float) -> Debris:
    """Debris strewn uniformly over `extent` (x0, y0, x1, y1 um) at `per_mm2`."""
    x0, y0, x1, y1 = extent
    count = rng.poisson(per_mm2 * (x1 - x0) * (y1 - y0) / 1e6)
    return Debris(
        x=rng.uniform(x0, x1, count),
        y=rng.uniform(y0, y1, count),
        size_um=rng.uniform(0.8, 2.5, count),
        brightness=rng.lognormal(math.log(20.0), 0.6, count),
    )
