"""How much of the vesicles flowed over a capture zone it captures (for concentration).

Mass-transport-limited capture in a flat channel (Squires, Messinger & Manalis, Nat Biotech
26:417, 2008; shared/reference/spot_counting.md 4.5): the Lévêque flux to a zone of length L on
one wall of a channel H high and W wide is J = D c0 W 0.81 Pe_s^(1/3), Pe_s = 6 (L/H)^2 Q/(W D),
at most full collection (J <= c0 Q). The captured fraction of what flows past is J / (c0 Q),
times the chip's capture efficiency (bench chip.capture_efficiency: how close the surface
reaction comes to the transport limit). The flux falls along the zone as x^(-1/3) from its
upstream edge, so a field's expected density relative to the zone's mean is computed too.
Flow runs along +x (stage coordinates), as on the simulated chip.
"""

from __future__ import annotations

import math

BOLTZMANN = 1.380649e-23
WATER_VISCOSITY_PA_S = 0.89e-3  # 25 °C


def diffusivity_um2_s(diameter_nm: float, temperature_k: float = 298.15) -> float:
    """Stokes-Einstein diffusivity of a sphere in water."""
    radius_m = diameter_nm * 1e-9 / 2
    return BOLTZMANN * temperature_k / (6 * math.pi * WATER_VISCOSITY_PA_S * radius_m) * 1e12


def transport_fraction(flow_ul_min: float, width_um: float, height_um: float, length_um: float,
                       diameter_nm: float = 100.0, across_um: float | None = None) -> float:
    """Fraction of the vesicles flowing through the channel that reach the zone (a zone
    `across_um` wide across the flow takes that share of the channel's width)."""
    if flow_ul_min <= 0:
        return 0.0
    d = diffusivity_um2_s(diameter_nm)
    q = flow_ul_min * 1e9 / 60.0  # um^3/s
    pe_s = 6.0 * (length_um / height_um) ** 2 * q / (width_um * d)
    share = 1.0 if across_um is None else min(1.0, across_um / width_um)
    return min(1.0, 0.81 * pe_s ** (1 / 3) * d * width_um / q) * share


def field_profile(x0_um: float, x1_um: float, zone_x0_um: float, length_um: float) -> float:
    """Mean Lévêque flux over [x0, x1] relative to the zone's mean (1 = average field)."""
    a = min(max(x0_um - zone_x0_um, 0.0), length_um)
    b = min(max(x1_um - zone_x0_um, 0.0), length_um)
    if b - a <= 0 or length_um <= 0:
        return 1.0
    return length_um ** (1 / 3) * (b ** (2 / 3) - a ** (2 / 3)) / (b - a)
