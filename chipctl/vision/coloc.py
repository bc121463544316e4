"""Colocalization of spots between channels (e.g. CD9 / CD63 / CD81 co-positive particles)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from itertools import combinations

import numpy as np

from chipctl.vision.model import CountResult
from chipctl.vision.neighbors import greedy_match


@dataclass(frozen=True)
class Colocalization:
    """Particles grouped across channels; ``combinations`` maps each exact set of positive
    channels to its number of particles (every particle is in exactly one set)."""

    channels: tuple[str, ...]
    combinations: dict[frozenset[str], int]

    @property
    def total(self) -> int:
        """Number of distinct particles."""
        return sum(self.combinations.values())

    def co_positive(self, *channels: str) -> int:
        """Particles positive for all of ``channels`` (and possibly others)."""
        want = frozenset(channels)
        return sum(n for s, n in self.combinations.items() if want <= s)

    def exactly(self, *channels: str) -> int:
        """Particles positive for exactly ``channels``."""
        return self.combinations.get(frozenset(channels), 0)

    def table(self) -> dict[str, int]:
        """Co-positive counts for every non-empty channel combination, keyed "A+B"."""
        out = {}
        for k in range(1, len(self.channels) + 1):
            for combo in combinations(self.channels, k):
                out["+".join(combo)] = self.co_positive(*combo)
        return out


def colocalize(results_by_channel: Mapping[str, CountResult], max_dist_px: float = 2.0,
               offsets: Mapping[str, tuple[float, float]] | None = None) -> Colocalization:
    """Group spots of different channels lying within ``max_dist_px`` into particles.

    Each pair of channels is matched one-to-one (closest pairs first); matched spots are
    joined into particles. ``offsets`` optionally shifts a channel's positions (dx, dy) to
    correct chromatic or registration shifts before matching.
    """
    channels = tuple(results_by_channel)
    xy = {ch: _shifted(res, (offsets or {}).get(ch)) for ch, res in results_by_channel.items()}
    start = np.cumsum([0] + [len(xy[ch]) for ch in channels])
    parent = np.arange(start[-1])
    for a, b in combinations(range(len(channels)), 2):
        i, j = greedy_match(xy[channels[a]], xy[channels[b]], max_dist_px)
        for u, v in zip(i + start[a], j + start[b], strict=True):
            parent[_find(parent, u)] = _find(parent, v)
    roots = np.array([_find(parent, k) for k in range(start[-1])], np.intp)
    members: dict[int, set[str]] = {}
    for c, ch in enumerate(channels):
        for r in roots[start[c]:start[c + 1]]:
            members.setdefault(int(r), set()).add(ch)
    counts: dict[frozenset[str], int] = {}
    for s in members.values():
        counts[frozenset(s)] = counts.get(frozenset(s), 0) + 1
    return Colocalization(channels, counts)


def _shifted(result: CountResult, offset: tuple[float, float] | None) -> np.ndarray:
    xy = result.xy.astype(float)
    return xy + np.asarray(offset, float) if offset is not None else xy


def _find(parent: np.ndarray, k: int) -> int:
    while parent[k] != k:
        parent[k] = parent[parent[k]]
        k = int(parent[k])
    return int(k)
