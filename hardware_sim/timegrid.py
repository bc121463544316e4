"""The chip's fixed grid of virtual time: capture and labelling are integrated cell by cell.

The simulator's truth must not depend on when the chip is advanced (a camera poll, a control
request: wall timing, so the host's load). So time is cut into cells of CELL_S simulated
seconds from t = 0; a cell is integrated once it has wholly passed, from the flows the pumps
recorded for it (their changes inside the cell split it into spans of steady flow), and every
draw for it comes from a generator keyed by the seed and the cell's index. Calling `advance`
every 0.1 s or once an hour gives the same vesicles.
"""

from __future__ import annotations

from typing import Any

import numpy as np

CELL_S = 2.0  # one cell of the grid, simulated seconds
_CELLS, _BLEACH = 0, 1  # independent streams of draws per chip seed


def cell_rng(seed: int, cell: int) -> np.random.Generator:
    """The draws of one cell of the grid: the same for the same seed and cell, always."""
    return np.random.default_rng((seed, _CELLS, cell))


def bleach_rng(seed: int) -> np.random.Generator:
    """The photobleaching draws: a stream apart from capture's, so a light dose taken between
    two cells never shifts what the next cell captures."""
    return np.random.default_rng((seed, _BLEACH))


def steady_spans(world: Any, start: float, end: float) -> list[tuple[float, list[Any]]]:
    """(seconds, [(reagent, uL/min), ...]) of every span of steady inflow within [start, end),
    in time order, from the pumps' records (a pump without one, e.g. a test's fixed schedule,
    is read at the span's middle); a span where nothing flows has no flows (the fluid stands)."""
    cuts = {start, end}
    for pump in world.pumps.values():
        changes = getattr(pump, "flow_changes", None)
        if callable(changes):
            cuts.update(changes(start, end))
    times = sorted(cuts)
    spans = []
    for a, b in zip(times, times[1:], strict=False):
        spans.append((b - a, world.inflows((a + b) / 2)))
    return spans
