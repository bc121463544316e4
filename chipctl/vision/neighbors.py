"""Fixed-radius neighbour pairs between two point sets (grid hashing, numpy only)."""

from __future__ import annotations

import numpy as np


def pairs_within(a: np.ndarray, b: np.ndarray, radius: float
                 ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """All (i, j, distance) with |a[i] - b[j]| <= radius; a and b are N x 2 arrays."""
    if len(a) == 0 or len(b) == 0 or radius <= 0:
        return np.empty(0, np.intp), np.empty(0, np.intp), np.empty(0)
    origin = np.minimum(a.min(axis=0), b.min(axis=0))
    ca = np.floor((a - origin) / radius).astype(np.int64)
    cb = np.floor((b - origin) / radius).astype(np.int64)
    ncol = int(max(ca[:, 0].max(), cb[:, 0].max())) + 3
    kb = (cb[:, 1] + 1) * ncol + cb[:, 0] + 1
    ka = (ca[:, 1] + 1) * ncol + ca[:, 0] + 1
    order_b, order_a = np.argsort(kb, kind="stable"), np.argsort(ka, kind="stable")
    kb_sorted, ka_sorted = kb[order_b], ka[order_a]
    ii, jj = [], []
    for shift in (dy * ncol + dx for dy in (-1, 0, 1) for dx in (-1, 0, 1)):
        lo = np.searchsorted(kb_sorted, ka_sorted + shift, side="left")
        hi = np.searchsorted(kb_sorted, ka_sorted + shift, side="right")
        n = hi - lo
        ii.append(np.repeat(order_a, n))
        jj.append(order_b[np.repeat(lo - np.cumsum(n) + n, n) + np.arange(n.sum())])
    i, j = np.concatenate(ii), np.concatenate(jj)
    d = np.hypot(*(a[i] - b[j]).T)
    keep = d <= radius
    return i[keep], j[keep], d[keep]


def greedy_match(a: np.ndarray, b: np.ndarray, radius: float) -> tuple[np.ndarray, np.ndarray]:
    """One-to-one pairs (i, j) within ``radius``, closest pairs first.

    Computed as repeated mutual-nearest-neighbour rounds, which equals greedy matching by
    increasing distance.
    """
    i, j, d = pairs_within(a, b, radius)
    out_i, out_j = [], []
    while i.size:
        order = np.lexsort((j, i, d))
        i, j, d = i[order], j[order], d[order]
        best_for_i = np.unique(i, return_index=True)[1]
        best_for_j = np.unique(j, return_index=True)[1]
        mutual = np.intersect1d(best_for_i, best_for_j)
        out_i.append(i[mutual])
        out_j.append(j[mutual])
        rest = ~np.isin(i, i[mutual]) & ~np.isin(j, j[mutual])
        i, j, d = i[rest], j[rest], d[rest]
    if not out_i:
        return np.empty(0, np.intp), np.empty(0, np.intp)
    return np.concatenate(out_i), np.concatenate(out_j)


_MIN_AGREEING = 5


def displacement(ref: np.ndarray, pts: np.ndarray, max_shift: float) -> np.ndarray:
    """The common shift (dx, dy) that carries points ``ref`` onto points ``pts`` (N x 2
    each): the mode of all displacements within ``max_shift`` (0.5 px grid, 3x3 box-summed),
    refined by the median of the displacements within 1 px of it; (0, 0) when fewer than
    five points agree."""
    i, j, _ = pairs_within(pts, ref, max_shift)
    if len(i) < _MIN_AGREEING:
        return np.zeros(2)
    d = pts[i] - ref[j]
    mode = vote(d, max_shift)
    near = np.hypot(*(d - mode).T) <= 1.0
    if near.sum() < _MIN_AGREEING:
        return np.zeros(2)
    return np.median(d[near], axis=0)


def vote(d: np.ndarray, radius: float) -> np.ndarray:
    """Mode of the displacement vectors ``d`` on a 0.5 px grid (3x3 box-summed)."""
    n = int(np.ceil(radius / 0.5))
    k = np.clip(np.round(d / 0.5).astype(int) + n, 0, 2 * n)
    hist = np.zeros((2 * n + 1, 2 * n + 1))
    np.add.at(hist, (k[:, 1], k[:, 0]), 1.0)
    box = np.zeros_like(hist)
    for dy in (-1, 0, 1):
        for dx in (-1, 0, 1):
            box += np.roll(np.roll(hist, dy, 0), dx, 1)
    ky, kx = np.unravel_index(int(np.argmax(box)), box.shape)
    return np.array([(kx - n) * 0.5, (ky - n) * 0.5])
