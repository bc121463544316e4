"""Co-expression of the markers on each antibody zone: of the vesicles a zone captured and its
own marker's label shows, the fraction also positive for each other labelled marker, by
one-to-one matching of spots between the channels within a radius from the measured channel
registration, corrected for chance coincidence and for the other channel's detection
efficiency on the zone (its fields, with the brightness pooled over the channel's zones: the
co-positive vesicles are a subset as bright as the rest; chipctl.analysis.colocalization).
Matched pairs' photons also feed the bleed-through check.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from chipctl.analysis import qc
from chipctl.analysis.colocalization import Colocalization, match
from chipctl.analysis.concentration import Concentrations, ZoneResult
from chipctl.analysis.evidence import RunEvidence
from chipctl.analysis.spots import SpotTable, zone_colocalization
from chipctl.analysis.uncertainty import Factor
from chipctl.analysis.zone_detection import factor_of


@dataclass(frozen=True)
class CoExpression:
    """Fraction of a zone's ``marker``+ vesicles that are also ``other``+."""

    zone: str
    marker: str
    other: str
    channel: str
    other_channel: str
    result: Colocalization

    def as_dict(self) -> dict[str, Any]:
        """JSON-able."""
        r = self.result
        return {"zone": self.zone, "marker": self.marker, "other": self.other,
                "channel": self.channel, "other_channel": self.other_channel,
                "fraction": r.fraction, "ci95": list(r.ci95), "raw_fraction": r.raw_fraction,
                "chance": r.chance, "matched": r.matched, "reference_spots": r.reference_spots,
                "other_spots": r.other_spots, "radius_px": r.registration.radius_px,
                "shift_px": list(r.registration.shift_px),
                "registration_measured": r.registration.measured}


def coexpression(ev: RunEvidence, conc: Concentrations) -> tuple[list[CoExpression],
                                                                 list[qc.Flag]]:
    """Every (zone, other marker) pair imaged together, and bleed-through flags."""
    out: list[CoExpression] = []
    flags: list[qc.Flag] = []
    if ev.spots is None or ev.geo is None:
        return out, flags
    shape = (ev.geo.height_px, ev.geo.width_px)
    for zr in conc.zones:
        for other, channel in sorted(ev.labels.dyes.items()):
            if channel == zr.channel or (zr.zone, channel) not in ev.final:
                continue
            step = int(ev.final[(zr.zone, zr.channel)][0]["step"])
            det = conc.detection(channel)
            factor = factor_of(det.zone_pooled(zr.zone)) if det is not None else None
            if factor is not None and ev.labelling is not None:  # the other dye's labelling
                factor = Factor("detection x labelling", factor.value * ev.labelling.value,
                                math.hypot(factor.rsd, ev.labelling.rsd), factor.source)
            res = zone_colocalization(ev.spots, zr.zone, zr.channel, channel, shape, factor,
                                      step)
            if res.reference_spots == 0:
                continue
            out.append(CoExpression(zr.zone, zr.marker, other, zr.channel, channel, res))
            flag = _bleed(ev.spots, zr, channel, step, res)
            if flag is not None:
                flags.append(flag)
    return out, flags


def _bleed(spots: SpotTable, zr: ZoneResult, other: str, step: int, res: Colocalization
           ) -> qc.Flag | None:
    """Matched pairs' photons of the zone's channel and another, for qc.bleed_through."""
    ref, oth = spots.select(zr.zone, zr.channel, step), spots.select(zr.zone, other, step)
    shift = np.asarray(res.registration.shift_px)
    ref_p, oth_p = [], []
    for f in sorted(set(ref.field.tolist())):
        a, b = ref.field == f, oth.field == f
        i, j = match(ref.xy[a], oth.xy[b] - shift, res.registration.radius_px)
        ref_p.append(ref.photons[a][i])
        oth_p.append(oth.photons[b][j])
    if not ref_p:
        return None
    return qc.bleed_through(np.concatenate(ref_p), np.concatenate(oth_p), res,
                            f"{zr.zone}: {zr.channel} in {other}")
