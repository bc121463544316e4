"""Temporal linking: each static captured vesicle is counted once, with its arrival time.

Captured vesicles do not move; the stage may drift. Each frame's detections are registered to
the vesicles already known (translation from a displacement vote, refined by the median
offset of linked pairs), linked within ``link_radius_px``, and the unlinked ones become new
vesicles. A vesicle that bleaches or blinks stays counted. A vesicle is confirmed (counted)
once it has been detected ``min_detections`` times, which keeps isolated noise detections
out of the cumulative count; an unconfirmed detection not seen again within
``forget_after`` frames is forgotten, which keeps the work per frame bounded.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from chipctl.vision.model import CountResult
from chipctl.vision.neighbors import greedy_match, pairs_within, vote

_VOTE_POINTS = 400
_MIN_VOTES = 5


@dataclass(frozen=True)
class Vesicle:
    """One tracked vesicle; x, y in the coordinates of the first frame (drift removed)."""

    id: int
    x: float
    y: float
    arrival: float
    last_seen: float
    detections: int


@dataclass(frozen=True)
class TrackUpdate:
    """Outcome of one frame: drift, links, new vesicles and the cumulative count."""

    t: float
    drift: tuple[float, float]
    linked: int
    new: int
    count: int


class VesicleTracker:
    """Cumulative, drift-corrected vesicle count over a sequence of frames of one field."""

    def __init__(self, link_radius_px: float = 1.5, min_detections: int = 2,
                 max_drift_step_px: float = 15.0, forget_after: int = 5) -> None:
        self.link_radius_px = link_radius_px
        self.min_detections = min_detections
        self.max_drift_step_px = max_drift_step_px
        self.forget_after = forget_after
        self._frame = 0
        self._seen = np.empty(0, np.int64)  # frame number of the last detection
        self._pos = np.empty((0, 2))
        self._arrival = np.empty(0)
        self._last = np.empty(0)
        self._hits = np.empty(0, np.int64)
        self._drift = np.zeros(2)

    @property
    def drift(self) -> tuple[float, float]:
        """Current stage drift (dx, dy) in pixels relative to the first frame."""
        return float(self._drift[0]), float(self._drift[1])

    @property
    def count(self) -> int:
        """Number of confirmed vesicles seen so far (never decreases)."""
        return int((self._hits >= self.min_detections).sum())

    def vesicles(self) -> list[Vesicle]:
        """The confirmed vesicles, in order of arrival."""
        idx = np.flatnonzero(self._hits >= self.min_detections)
        idx = idx[np.argsort(self._arrival[idx], kind="stable")]
        return [Vesicle(int(k), float(self._pos[k, 0]), float(self._pos[k, 1]),
                        float(self._arrival[k]), float(self._last[k]), int(self._hits[k]))
                for k in idx]

    def update(self, result: CountResult, t: float) -> TrackUpdate:
        """Link the detections of the frame taken at time ``t``."""
        xy = result.xy.astype(float)
        if len(self._pos) and len(xy):
            self._drift = self._register(xy)
        ref = xy - self._drift
        i, j = greedy_match(ref, self._pos, self.link_radius_px)
        self._refine(ref[i], j, t)
        new = np.setdiff1d(np.arange(len(ref)), i)
        self._add(ref[new], t)
        self._forget()
        self._frame += 1
        return TrackUpdate(t, self.drift, len(i), len(new), self.count)

    def _forget(self) -> None:
        """Drop unconfirmed detections that were not seen again for ``forget_after`` frames."""
        stale = (self._hits < self.min_detections) & (
            self._frame - self._seen >= self.forget_after)
        if stale.any():
            keep = ~stale
            for name in ("_pos", "_arrival", "_last", "_hits", "_seen"):
                setattr(self, name, getattr(self, name)[keep])

    def _register(self, xy: np.ndarray) -> np.ndarray:
        """Drift estimate: displacement vote around the previous drift, then a median."""
        pts = xy[:: max(1, len(xy) // _VOTE_POINTS)] - self._drift
        i, j, _ = pairs_within(pts, self._pos, self.max_drift_step_px)
        if len(i) < _MIN_VOTES:
            return self._drift
        d = pts[i] - self._pos[j]
        step = vote(d, self.max_drift_step_px)
        a, b = greedy_match(xy - self._drift - step, self._pos, self.link_radius_px * 2)
        if len(a) < _MIN_VOTES:
            return self._drift
        return self._drift + np.median(xy[a] - self._drift - self._pos[b], axis=0)

    def _refine(self, ref: np.ndarray, idx: np.ndarray, t: float) -> None:
        n = self._hits[idx]
        self._pos[idx] = (self._pos[idx] * n[:, None] + ref) / (n + 1)[:, None]
        self._hits[idx] += 1
        self._last[idx] = t
        self._seen[idx] = self._frame

    def _add(self, ref: np.ndarray, t: float) -> None:
        self._pos = np.vstack([self._pos, ref])
        self._arrival = np.concatenate([self._arrival, np.full(len(ref), t)])
        self._last = np.concatenate([self._last, np.full(len(ref), t)])
        self._hits = np.concatenate([self._hits, np.ones(len(ref), np.int64)])
        self._seen = np.concatenate([self._seen, np.full(len(ref), self._frame)])
