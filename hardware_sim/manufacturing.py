"""Parts as built: a manufactured chip and syringe differ from their drawing within the maker's
tolerance, and only the drawing (with the tolerance) is written in the bench file.

A soft-lithography chip's channel is as high as its SU-8 master is thick (50 um drawn, about
2 um spread from master to master), its width and the spotted capture zones' edges vary by
about 10 um, and a gastight syringe's bore by about 1 % of its diameter (maker's tolerance), so
the pumped volume by 2 %. The simulated bench builds its chip and syringes from the drawing with
one seeded draw of each (standard deviations below): the truth a run is judged against is the
part as built, as on a real bench, where nobody knows the actual height of the chip on the
stage.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from hardware_sim.chip import Chip, Zone


@dataclass(frozen=True)
class Tolerance:
    """The maker's spread of a part around its drawing (one standard deviation)."""

    channel_height_um: float = 2.0
    channel_width_um: float = 10.0
    zone_edge_um: float = 10.0
    syringe_bore: float = 0.01  # relative, of the inner diameter

    def bench_entry(self) -> dict[str, str]:
        """The tolerance as a bench file states it (chip.tolerance)."""
        return {"channel_height": f"{self.channel_height_um:g} um",
                "channel_width": f"{self.channel_width_um:g} um",
                "zone_size": f"{self.zone_edge_um:g} um"}


NOMINAL = Tolerance(0.0, 0.0, 0.0, 0.0)  # every part exactly as drawn


def _rng(seed: int) -> np.random.Generator:
    return np.random.default_rng([seed, 0x6A5])  # its own stream: the chip's draws unchanged


def as_built_chip(drawing: Chip, seed: int, tol: Tolerance = Tolerance()) -> Chip:
    """The chip made from `drawing`: channel and zones off by one draw each, everything else
    (sites, rates, debris, focus plane) as drawn."""
    rng = _rng(seed)
    height = drawing.channel_height_um + tol.channel_height_um * rng.standard_normal()
    width = drawing.channel_width_um + tol.channel_width_um * rng.standard_normal()
    zones = [_zone_as_built(z, tol, rng) for z in drawing.zones]
    return Chip(zones, channel_width_um=max(width, 1.0), channel_height_um=max(height, 1.0),
                seed=drawing.seed, **drawing.options)


def _zone_as_built(zone: Zone, tol: Tolerance, rng: np.random.Generator) -> Zone:
    dw, dh = tol.zone_edge_um * rng.standard_normal(2)
    return replace(zone, width_um=max(zone.width_um + dw, 1.0),
                   height_um=max(zone.height_um + dh, 1.0))


def syringes_as_built(pumps: list[dict[str, Any]], seed: int, port: int,
                      tol: Tolerance = Tolerance()) -> list[dict[str, Any]]:
    """Each pump's spec on one port with `bore_mm`, its syringe's actual inner diameter (the
    drawing's `diameter_mm` is what the bench file says and the controller sets)."""
    rng = np.random.default_rng([seed, 0x5E7, port])
    return [dict(p, bore_mm=p["diameter_mm"] * (1 + tol.syringe_bore * rng.standard_normal()))
            for p in pumps]
