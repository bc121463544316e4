"""The chip: antibody capture zones in stage coordinates and the vesicles captured on them.

Physics (../shared/reference/spot_counting.md §4.5, Squires, Messinger & Manalis 2008):
capture under flow is first order in the sample concentration and, for vesicles
(D ~ 5 um^2/s), limited by mass transport. The flux to a zone of length L (along the flow) on
one wall of a channel H high and W wide is the Levêque flux

    Pe_H = Q / (W D),   Pe_s = 6 (L/H)^2 Pe_H,   F = 0.81 Pe_s^(1/3),   J = D c0 W F,

capped by full collection (J <= c0 Q) and scaled by a chip-specific efficiency (the reaction
is not infinitely fast). A zone captures the vesicles positive for its antibody's marker; the
isotype zone (antibody None) and every zone also capture a small nonspecific fraction.
Arrivals are Poisson; capture is irreversible; the flux is highest at the zone's upstream edge
(x^(-1/3), so positions along the flow are drawn as L u^(3/2)).

Labelling: a reagent whose `labels` name dyes (AF488, ...) labels captured vesicles positive
for the marker each dye's detection antibody binds (`label_map`, ExoView-like default
CD9-AF488, CD63-AF555, CD81-AF647), first order at `label_rate_per_s` while it flows; a
sample that carries labels arrives already labelled. Dyes per vesicle = detection antibodies
(lognormal, median 6, 1..30) x degree of labelling (3..5). Photobleaching removes dyes
(`bleach`, called by the camera under the LED dose).

Coordinates: x along the flow, y across, um, the same frame as the stage's XY.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

MARKERS = ("CD9", "CD63", "CD81")
DYES = ("AF488", "AF555", "AF647")
DEFAULT_LABELS = {"AF488": "CD9", "AF555": "CD63", "AF647": "CD81"}
BOLTZMANN = 1.380649e-23
WATER_VISCOSITY = 0.89e-3  # Pa s at 25 C
MAX_SUBSTEP_S = 0.5


def diffusivity_um2_s(diameter_nm: float, temperature_k: float = 298.15) -> float:
    """Stokes-Einstein diffusivity of a sphere in water (um^2/s)."""
    radius_m = diameter_nm * 1e-9 / 2
    return BOLTZMANN * temperature_k / (6 * math.pi * WATER_VISCOSITY * radius_m) * 1e12


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
        for key in ("x", "y", "t", "zone", "positive", "sites", "dyes", "labelled"):
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


class Chip:
    """Capture zones, channel geometry, and the vesicles captured so far."""

    def __init__(
        self,
        zones: list[Zone],
        *,
        channel_width_um: float = 1000.0,
        channel_height_um: float = 50.0,
        efficiency: float = 0.8,
        vesicle_diameter_nm: float = 100.0,
        nonspecific: float = 0.02,
        label_rate_per_s: float = 1 / 60,
        label_map: dict[str, str] | None = None,
        debris_per_mm2: float = 15.0,
        surface_z_um: float = 0.0,
        tilt: tuple[float, float] = (0.0, 0.0),
        seed: int = 0,
    ) -> None:
        self.zones = list(zones)
        self.channel_width_um = channel_width_um
        self.channel_height_um = channel_height_um
        self.efficiency = efficiency
        self.diffusivity_um2_s = diffusivity_um2_s(vesicle_diameter_nm)
        self.nonspecific = nonspecific
        self.label_rate_per_s = label_rate_per_s
        self.label_map = dict(DEFAULT_LABELS if label_map is None else label_map)
        self.surface_z_um = surface_z_um
        self.tilt = tilt
        self.rng = np.random.default_rng(seed)
        self.vesicles = Particles()
        self.debris = self._scatter_debris(debris_per_mm2)
        self.last_time: float | None = None

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

    def _scatter_debris(self, per_mm2: float) -> Debris:
        x0, y0, x1, y1 = self.extent()
        count = self.rng.poisson(per_mm2 * (x1 - x0) * (y1 - y0) / 1e6)
        return Debris(
            x=self.rng.uniform(x0, x1, count),
            y=self.rng.uniform(y0, y1, count),
            size_um=self.rng.uniform(0.8, 2.5, count),
            brightness=self.rng.lognormal(math.log(20.0), 0.6, count),
        )

    # -- capture ----------------------------------------------------------------------------
    def transport_flux(self, conc_per_ml: float, flow_ul_min: float, zone: Zone) -> float:
        """Mass-transport-limited capture flux onto `zone` (vesicles per um^2 per s)."""
        if conc_per_ml <= 0 or flow_ul_min <= 0:
            return 0.0
        d = self.diffusivity_um2_s
        q = flow_ul_min * 1e9 / 60.0  # um^3/s
        c0 = conc_per_ml * 1e-12  # per um^3
        w, h, length = self.channel_width_um, self.channel_height_um, zone.width_um
        pe_s = 6.0 * (length / h) ** 2 * q / (w * d)
        per_width = 0.81 * pe_s ** (1 / 3) * d * c0  # vesicles/s per um of channel width
        total = min(per_width * w, c0 * q)
        return self.efficiency * total / (w * length)

    def capture_rate(
        self, reagent: Any, flow_ul_min: float, zone: Zone, total_flow: float
    ) -> float:
        """Expected captures per second on `zone` from one inflowing reagent."""
        conc = reagent.vesicles_per_ml * flow_ul_min / total_flow
        flux = self.transport_flux(conc, total_flow, zone)
        match = reagent.markers.get(zone.antibody, 0.0) if zone.antibody else 0.0
        return flux * zone.area_um2 * min(1.0, match + self.nonspecific)

    def advance(self, world: Any) -> None:
        """Integrate capture and labelling from the last call to the world's clock."""
        now = world.now()
        if self.last_time is None:
            self.last_time = now  # capture is integrated from the first call on
            return
        if now <= self.last_time:
            return
        steps = max(1, math.ceil((now - self.last_time) / MAX_SUBSTEP_S))
        dt = (now - self.last_time) / steps
        for step in range(steps):
            t0 = self.last_time + step * dt
            flows = self._flows(world, t0 + dt / 2)
            if flows:
                self._capture(flows, t0, dt)
                self._label(flows, dt)
        self.last_time = now

    def _flows(self, world: Any, when: float) -> list[tuple[Any, float]]:
        flows = []
        for pump in world.pumps.values():
            rate = pump.flow_ul_per_min(when)
            if rate > 0:
                reagent = world.reagents.get(pump.reagent)
                if reagent is not None:
                    flows.append((reagent, rate))
        return flows

    def _capture(self, flows: list[tuple[Any, float]], t0: float, dt: float) -> None:
        total = sum(rate for _, rate in flows)
        for reagent, rate in flows:
            if reagent.vesicles_per_ml <= 0:
                continue
            for index, zone in enumerate(self.zones):
                count = self.rng.poisson(self.capture_rate(reagent, rate, zone, total) * dt)
                if count:
                    self._add(reagent, zone, index, count, t0, dt)

    def _add(self, reagent: Any, zone: Zone, index: int, n: int, t0: float, dt: float) -> None:
        x0, y0, _, _ = zone.bounds
        fractions = np.array([reagent.markers.get(m, 0.0) for m in MARKERS])
        positive = self.rng.random((n, 3)) < fractions
        if zone.antibody in MARKERS:
            column = MARKERS.index(zone.antibody)
            specific = self.rng.random(n) >= self.nonspecific / (
                self.nonspecific + fractions[column] + 1e-12
            )
            positive[specific, column] = True
        sites = np.clip(np.rint(self.rng.lognormal(math.log(6), 0.7, (n, 3))), 1, 30)
        self.vesicles.append(
            x=x0 + zone.width_um * self.rng.random(n) ** 1.5,
            y=y0 + zone.height_um * self.rng.random(n),
            t=t0 + dt * self.rng.random(n),
            zone=np.full(n, index, np.int16),
            positive=positive,
            sites=(sites * positive).astype(np.int32),
            dyes=np.zeros((n, 3), np.int32),
            labelled=np.zeros((n, 3), bool),
        )
        start = self.vesicles.n - n
        for dye in reagent.labels:
            self._label_rows(dye, np.arange(start, self.vesicles.n))

    def _label(self, flows: list[tuple[Any, float]], dt: float) -> None:
        dyes = {dye for reagent, _ in flows for dye in reagent.labels if dye in DYES}
        if not dyes or self.vesicles.n == 0:
            return
        p = 1.0 - math.exp(-self.label_rate_per_s * dt)
        for dye in dyes:
            column = DYES.index(dye)
            waiting = ~self.vesicles.view("labelled")[:, column]
            rows = np.flatnonzero(waiting & (self.rng.random(self.vesicles.n) < p))
            self._label_rows(dye, rows)

    def _label_rows(self, dye: str, rows: np.ndarray) -> None:
        if dye not in DYES or dye not in self.label_map or len(rows) == 0:
            return
        column = DYES.index(dye)
        marker = MARKERS.index(self.label_map[dye])
        v = self.vesicles
        fresh = rows[~v.labelled[rows, column]]
        dol = self.rng.integers(3, 6, len(fresh))  # degree of labelling 3..5 dyes per antibody
        v.dyes[fresh, column] = v.sites[fresh, marker] * dol
        v.labelled[fresh, column] = True

    def deposit(
        self, zone_name: str, count: int, labels: tuple[str, ...] = DYES, t: float = 0.0
    ) -> None:
        """Place `count` vesicles positive for every marker on a zone, labelled with `labels`
        (for demos and tests: a chip that already carries captured vesicles)."""
        index = next(i for i, z in enumerate(self.zones) if z.name == zone_name)
        zone = self.zones[index]
        x0, y0, _, _ = zone.bounds
        sites = np.clip(np.rint(self.rng.lognormal(math.log(6), 0.7, (count, 3))), 1, 30)
        self.vesicles.append(
            x=x0 + zone.width_um * self.rng.random(count),
            y=y0 + zone.height_um * self.rng.random(count),
            t=np.full(count, t),
            zone=np.full(count, index, np.int16),
            positive=np.ones((count, 3), bool),
            sites=sites.astype(np.int32),
            dyes=np.zeros((count, 3), np.int32),
            labelled=np.zeros((count, 3), bool),
        )
        for dye in labels:
            self._label_rows(dye, np.arange(self.vesicles.n - count, self.vesicles.n))

    # -- read-out ---------------------------------------------------------------------------
    def in_box(self, x0: float, y0: float, x1: float, y1: float) -> np.ndarray:
        """Indices of captured vesicles inside a rectangle (um)."""
        x, y = self.vesicles.view("x"), self.vesicles.view("y")
        return np.flatnonzero((x >= x0) & (x < x1) & (y >= y0) & (y < y1))

    def counts(self) -> dict[str, int]:
        """Captured vesicles per zone name."""
        per_zone = np.bincount(self.vesicles.view("zone"), minlength=len(self.zones))
        return {zone.name: int(n) for zone, n in zip(self.zones, per_zone, strict=True)}

    def bleach(self, rows: np.ndarray, dye: str, survival: np.ndarray | float) -> None:
        """Each dye on `rows` survives with probability `survival` (per row or scalar)."""
        if len(rows) == 0:
            return
        column = DYES.index(dye)
        current = self.vesicles.dyes[rows, column]
        self.vesicles.dyes[rows, column] = self.rng.binomial(current, survival)


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
