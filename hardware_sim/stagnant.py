"""Capture while the fluid stands still: diffusion to the zones' floor from a standing column.

When every pump stops, the fluid over each zone is the mixture that flowed last. Its vesicles
still reach the antibody floor by diffusion: c(z, t) over the channel height H obeys
dc/dt = D d2c/dz2 with no flux at the ceiling and the same Langmuir sink at the floor as under
flow (D dc/dz = k (1 - theta) c, theta taken when the flow stopped). The depleted layer grows
as sqrt(D t) (capture per area 2 c0 sqrt(D t / pi) at first) and, once it spans the height
(minutes), capture approaches the column's content c0 H per area, first order with the slowest
mode's rate constant (pi^2 D / (4 H^2) for a perfect sink). Solved exactly, as the slab's
series: the share of the content left is sum_n A_n exp(-l_n^2 D t / H^2), l_n tan l_n = Bi =
k H / D, A_n = 2 Bi^2 / (l_n^2 (l_n^2 + Bi^2 + Bi)), for every column (zone x vesicle class).
Neglected: supply from the fluid beyond a zone's edges (a band ~sqrt(D t) wide, tens of um
against 800 um zones) and sedimentation. A detection antibody left standing keeps labelling:
it is in large excess over the captured vesicles (hardware_sim.labelling).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from hardware_sim.population import SIZE_BINS, diffusivity_um2_s, size_classes

MODES = 200  # terms of the series: enough for a share of a 2 s cell right after the stop
SPENT = 1e-4  # a fluid left with this share of its content is treated as used up


class StandingFluid:
    """The mixture that flowed last, now standing over the zones: per reagent, the
    concentration profile over the height of every capture column (vesicles/um^3)."""

    def __init__(self, fill: list[tuple[list[tuple[Any, float]], float]],
                 channel_ul: float) -> None:
        self.fill = fill  # (mixture: [(reagent, share)], uL) that entered last, oldest first
        shares: dict[str, list[Any]] = {}
        for mixture, volume in fill:
            for reagent, share in mixture:
                part = share * volume / channel_ul if channel_ul > 0 else share
                shares.setdefault(reagent.name, [reagent, 0.0])[1] += part
        self.contents = [(reagent, share) for reagent, share in shares.values()]
        self.stood_s = 0.0  # since the flow stopped
        self.modes: dict[str, tuple[np.ndarray, np.ndarray]] = {}  # reagent: (rates, weights)
        self.spent: set[str] = set()

    @classmethod
    def after(cls, before: StandingFluid | None, flows: list[tuple[Any, float]],
              volume_ul: float, channel_ul: float) -> StandingFluid:
        """The fluid left standing once `flows` (reagent, uL/min) moved `volume_ul` more into
        a channel of `channel_ul`: plug flow, the last `channel_ul` that entered (whatever
        filled it before, e.g. a prime's buffer, holds no vesicles)."""
        total = sum(rate for _, rate in flows) or 1.0
        fill = (before.fill if before is not None else []) + [
            ([(reagent, rate / total) for reagent, rate in flows], volume_ul)]
        kept: list[tuple[list[tuple[Any, float]], float]] = []
        room = channel_ul
        for mixture, volume in reversed(fill):
            if room <= 0:
                break
            kept.append((mixture, min(volume, room)))
            room -= volume
        return cls(kept[::-1], channel_ul)

    @property
    def reagents(self) -> list[Any]:
        """What stands in the channel (a stain among them keeps labelling)."""
        return [reagent for reagent, _ in self.contents]

    def carriers(self) -> list[tuple[Any, float]]:
        """(reagent, share of the mixture) of every reagent whose vesicles are not used up."""
        return [(r, share) for r, share in self.contents
                if r.vesicles_per_ml > 0 and r.name not in self.spent]

    def feed(self, chip: Any, seconds: float,
             expected: dict[str, tuple[Any, np.ndarray]]) -> None:
        """Add to `expected` (reagent name -> (reagent, mean per column and strip)) what
        `chip`'s zones capture from this fluid over `seconds` of standing; a strip takes its
        share by its free sites."""
        columns = chip._columns(None)
        zone_of = np.array([c[0] for c in columns])
        free = 1.0 - chip.coverage()
        mean_free = free.mean(axis=1)
        strip_area = np.array([z.area_um2 for z in chip.zones]) / chip.strips
        share = free / np.maximum(mean_free[:, None], 1e-12) * strip_area[:, None]
        for reagent, part in self.carriers():
            conc = reagent.vesicles_per_ml * 1e-12 * part / SIZE_BINS * np.array(
                [chip._fraction(reagent, c[2]) for c in columns])
            diffusivity = diffusivity_um2_s(size_classes(reagent))[[c[1] for c in columns]]
            rate = np.array([c[3] for c in columns]) * mean_free[zone_of]
            per_um2 = self.capture(reagent, conc, chip.channel_height_um, diffusivity, rate,
                                   seconds)
            mean = per_um2[:, None] * share[zone_of]
            if reagent.name in expected:
                mean = mean + expected[reagent.name][1]
            expected[reagent.name] = (reagent, mean)
        self.stood_s += seconds

    def capture(self, reagent: Any, start_conc: np.ndarray, height_um: float,
                diffusivity: np.ndarray, wall_rate: np.ndarray, seconds: float) -> np.ndarray:
        """Captures per um^2 of floor of every column over the next `seconds` of standing
        (`start_conc`: the columns' concentrations when the flow stopped, vesicles/um^3;
        `wall_rate`: k (1 - theta), um/s), from `stood_s` on."""
        if reagent.name not in self.modes:
            self.modes[reagent.name] = _slab_modes(diffusivity, wall_rate, height_um)
        rates, weights = self.modes[reagent.name]
        left_before = weights * np.exp(-rates * self.stood_s)
        left_after = left_before * np.exp(-rates * seconds)
        if left_after.sum(axis=1).max(initial=0.0) < SPENT:
            self.spent.add(reagent.name)
        return np.asarray(start_conc * height_um * (left_before - left_after).sum(axis=1))



def _slab_modes(diffusivity: np.ndarray, wall_rate: np.ndarray, height_um: float
                ) -> tuple[np.ndarray, np.ndarray]:
    """Decay rates (1/s) and weights of the series, (columns x MODES): the roots l_n of
    l tan l = Bi, one in each ((n-1) pi, (n-1) pi + pi/2), by bisection."""
    bi = (np.maximum(wall_rate, 0.0) * height_um / diffusivity)[:, None]
    lo = np.pi * np.arange(MODES)[None, :] + np.zeros_like(bi)
    hi = lo + np.pi / 2
    for _ in range(50):
        mid = (lo + hi) / 2
        above = mid * np.tan(mid) > bi  # l tan l rises from 0 to inf on each interval
        hi, lo = np.where(above, mid, hi), np.where(above, lo, mid)
    roots = (lo + hi) / 2
    weights = np.where(bi > 0, 2 * bi**2 / np.maximum(roots**2 * (roots**2 + bi**2 + bi), 1e-300),
                       0.0)
    return roots**2 * diffusivity[:, None] / height_um**2, weights


def slowest_rate_per_s(diffusivity_um2_s: float, height_um: float) -> float:
    """The rate constant of the slowest diffusion mode onto a perfectly absorbing floor under a
    closed ceiling, pi^2 D / (4 H^2): the time scale of a standing column's depletion."""
    return float(np.pi**2 * diffusivity_um2_s / (4 * height_um**2))


def through_cell(chip: Any, spans: list[tuple[float, list[tuple[Any, float]]]]
                 ) -> tuple[bool, dict[str, tuple[Any, np.ndarray]]]:
    """One cell's spans in time order: each flow leaves its fluid standing (`chip.standing`),
    each span with no flow feeds the zones from it; the stain is booked while it flows or
    stands. Returns whether any stain was booked, and the standing captures expected."""
    stained = False
    still: dict[str, tuple[Any, np.ndarray]] = {}
    for seconds, flows in spans:
        if flows:
            volume = sum(rate for _, rate in flows) * seconds / 60.0
            chip.standing = StandingFluid.after(chip.standing, flows, volume,
                                                channel_ul(chip))
        elif chip.standing is not None:
            chip.standing.feed(chip, seconds, still)
        reagents = [r for r, _ in flows] if flows else \
            chip.standing.reagents if chip.standing else []
        stained |= chip.labelling.stain(reagents, seconds)
    return stained, still


def channel_ul(chip: Any) -> float:
    """The channel's volume along the zones (uL): what a flow must move to renew it."""
    x0, _, x1, _ = chip.extent()
    return float(chip.channel_width_um * chip.channel_height_um * (x1 - x0) * 1e-9)
