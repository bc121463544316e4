"""A run's recorded spots as the estimators take them.

The spots table has one row per counted spot (a run's spots.csv, chipctl.runs.detections):
step, zone, field, channel, x, y (px), photons (or the counter's amplitude in ADU, converted
with the camera gain and PSF) and snr. With each frame's detection threshold and the zone area
inside each field, it gives a zone and channel's detection estimate and the co-localization of
two channels.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from chipctl.analysis.colocalization import Colocalization, FieldPair, colocalize
from chipctl.analysis.detection import (
    DetectionEstimate,
    FieldNoise,
    SpotNoise,
    estimate_detection,
    photons_from_amplitude,
)
from chipctl.analysis.uncertainty import Factor

FloatArray = NDArray[np.float64]
COLUMNS = ("zone", "field", "channel", "x", "y", "snr")


@dataclass(frozen=True)
class SpotTable:
    """Spots of a run, column-wise."""

    step: NDArray[np.int64]
    zone: NDArray[np.str_]
    field: NDArray[np.int64]
    channel: NDArray[np.str_]
    x: FloatArray
    y: FloatArray
    photons: FloatArray
    snr: FloatArray

    @classmethod
    def from_rows(cls, rows: Iterable[Mapping[str, Any]], e_per_adu: float | None = None,
                  psf_sigma_px: float | None = None) -> SpotTable:
        """From row mappings; a row without ``photons`` needs ``amplitude`` (ADU) and the
        camera's ``e_per_adu`` and ``psf_sigma_px`` to convert it."""
        cols: dict[str, list[Any]] = {c: [] for c in (*COLUMNS, "photons", "step")}
        for k, row in enumerate(rows):
            for c in COLUMNS:
                if row.get(c) in (None, ""):
                    raise ValueError(f"spots table row {k + 1}: no '{c}'")
                cols[c].append(row[c])
            cols["photons"].append(_photons(row, k, e_per_adu, psf_sigma_px))
            cols["step"].append(row.get("step") or 0)
        return cls(np.asarray(cols["step"], float).astype(np.int64),
                   np.asarray(cols["zone"], str),
                   np.asarray(cols["field"], float).astype(np.int64),
                   np.asarray(cols["channel"], str), np.asarray(cols["x"], float),
                   np.asarray(cols["y"], float), np.asarray(cols["photons"], float),
                   np.asarray(cols["snr"], float))

    @classmethod
    def from_columns(cls, places: Mapping[str, NDArray[Any]], spots: NDArray[Any],
                     e_per_adu: float,
                     psf_sigma_px: float) -> SpotTable:
        """From a run's recorded spots (their ``x``, ``y``, ``amplitude`` in ADU and ``snr``)
        and, per spot, where its frame was taken (``step``, ``zone``, ``field``, ``channel``):
        column-wise, the way a report reads a whole run."""
        for c in ("zone", "field", "channel"):
            if any(v is None or v == "" for v in set(places[c].tolist())):
                raise ValueError(f"spots table: a frame without its '{c}'")
        step = np.array([0 if v is None or v == "" else v for v in places["step"].tolist()],
                        float) if places["step"].size else np.zeros(0)
        return cls(step.astype(np.int64),
                   np.asarray(places["zone"], str),
                   np.asarray(places["field"], float).astype(np.int64),
                   np.asarray(places["channel"], str), np.asarray(spots["x"], float),
                   np.asarray(spots["y"], float),
                   photons_from_amplitude(spots["amplitude"], e_per_adu, psf_sigma_px),
                   np.asarray(spots["snr"], float))

    def select(self, zone: str, channel: str, step: int | None = None) -> SpotTable:
        """The spots of one zone and channel (in one step: a zone imaged by several steps)."""
        keep = (self.zone == zone) & (self.channel == channel)
        if step is not None:
            keep &= self.step == step
        return SpotTable(self.step[keep], self.zone[keep], self.field[keep], self.channel[keep],
                         self.x[keep], self.y[keep], self.photons[keep], self.snr[keep])

    @property
    def xy(self) -> FloatArray:
        """N x 2 positions (x column, y row)."""
        return np.column_stack([self.x, self.y])


def _photons(row: Mapping[str, Any], k: int, e_per_adu: float | None,
             psf_sigma_px: float | None) -> float:
    if row.get("photons") not in (None, ""):
        return float(row["photons"])
    if row.get("amplitude") in (None, ""):
        raise ValueError(f"spots table row {k + 1}: neither 'photons' nor 'amplitude'")
    if e_per_adu is None or psf_sigma_px is None:
        raise ValueError("converting amplitudes to photons needs the camera's e_per_adu and "
                         "the PSF sigma")
    return float(photons_from_amplitude(float(row["amplitude"]), e_per_adu, psf_sigma_px))


def zone_detection(table: SpotTable, zone: str, channel: str, thresholds: Mapping[int, float],
                   areas_px: Mapping[int, float], noise: SpotNoise, floor_photons: float = 0.0,
                   step: int | None = None) -> DetectionEstimate:
    """Detection estimate of one zone and channel over its fields (``thresholds`` and
    ``areas_px`` per field; a field without spots takes its noise from ``noise``)."""
    spots = table.select(zone, channel, step)
    fields = sorted(areas_px)
    noises = []
    for f in fields:
        here = spots.field == f
        if np.any(here):
            noises.append(FieldNoise.from_spots(spots.photons[here], spots.snr[here],
                                                thresholds[f], areas_px[f],
                                                noise.psf_sigma_px))
        else:
            noises.append(FieldNoise.from_model(noise, thresholds[f], areas_px[f]))
    index = np.searchsorted(np.asarray(fields), spots.field)
    return estimate_detection(spots.photons, index, noises, noise.psf_sigma_px, floor_photons)


def zone_colocalization(table: SpotTable, zone: str, reference: str, other: str,
                        shape: tuple[int, int], other_detection: Factor | None = None,
                        step: int | None = None) -> Colocalization:
    """Share of the reference channel's vesicles on a zone that are positive for ``other``."""
    ref, oth = table.select(zone, reference, step), table.select(zone, other, step)
    fields = sorted(set(ref.field.tolist()) | set(oth.field.tolist()))
    pairs = [FieldPair(ref.xy[ref.field == f], oth.xy[oth.field == f], shape) for f in fields]
    return colocalize(pairs, other_detection)
