"""One-to-one detection matching (Hungarian within a gate) and detection scores."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.optimize import linear_sum_assignment
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components
from scipy.spatial import cKDTree


@dataclass(frozen=True)
class Scores:
    """Detection scores; rmse is the root-mean-square Euclidean error of matched pairs."""

    tp: int
    fp: int
    fn: int
    rmse: float

    @property
    def precision(self) -> float:
        return self.tp / max(self.tp + self.fp, 1)

    @property
    def recall(self) -> float:
        return self.tp / max(self.tp + self.fn, 1)

    @property
    def f1(self) -> float:
        return 2 * self.tp / max(2 * self.tp + self.fp + self.fn, 1)


def match(truth: np.ndarray, pred: np.ndarray, max_dist: float = 2.0
          ) -> tuple[np.ndarray, np.ndarray]:
    """Optimal one-to-one pairs (i_truth, j_pred) with distance <= max_dist.

    Candidate pairs come from a KD-tree; each connected component of the gated bipartite
    graph is solved exactly with scipy.optimize.linear_sum_assignment.
    """
    if len(truth) == 0 or len(pred) == 0:
        return np.empty(0, int), np.empty(0, int)
    sd = cKDTree(truth).sparse_distance_matrix(cKDTree(pred), max_dist, output_type="coo_matrix")
    if sd.nnz == 0:
        return np.empty(0, int), np.empty(0, int)
    nt = len(truth)
    graph = coo_matrix((np.ones(sd.nnz), (sd.row, sd.col + nt)), shape=(nt + len(pred),) * 2)
    _, label = connected_components(graph, directed=False)
    ii, jj = [], []
    comp = label[sd.row]
    order = np.argsort(comp, kind="stable")
    bounds = np.flatnonzero(np.diff(comp[order])) + 1
    for idx in np.split(order, bounds):
        rows, cols = np.unique(sd.row[idx]), np.unique(sd.col[idx])
        cost = np.full((len(rows), len(cols)), 1e6)
        cost[np.searchsorted(rows, sd.row[idx]), np.searchsorted(cols, sd.col[idx])] = (
            sd.data[idx])
        r, c = linear_sum_assignment(cost)
        ok = cost[r, c] < 1e6
        ii.append(rows[r[ok]])
        jj.append(cols[c[ok]])
    return np.concatenate(ii), np.concatenate(jj)


def score(truth: np.ndarray, pred: np.ndarray, max_dist: float = 2.0) -> Scores:
    """Precision/recall/F1 counts and localisation RMSE at one-to-one matching."""
    i, j = match(truth, pred, max_dist)
    err = np.hypot(*(truth[i] - pred[j]).T) if len(i) else np.empty(0)
    rmse = float(np.sqrt(np.mean(err**2))) if len(err) else float("nan")
    return Scores(len(i), len(pred) - len(i), len(truth) - len(i), rmse)


def merged(scores: list[Scores]) -> Scores:
    """Pooled scores over several frames (RMSE pooled over all matched pairs)."""
    tp = sum(s.tp for s in scores)
    sq = sum(s.tp * s.rmse**2 for s in scores if s.tp)
    return Scores(tp, sum(s.fp for s in scores), sum(s.fn for s in scores),
                  float(np.sqrt(sq / tp)) if tp else float("nan"))


def crlb(xy: np.ndarray, amplitude_e: np.ndarray, background_e: np.ndarray, sigma: float,
         read_noise_e: float, shape: tuple[int, int] | None = None, radius: int = 7
         ) -> np.ndarray:
    """Cramer-Rao bound (N x 2: sd of x and of y, px) of isolated pixel-integrated Gaussian
    spots of continuous peak ``amplitude_e`` on a flat ``background_e`` (electrons), under
    Poisson + Gaussian read noise, with x, y, amplitude and background unknown.

    Written from the image model alone (scipy's erf on a (2r+1)^2 window clipped to
    ``shape``), independently of the counter's fit.
    """
    from scipy.special import erf

    xy = np.asarray(xy, float).reshape(-1, 2)
    out = np.empty((len(xy), 2))
    d = np.arange(-radius, radius + 1)
    s = sigma * np.sqrt(2.0)
    for k, ((x, y), a, b) in enumerate(zip(xy, np.broadcast_to(amplitude_e, len(xy)),
                                           np.broadcast_to(background_e, len(xy)),
                                           strict=True)):
        cx, cy = int(round(x)), int(round(y))
        px, py = cx + d, cy + d
        ex = (px[None, :] + np.array([[0.5], [-0.5]]) - x) / s
        ey = (py[None, :] + np.array([[0.5], [-0.5]]) - y) / s
        gx = sigma * np.sqrt(np.pi / 2) * (erf(ex[0]) - erf(ex[1]))
        gy = sigma * np.sqrt(np.pi / 2) * (erf(ey[0]) - erf(ey[1]))
        dgx = np.exp(-ex[1] ** 2) - np.exp(-ex[0] ** 2)  # d gx / dx
        dgy = np.exp(-ey[1] ** 2) - np.exp(-ey[0] ** 2)
        lam = b + a * np.outer(gy, gx)
        jac = np.stack([a * np.outer(gy, dgx), a * np.outer(dgy, gx), np.outer(gy, gx),
                        np.ones_like(lam)])
        inside = np.ones(lam.shape, bool)
        if shape is not None:
            inside = ((py >= 0) & (py < shape[0]))[:, None] & ((px >= 0) & (px < shape[1]))
        j = jac[:, inside]
        info = (j / (lam[inside] + read_noise_e**2)) @ j.T
        out[k] = np.sqrt(np.diag(np.linalg.inv(info))[:2])
    return out
