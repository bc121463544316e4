"""Labelling of captured vesicles.

A reagent whose `labels` name dyes (AF488, ...) labels captured vesicles positive for the
marker each dye's detection antibody binds (`label_map`, ExoView-like default CD9-AF488,
CD63-AF555, CD81-AF647), first order at `label_rate_per_s` while it flows: each vesicle draws,
when captured, the stain time it needs (exponential), so labelling is a comparison per
advance, never a draw per vesicle per sub-step. A sample that carries labels arrives already
labelled; the sample's `labelling_efficiency` is the fraction of its marker-positive vesicles
that take the dye at all. Dyes per vesicle = epitopes (Poisson in the surface area,
hardware_sim.population) x degree of labelling (3..5). Photobleaching removes dyes
(`Chip.bleach`, under the light dose).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import numpy as np

from hardware_sim.population import MARKERS, Particles

DYES = ("AF488", "AF555", "AF647")
DEFAULT_LABELS = {"AF488": "CD9", "AF555": "CD63", "AF647": "CD81"}


class Labelling:
    """How long each dye's detection antibody has flowed, and the vesicles each may still label.

    `rng` is the chip's generator: while the chip integrates a cell of its time grid, that
    cell's own (hardware_sim.timegrid)."""

    def __init__(self, rng: np.random.Generator, label_rate_per_s: float = 1 / 60,
                 label_map: dict[str, str] | None = None) -> None:
        self.rng = rng
        self.label_rate_per_s = label_rate_per_s
        self.label_map = dict(DEFAULT_LABELS if label_map is None else label_map)
        self.stain_s = np.zeros(len(DYES))  # seconds each dye's detection antibody has flowed
        # Per dye: the rows it may still label, in the order of the stain time each needs (and
        # those times), so each advance labels a prefix; rows admitted since are merged in once.
        self._waiting = [np.zeros(0, np.int64) for _ in DYES]
        self._waiting_at = [np.zeros(0) for _ in DYES]
        self._admitted: list[list[tuple[np.ndarray, np.ndarray]]] = [[] for _ in DYES]

    def draw(self, n: int, efficiency: float) -> tuple[np.ndarray, np.ndarray]:
        """For `n` vesicles captured now: which dyes each can take at all (`efficiency`), and
        the stain time (s of each dye's flow) at which it is labelled (inf: never)."""
        takes_dye = self.rng.random((n, len(DYES))) < efficiency
        need = self.rng.exponential(1.0 / self.label_rate_per_s, (n, len(DYES)))
        return takes_dye, np.where(takes_dye, self.stain_s[None, :] + need, np.inf)

    def admit(self, rows: np.ndarray, takes_dye: np.ndarray, label_at: np.ndarray) -> None:
        """Vesicles `rows` (as drawn by `draw`) wait for the dyes they can take."""
        for column in range(len(DYES)):  # merged once per label_due: a cell's many admits
            can = takes_dye[:, column]  # stay linear in the vesicles waiting
            self._admitted[column].append((rows[can], label_at[can, column]))

    def stain(self, reagents: Iterable[Any], dt: float) -> bool:
        """Book `dt` s of flow of each detection antibody the reagents carry; True if any did."""
        dyes = {dye for reagent in reagents for dye in reagent.labels if dye in DYES}
        for dye in dyes:
            self.stain_s[DYES.index(dye)] += dt
        return bool(dyes)

    def label_due(self, vesicles: Particles) -> None:
        """Label every vesicle whose stain time has come: the first of each dye's queue."""
        for column, dye in enumerate(DYES):
            waiting, at = self._joined(column)
            due = int(np.searchsorted(at, self.stain_s[column], side="right"))
            if due:
                self.label_rows(vesicles, dye, waiting[:due])
                self._waiting[column], self._waiting_at[column] = waiting[due:], at[due:]

    def _joined(self, column: int) -> tuple[np.ndarray, np.ndarray]:
        """One dye's queue, with the rows admitted since last time merged in by stain time."""
        if self._admitted[column]:
            rows = np.concatenate([r for r, _ in self._admitted[column]])
            at = np.concatenate([a for _, a in self._admitted[column]])
            order = np.argsort(at, kind="stable")
            where = np.searchsorted(self._waiting_at[column], at[order], side="right")
            self._waiting[column] = np.insert(self._waiting[column], where, rows[order])
            self._waiting_at[column] = np.insert(self._waiting_at[column], where, at[order])
            self._admitted[column] = []
        return self._waiting[column], self._waiting_at[column]

    def label_rows(self, vesicles: Particles, dye: str, rows: np.ndarray) -> None:
        """Vesicles `rows` that can take `dye` and have not taken it yet take it now: their marker's
        sites x a degree of labelling of 3..5 dyes per antibody."""
        if dye not in DYES or dye not in self.label_map or len(rows) == 0:
            return
        column = DYES.index(dye)
        marker = MARKERS.index(self.label_map[dye])
        can = ~vesicles.labelled[rows, column] & np.isfinite(vesicles.label_at[rows, column])
        fresh = rows[can]
        dol = self.rng.integers(3, 6, len(fresh))
        vesicles.dyes[fresh, column] = vesicles.sites[fresh, marker] * dol
        vesicles.labelled[fresh, column] = True
