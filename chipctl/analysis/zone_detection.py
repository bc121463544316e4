"""Detection efficiency of a recorded zone in one channel: its fields (where they lie on the
zone, the zone area inside each), each field's limit of detection from the recorded threshold
and the noise its spots show, and the truncated brightness fit with crowding
(chipctl.analysis.detection). A zone with too few spots to fit borrows the brightness fitted
on every zone of the channel, so the isotype control is corrected like its neighbours.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import cached_property
from typing import Any

import numpy as np

from chipctl.analysis import transport
from chipctl.analysis.brightness import BrightnessFit
from chipctl.analysis.detection import (
    DetectionEstimate,
    FieldNoise,
    detection_factor,
    estimate_detection,
)
from chipctl.analysis.evidence import RunEvidence
from chipctl.analysis.uncertainty import Factor


@dataclass(frozen=True)
class ZoneFields:
    """The last imaging of one zone in one channel: rows (one per field) and footprints."""

    zone: str
    channel: str
    step: int
    rows: list[dict[str, Any]]
    footprints: list[transport.Footprint]

    @property
    def areas_mm2(self) -> list[float]:
        """Zone area inside each field."""
        return [fp.area_mm2 for fp in self.footprints]

    @property
    def counts(self) -> list[int]:
        """Detected spots per field (the run's own counts)."""
        return [int(r["count"]) for r in self.rows]

    @property
    def imaged_s(self) -> float:
        """When the fields were imaged (:func:`imaged_s`)."""
        return imaged_s(self.rows)


def imaged_s(rows: list[dict[str, Any]]) -> float:
    """Protocol time (s) of count rows' frames, their mean (inf when not recorded): what
    stood over a zone was captured until then."""
    times = [float(r["t_s"]) for r in rows if r.get("t_s") not in (None, "")]
    return sum(times) / len(times) if times else math.inf


def zone_fields(ev: RunEvidence, zone: str, channel: str) -> ZoneFields | None:
    """The fields of a zone in a channel that lie on the zone (None if none do)."""
    rows = ev.final.get((zone, channel))
    spec = ev.bench.chip.zones.get(zone) if ev.bench is not None else None
    if not rows or spec is None or ev.geo is None:
        return None
    shape = transport.Zone(spec.size_um[0], spec.size_um[1], spec.center_um)
    kept, prints = [], []
    for row in sorted(rows, key=lambda r: int(r["field"])):
        centre = ((row["x_um"], row["y_um"]) if row.get("x_um") is not None
                  and row.get("y_um") is not None else spec.center_um)
        fp = transport.footprint(shape, centre, ev.geo.field_size_um)
        if fp.area_mm2 > 0:
            kept.append(row)
            prints.append(fp)
    return ZoneFields(zone, channel, int(rows[0]["step"]), kept, prints) if kept else None


def _field_noises(ev: RunEvidence, zf: ZoneFields) -> tuple[list[FieldNoise], np.ndarray,
                                                             np.ndarray, int]:
    """Per field: its noise and limit; the spots' photons and field index; spotless fields."""
    assert ev.spots is not None
    spots = ev.spots.select(zf.zone, zf.channel, zf.step)
    noises: list[FieldNoise | None] = []
    photons, index = [], []
    for k, (row, fp) in enumerate(zip(zf.rows, zf.footprints, strict=True)):
        here = spots.field == int(row["field"])
        area_px = fp.area_mm2 / ev.pixel_area_mm2
        if np.any(here):
            noises.append(FieldNoise.from_spots(spots.photons[here], spots.snr[here],
                                                ev.threshold(row), area_px))
            photons.append(spots.photons[here])
            index.append(np.full(int(here.sum()), k))
        else:
            noises.append(None)
    known = [n for n in noises if n is not None]
    empty = len(noises) - len(known)
    if known:  # a spotless field: the channel's typical noise at its own threshold
        noise = float(np.median([n.noise_photons for n in known]))
        noises = [n or FieldNoise(ev.threshold(row) * noise, noise, fp.area_mm2
                                  / ev.pixel_area_mm2)
                  for n, row, fp in zip(noises, zf.rows, zf.footprints, strict=True)]
    return ([n for n in noises if n is not None],
            np.concatenate(photons) if photons else np.empty(0),
            np.concatenate(index) if index else np.empty(0, np.intp), empty)


class ChannelDetection:
    """Detection estimates of every zone imaged in one channel of a run."""

    def __init__(self, ev: RunEvidence, channel: str) -> None:
        self.ev, self.channel = ev, channel
        self._zones: dict[str, DetectionEstimate | None] = {}

    @cached_property
    def pooled(self) -> BrightnessFit | None:
        """The brightness of the channel's vesicles fitted over all its zones."""
        zones = [z for (z, c) in self.ev.final if c == self.channel]
        parts = [p for p in (self._inputs(z) for z in zones) if p is not None]
        if not parts:
            return None
        fields = [f for p in parts for f in p[0]]
        offsets = np.cumsum([0] + [len(p[0]) for p in parts[:-1]])
        photons = np.concatenate([p[1] for p in parts])
        index = np.concatenate([p[2] + o for p, o in zip(parts, offsets, strict=True)])
        if photons.size == 0:
            return None
        return estimate_detection(photons, index, fields, self.psf).brightness

    @cached_property
    def psf(self) -> float:
        """The PSF sigma the channel's frames were counted with."""
        rows = [r for (z, c), rows in self.ev.final.items() if c == self.channel for r in rows]
        return self.ev.frame_psf(rows)

    def _inputs(self, zone: str) -> tuple[list[FieldNoise], np.ndarray, np.ndarray] | None:
        zf = zone_fields(self.ev, zone, self.channel)
        if zf is None or self.ev.spots is None:
            return None
        fields, photons, index, _ = _field_noises(self.ev, zf)
        return (fields, photons, index) if len(fields) == len(zf.rows) else None

    def zone(self, zone: str) -> DetectionEstimate | None:
        """The zone's detection estimate (None without spots or fields)."""
        if zone not in self._zones:
            self._zones[zone] = self._estimate(zone)
        return self._zones[zone]

    def zone_pooled(self, zone: str) -> DetectionEstimate | None:
        """The zone's detection with the channel's pooled brightness (a subset of a channel's
        vesicles, e.g. those co-positive with another marker, is as bright as the rest)."""
        parts = self._inputs(zone)
        if parts is None or parts[1].size == 0:
            return None
        if self.pooled is None:
            return self.zone(zone)
        return estimate_detection(parts[1], parts[2], parts[0], self.psf, brightness=self.pooled)

    def _estimate(self, zone: str) -> DetectionEstimate | None:
        parts = self._inputs(zone)
        if parts is None or parts[1].size == 0:
            return None
        est = estimate_detection(parts[1], parts[2], parts[0], self.psf)
        if not est.measured and self.pooled is not None:
            est = estimate_detection(parts[1], parts[2], parts[0], self.psf,
                                     brightness=self.pooled)
        return est


def factor_of(est: DetectionEstimate | None) -> Factor:
    """The detection term of the error budget (all counted, when nothing was detected)."""
    if est is None:
        return Factor("detection", 1.0, 0.0, "no spots detected: nothing to correct")
    if not math.isfinite(est.counted_fraction_rsd):
        return Factor("detection", est.counted_fraction, 0.5, est.describe()
                      + " (uncertainty not measurable: 50 % taken)")
    return detection_factor(est)
