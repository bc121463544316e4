"""The chip: antibody capture zones in stage coordinates and the vesicles captured on them.

Capture (hardware_sim.capture): every zone has a site density (vesicles per um^2 at
saturation), an intrinsic capture rate for the vesicles carrying its antibody's marker
(`on_rate_um_s`: on-rate x site density) and a non-specific rate for the rest
(`nonspecific_um_s`; the isotype zone has only its own, `isotype_um_s`). The rate each class
of vesicle (size x specific or not) lands on each strip of a zone comes from the numerical
advection-diffusion-reaction solution with the strip's free sites (Langmuir: the rate falls
as 1 - coverage, so capture saturates at the site density). Arrivals are Poisson per strip
and cell of the fixed time grid (hardware_sim.timegrid); positions are uniform within a strip
(the profile along the flow comes from the solution, densest at the upstream edge).

While every pump stands still, the fluid that flowed last keeps feeding the zones by
diffusion, and a stain in it keeps labelling (hardware_sim.stagnant).

Labelling of the captured vesicles: hardware_sim.labelling.

Coordinates: x along the flow, y across, um, the same frame as the stage's XY.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import numpy as np

from hardware_sim.capture import Channel, floor_flux
from hardware_sim.labelling import DYES, Labelling
from hardware_sim.population import (
    MARKERS,
    SIZE_BINS,
    Particles,
    diffusivity_um2_s,
    draw_diameters,
    draw_markers,
    draw_sites,
    scatter_debris,
    size_classes,
)
from hardware_sim.stagnant import StandingFluid, through_cell
from hardware_sim.timegrid import CELL_S, bleach_rng, cell_rng, steady_spans

RESOLVE_COVERAGE = 0.02  # solve the transport again once a strip's free sites moved this much
__all__ = ["MARKERS", "DYES", "Chip", "Zone", "default_chip", "chip_from_spec",
           "diffusivity_um2_s"]


@dataclass(frozen=True)
class Zone:
    """A rectangle coated with a capture antibody (`antibody` None = isotype control)."""

    name: str
    antibody: str | None
    x_um: float
    y_um: float
    width_um: float = 800.0
    height_um: float = 800.0

    @property
    def bounds(self) -> tuple[float, float, float, float]:
        """(x0, y0, x1, y1) of the zone, um."""
        hw, hh = self.width_um / 2, self.height_um / 2
        return self.x_um - hw, self.y_um - hh, self.x_um + hw, self.y_um + hh

    def contains(self, x_um: float, y_um: float) -> bool:
        """True if the point lies on the zone."""
        x0, y0, x1, y1 = self.bounds
        return x0 <= x_um <= x1 and y0 <= y_um <= y1

    @property
    def area_um2(self) -> float:
        """Zone area, um^2."""
        return self.width_um * self.height_um


class Chip:
    """Capture zones, channel geometry, and the vesicles captured so far."""

    def __init__(
        self,
        zones: list[Zone],
        *,
        channel_width_um: float = 1000.0,
        channel_height_um: float = 50.0,
        site_density_per_um2: float = 1.0,
        on_rate_um_s: float = 100.0,
        nonspecific_um_s: float = 0.02,
        isotype_um_s: float = 0.03,
        strips: int = 16,
        copies_at_100nm: float = 6.0,
        label_rate_per_s: float = 1 / 60,
        label_map: dict[str, str] | None = None,
        debris_per_mm2: float = 15.0,
        surface_z_um: float = 0.0,
        tilt: tuple[float, float] = (0.0, 0.0),
        seed: int = 0,
    ) -> None:
        # how it was made, but for its geometry and seed (manufacturing)
        self.options: dict[str, Any] = {
            "site_density_per_um2": site_density_per_um2, "on_rate_um_s": on_rate_um_s,
            "nonspecific_um_s": nonspecific_um_s, "isotype_um_s": isotype_um_s,
            "strips": strips, "copies_at_100nm": copies_at_100nm,
            "label_rate_per_s": label_rate_per_s, "label_map": label_map,
            "debris_per_mm2": debris_per_mm2, "surface_z_um": surface_z_um, "tilt": tilt}
        self.zones = list(zones)
        self.channel_width_um = channel_width_um
        self.channel_height_um = channel_height_um
        self.site_density_per_um2 = site_density_per_um2
        self.on_rate_um_s = on_rate_um_s
        self.nonspecific_um_s = nonspecific_um_s
        self.isotype_um_s = isotype_um_s
        self.strips = strips
        self.copies_at_100nm = copies_at_100nm
        self.surface_z_um = surface_z_um
        self.tilt = tilt
        self.seed = seed
        self.lock = threading.RLock()  # the chip's state; taken inside the bench lock, if both
        self.rng = np.random.default_rng(seed)  # layout (debris, deposits); capture: per cell
        self._bleach_rng = bleach_rng(seed)
        self.labelling = Labelling(self.rng, label_rate_per_s, label_map)
        self.vesicles = Particles()
        self.debris = scatter_debris(self.rng, self.extent(), debris_per_mm2)
        self.next_cell: int | None = None  # the first cell of the time grid not integrated
        self.occupied = np.zeros((len(self.zones), strips))  # captured vesicles per strip
        self._kernel: dict[str, tuple[float, np.ndarray, np.ndarray]] = {}
        self.standing: StandingFluid | None = None  # what stands in the channel, once stopped

    # -- geometry ---------------------------------------------------------------------------
    def zone_at(self, x_um: float, y_um: float) -> Zone | None:
        """The zone under a point, or None (bare glass)."""
        return next((z for z in self.zones if z.contains(x_um, y_um)), None)

    def surface_z(self, x_um: float, y_um: float) -> float:
        """Stage Z (um) at which the chip surface under (x, y) is in focus."""
        return self.surface_z_um + self.tilt[0] * x_um + self.tilt[1] * y_um

    def extent(self, margin_um: float = 500.0) -> tuple[float, float, float, float]:
        """Bounding box of all zones plus a margin."""
        if not self.zones:
            return (0.0, 0.0, 0.0, 0.0)
        boxes = np.array([z.bounds for z in self.zones])
        return (
            boxes[:, 0].min() - margin_um,
            boxes[:, 1].min() - margin_um,
            boxes[:, 2].max() + margin_um,
            boxes[:, 3].max() + margin_um,
        )

    # -- capture ----------------------------------------------------------------------------
    def site_capacity(self, zone: Zone) -> float:
        """Vesicles a zone holds at saturation."""
        return self.site_density_per_um2 * zone.area_um2

    def coverage(self) -> np.ndarray:
        """Fraction of each zone's sites taken, per strip along the flow (zones x strips)."""
        areas = np.array([z.area_um2 for z in self.zones])[:, None] / self.strips
        return np.minimum(1.0, self.occupied / (self.site_density_per_um2 * areas))

    def _columns(self, reagent: Any) -> list[tuple[int, int, tuple[int, bool] | None, float]]:
        """(zone, size class, marker condition, intrinsic rate um/s) of every capture column."""
        columns: list[tuple[int, int, tuple[int, bool] | None, float]] = []
        for index, zone in enumerate(self.zones):
            for size in range(SIZE_BINS):
                if zone.antibody in MARKERS:
                    marker = MARKERS.index(zone.antibody)
                    columns.append((index, size, (marker, True),
                                    self.on_rate_um_s + self.nonspecific_um_s))
                    columns.append((index, size, (marker, False), self.nonspecific_um_s))
                else:
                    columns.append((index, size, None, self.isotype_um_s))
        return columns

    def capture_kernel(self, reagent: Any, flow_ul_min: float) -> np.ndarray:
        """Captures per s per (vesicle/um^3 of the class) per strip of every column, solved
        again only when the flow or a strip's free sites changed (hardware_sim.capture)."""
        free = 1.0 - self.coverage()
        cached = self._kernel.get(reagent.name)
        columns = self._columns(reagent)
        zone_of = np.array([c[0] for c in columns])
        if cached is not None and cached[0] == flow_ul_min and \
                np.abs(cached[1] - free).max() < RESOLVE_COVERAGE:
            return cached[2]
        diffusivity = diffusivity_um2_s(size_classes(reagent))[[c[1] for c in columns]]
        rates = np.array([c[3] for c in columns])
        channel = Channel(self.channel_width_um, self.channel_height_um)
        kernel = np.zeros((len(columns), self.strips))
        lengths = np.array([z.width_um for z in self.zones])
        for length in np.unique(lengths):  # zones of one length solved together
            rows = np.flatnonzero(lengths[zone_of] == length)
            across = np.array([z.height_um for z in self.zones])[zone_of[rows]]
            kernel[rows] = floor_flux(channel, flow_ul_min, diffusivity[rows], rates[rows],
                                      free[zone_of[rows]], float(length)) * across[:, None]
        self._kernel[reagent.name] = (flow_ul_min, free, kernel)
        return kernel

    def advance(self, world: Any, until: float | None = None,
                max_cells: int | None = None) -> bool:
        """Integrate capture and labelling over every cell of the time grid that has wholly
        passed (by `until`, default now) since the last call (hardware_sim.timegrid): from the
        flows the pumps recorded, with each cell's own draws, so the outcome never depends on
        when this is called. Holds the chip's lock, not the bench's; at most `max_cells`
        cells per call. True when the chip is up to `until`."""
        with self.lock:
            now = world.now() if until is None else min(until, world.now())
            if self.next_cell is None:
                self.next_cell = math.ceil(now / CELL_S)  # integrated from the first call on
            passed = math.floor(now / CELL_S)
            last = passed if max_cells is None else min(passed, self.next_cell + max_cells)
            for cell in range(self.next_cell, last):
                spans = steady_spans(world, cell * CELL_S, (cell + 1) * CELL_S)
                if any(flows for _, flows in spans) or self.standing is not None:
                    self._integrate(cell, spans)
                self.next_cell = cell + 1
            self.next_cell = max(self.next_cell, last)
            return self.next_cell >= passed

    def _integrate(self, cell: int, spans: list[tuple[float, list[tuple[Any, float]]]]) -> None:
        """Capture, then stain, over one cell's spans (flowing or standing), with its draws."""
        main = self.rng
        self.rng = self.labelling.rng = cell_rng(self.seed, cell)
        try:
            self._capture([s for s in spans if s[1]], cell * CELL_S)
            stained, still = through_cell(self, spans)
            self._draw(still, cell * CELL_S)
            if stained:
                self.labelling.label_due(self.vesicles)
        finally:
            self.rng = self.labelling.rng = main

    def _capture(self, spans: list[tuple[float, list[tuple[Any, float]]]], t0: float) -> None:
        """Poisson arrivals per column and strip: one draw per reagent for the whole cell, of
        the captures expected over its spans (kernel x concentration x seconds)."""
        expected: dict[str, tuple[Any, np.ndarray]] = {}
        columns = self._columns(None)
        for seconds, flows in spans:
            total = sum(rate for _, rate in flows)
            for reagent, rate in flows:
                if reagent.vesicles_per_ml <= 0:
                    continue
                # concentration of one size class at the zones, per um^3
                conc = reagent.vesicles_per_ml * 1e-12 * rate / total / SIZE_BINS
                fractions = np.array([self._fraction(reagent, c[2]) for c in columns])
                mean = self.capture_kernel(reagent, total) * conc * fractions[:, None] * seconds
                if reagent.name in expected:
                    mean = mean + expected[reagent.name][1]
                expected[reagent.name] = (reagent, mean)
        self._draw(expected, t0)

    def _draw(self, expected: dict[str, tuple[Any, np.ndarray]], t0: float) -> None:
        """Poisson arrivals of the expected captures per column and strip, within the sites."""
        columns = self._columns(None)
        for reagent, mean in expected.values():
            counts = self._within_sites(self.rng.poisson(mean), columns)
            if counts.any():
                self._add(reagent, columns, counts, t0, CELL_S)

    def _within_sites(self, counts: np.ndarray,
                      columns: list[tuple[int, int, tuple[int, bool] | None, float]]) -> Any:
        """Arrivals per column and strip, thinned where a strip has fewer free sites left."""
        zone_of = np.array([c[0] for c in columns])
        areas = np.array([z.area_um2 for z in self.zones]) / self.strips
        free = np.floor(self.site_density_per_um2 * areas[:, None] - self.occupied)
        wanted = np.zeros_like(self.occupied)
        np.add.at(wanted, zone_of, counts)
        scale = np.where(wanted > free, np.maximum(free, 0) / np.maximum(wanted, 1), 1.0)
        return np.floor(counts * scale[zone_of]).astype(np.int64)

    @staticmethod
    def _fraction(reagent: Any, condition: tuple[int, bool] | None) -> float:
        if condition is None:
            return 1.0
        share = reagent.markers.get(MARKERS[condition[0]], 0.0)
        return share if condition[1] else 1.0 - share

    def _add(self, reagent: Any, columns: list[tuple[int, int, tuple[int, bool] | None, float]],
             counts: np.ndarray, t0: float, dt: float) -> None:
        """Place a cell's arrivals (`counts` per column and strip) on their zones: one draw of
        each kind for all of them (per marker condition for the markers)."""
        cols, strips = np.nonzero(counts)
        reps = counts[cols, strips]
        column, strip = np.repeat(cols, reps), np.repeat(strips, reps)
        n = len(column)
        zone_of = np.array([c[0] for c in columns])
        np.add.at(self.occupied, zone_of, counts)
        index = zone_of[column]
        diameter = draw_diameters(self.rng, reagent, np.array([c[1] for c in columns])[column])
        conditions = list(dict.fromkeys(c[2] for c in columns))
        condition_of = np.array([conditions.index(c[2]) for c in columns])[column]
        positive = np.zeros((n, 3), bool)
        for k, condition in enumerate(conditions):
            rows = np.flatnonzero(condition_of == k)
            if len(rows):
                positive[rows] = draw_markers(self.rng, reagent, len(rows), condition)
        bounds = np.array([z.bounds for z in self.zones])[index]
        sizes = np.array([(z.width_um, z.height_um) for z in self.zones])[index]
        self._append(
            x=bounds[:, 0] + sizes[:, 0] * (strip + self.rng.random(n)) / self.strips,
            y=bounds[:, 1] + sizes[:, 1] * self.rng.random(n),
            t=t0 + dt * self.rng.random(n), zone=index.astype(np.int16),
            positive=positive, diameter=diameter,
            efficiency=float(getattr(reagent, "labelling_efficiency", 1.0)))
        self._label_last(n, reagent.labels)

    def _append(self, *, x: np.ndarray, y: np.ndarray, t: np.ndarray, zone: np.ndarray,
                positive: np.ndarray, diameter: np.ndarray, efficiency: float) -> None:
        n = len(x)
        takes_dye, label_at = self.labelling.draw(n, efficiency)
        self.vesicles.append(
            x=x, y=y, t=t, zone=zone, positive=positive,
            sites=draw_sites(self.rng, diameter, positive, self.copies_at_100nm),
            dyes=np.zeros((n, 3), np.int32), labelled=np.zeros((n, 3), bool),
            diameter=diameter, label_at=label_at)
        self.labelling.admit(np.arange(self.vesicles.n - n, self.vesicles.n), takes_dye, label_at)

    def _label_last(self, n: int, dyes: Iterable[str]) -> None:
        """The `n` vesicles captured last take `dyes` (a sample that arrives labelled)."""
        for dye in dyes:
            self.labelling.label_rows(self.vesicles, dye,
                                      np.arange(self.vesicles.n - n, self.vesicles.n))

    def deposit(
        self, zone_name: str, count: int, labels: tuple[str, ...] = DYES, t: float = 0.0
    ) -> None:
        """Place `count` 100 nm vesicles positive for every marker on a zone, labelled with
        `labels` (for demos and tests: a chip that already carries captured vesicles)."""
        index = next(i for i, z in enumerate(self.zones) if z.name == zone_name)
        zone = self.zones[index]
        x0, y0, _, _ = zone.bounds
        self._append(x=x0 + zone.width_um * self.rng.random(count),
                     y=y0 + zone.height_um * self.rng.random(count), t=np.full(count, t),
                     zone=np.full(count, index, np.int16), positive=np.ones((count, 3), bool),
                     diameter=np.full(count, 100.0), efficiency=1.0)
        self._label_last(count, labels)

    # -- read-out ---------------------------------------------------------------------------
    def in_box(self, x0: float, y0: float, x1: float, y1: float) -> np.ndarray:
        """Indices of captured vesicles inside a rectangle (um)."""
        x, y = self.vesicles.view("x"), self.vesicles.view("y")
        return np.flatnonzero((x >= x0) & (x < x1) & (y >= y0) & (y < y1))

    def counts(self) -> dict[str, int]:
        """Captured vesicles per zone name."""
        per_zone = np.bincount(self.vesicles.view("zone"), minlength=len(self.zones))
        return {zone.name: int(n) for zone, n in zip(self.zones, per_zone, strict=True)}

    def labelled_counts(self) -> dict[str, dict[str, int]]:
        """Per zone name, the captured vesicles each dye has labelled (positive for the marker
        its detection antibody binds; bleached or not)."""
        v = self.vesicles
        zone, labelled, positive = v.view("zone"), v.view("labelled"), v.view("positive")
        counts: dict[str, dict[str, int]] = {z.name: {} for z in self.zones}
        for column, dye in enumerate(DYES):
            marker = self.labelling.label_map.get(dye)
            if marker is None:
                continue
            took = labelled[:, column] & positive[:, MARKERS.index(marker)]
            per_zone = np.bincount(zone[took], minlength=len(self.zones))
            for z, n in zip(self.zones, per_zone, strict=True):
                counts[z.name][dye] = int(n)
        return counts

    def bleach(self, rows: np.ndarray, dye: str, survival: np.ndarray | float) -> None:
        """Each dye on `rows` survives with probability `survival` (per row or scalar)."""
        if len(rows) == 0:
            return
        column = DYES.index(dye)
        current = self.vesicles.dyes[rows, column]
        self.vesicles.dyes[rows, column] = self._bleach_rng.binomial(current, survival)


