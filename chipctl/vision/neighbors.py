"""Fixed-radius neighbour pairs between two point sets (grid hashing, numpy only)."""

from __future__ import annotations

import numpy as np


def pairs_within(a: np.ndarray, b: np.ndarray, radius: float
                 ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """All (i, j, distance) with |a[i] - b[j]| <= radius; a and b are N x 2 arrays."""
    empty = (np.empty(0, np.intp), np.empty(0, np.intp), np.empty(0))
    if len(a) == 0 or len(b) == 0 or radius <= 0:
        return empty
    cell = float(radius)
    origin = np.minimum(a.min(axis=0), b.min(axis=0))
    ca = np.floor((a - origin) / cell).astype(np.int64)
    cb = np.floor((b - origin) / cell).astype(np.int64)
    ncol = int(max(ca[:, 0].max(), cb[:, 0].max())) + 3
    kb = (cb[:, 1] + 1) * ncol + cb[:, 0] + 1
    order = np.argsort(kb, kind="stable")
    kb_sorted = kb[order]
    ii, jj = [], []
    for dy in (-1, 0, 1):
        for dx in (-1, 0, 1):
            ka = (ca[:, 1] + 1 + dy) * ncol + ca[:, 0] + 1 + dx
            lo = np.searchsorted(kb_sorted, ka, side="left")
            hi = np.searchsorted(kb_sorted, ka, side="right")
            n = hi - lo
            i = np.repeat(np.arange(len(a)), n)
            start = np.repeat(lo - np.cumsum(n) + n, n)
            jj.append(order[start + np.arange(n.sum())])
            ii.append(i)
    i, j = np.concatenate(ii), np.concatenate(jj)
    d = np.hypot(*(a[i] - b[j]).T)
    keep = d <= radius
    return i[keep], j[keep], d[keep]


def greedy_match(a: np.ndarray, b: np.ndarray, radius: float) -> tuple[np.ndarray, np.ndarray]:
    """One-to-one pairs (i, j) within ``radius``, closest pairs first."""
    i, j, d = pairs_within(a, b, radius)
    order = np.argsort(d, kind="stable")
    used_a = np.zeros(len(a), bool)
    used_b = np.zeros(len(b), bool)
    out_i, out_j = [], []
    for k in order:
        if not used_a[i[k]] and not used_b[j[k]]:
            used_a[i[k]] = used_b[j[k]] = True
            out_i.append(i[k])
            out_j.append(j[k])
    return np.array(out_i, np.intp), np.array(out_j, np.intp)