def chip_from_spec(spec: dict[str, Any], seed: int = 0) -> Chip:
    """A chip from a simulator spec mapping: `zones: [{name, antibody, x_um, y_um, width_um,
    height_um}, ...]` (antibody null or "isotype" = isotype control) plus any Chip option;
    without zones, the default four."""
    options = {k: v for k, v in spec.items() if k != "zones"}
    if "tilt" in options:
        options["tilt"] = tuple(options["tilt"])
    if not spec.get("zones"):
        return default_chip(seed=seed, **options)
    zones = []
    for z in spec["zones"]:
        antibody = z.get("antibody", z["name"])
        antibody = None if antibody in (None, "isotype", "none") else str(antibody)
        zones.append(
            Zone(
                str(z["name"]),
                antibody,
                float(z["x_um"]),
                float(z["y_um"]),
                float(z.get("width_um", 800.0)),
                float(z.get("height_um", 800.0)),
            )
        )
    return Chip(zones, seed=seed, **options)


def default_chip(seed: int = 0, **options: Any) -> Chip:
    """Four 800 um zones along a 1 mm channel, 1.5 mm apart: CD9, CD63, CD81, isotype."""
    zones = [
        Zone("CD9", "CD9", 0.0, 0.0),
        Zone("CD63", "CD63", 1500.0, 0.0),
        Zone("CD81", "CD81", 3000.0, 0.0),
        Zone("isotype", None, 4500.0, 0.0),
    ]
    return Chip(zones, seed=seed, **options)
