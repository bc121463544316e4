"""Capture efficiency of a zone from what a user knows: geometry, flow, vesicle sizes.

Physics (the contract the simulator solves numerically; this module solves it in closed form):

- fully developed pressure-driven flow between parallel plates (H << W, side walls ignored),
  mean velocity U = Q / (W H), parabolic profile, wall shear rate 6 U / H;
- Stokes-Einstein diffusivity D = k_B T / (3 pi eta d), water at 25 C;
- capture on the bottom wall of each zone; zones lie side by side across the width, so each
  zone's leading edge sees undepleted sample and the zone draws on its share w / W of the stream;
- transport limit: in the Graetz variable xi = D x / (U H^2) the fraction of a zone's stream
  collected over its first x is the Leveque result with the curvature correction of the
  parabolic profile, F(xi) = A xi^(2/3) / (1 + a xi^(1/3) + b xi^(2/3)), A = 1.4674; a and b
  were fitted to a numerical solution of the advection-diffusion equation, which the tests
  re-solve (within 0.5 % for xi <= 0.1). The local flux falls as x^(-1/3) from the leading edge;
- finite surface reaction (k_r = k_on b_m, a velocity; Da_H = k_r H / D): transport and reaction
  in series over the zone, 1 / G = 1 / F(xi) + 1 / (Da_H xi) (Squires, Messinger & Manalis,
  Nat Biotech 26:417, 2008), within 2.5 % of the numerical solution from Da_H = 1 to 1000; the
  first x of a zone collects what a zone of length x would (no axial diffusion);
- saturation: irreversible Langmuir capture on free sites at each position along the zone,
  db/dt = c0 / (1/k_M + 1/(k_on (b_m - b))), with k_M the local transport coefficient that gives
  the flux above on an empty zone (a local approximation: it ignores the thinner depletion layer
  downstream of a filled region, so it is exact only while occupancy is small or reaction-limited).

The zone's capture efficiency is the fraction of the marker-positive vesicles pumped through the
channel that the zone captures, number-averaged over the size distribution (the flux depends on
D^(2/3), so small vesicles are over-represented on the surface).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy.integrate import solve_ivp

from chipctl.analysis.standing import captured_share

BOLTZMANN_J_K = 1.380649e-23
TEMPERATURE_K = 298.15
WATER_VISCOSITY_PA_S = 0.89e-3  # 25 C
LEVEQUE_A = 1.5 * 6 ** (1 / 3) / (math.gamma(4 / 3) * 9 ** (1 / 3))  # 1.4674
CURVATURE_A, CURVATURE_B = 0.1373, 0.0756  # fitted to the numerical Graetz-Leveque solution
XI_VALID = 0.1  # largest Graetz number of a zone where F(xi) is checked against the PDE
UM3_S_PER_UL_MIN = 1e9 / 60.0
PER_UM3_PER_ML = 1e-12

FloatArray = NDArray[np.float64]
FlowAxis = Literal["+x", "-x", "+y", "-y"]
_T_NODES, _T_WEIGHTS = np.polynomial.legendre.leggauss(24)


def diffusivity_um2_s(diameter_nm: ArrayLike, temperature_k: float = TEMPERATURE_K,
                      viscosity_pa_s: float = WATER_VISCOSITY_PA_S) -> FloatArray:
    """Stokes-Einstein diffusivity (um^2/s) of spheres of ``diameter_nm`` in water."""
    d_m = np.asarray(diameter_nm, float) * 1e-9
    return BOLTZMANN_J_K * temperature_k / (3 * math.pi * viscosity_pa_s * d_m) * 1e12


@dataclass(frozen=True)
class SizeDistribution:
    """Vesicle diameters as nodes with number-fraction weights (a quadrature of the sample)."""

    diameters_nm: tuple[float, ...]
    weights: tuple[float, ...]

    def __post_init__(self) -> None:
        d, w = np.asarray(self.diameters_nm, float), np.asarray(self.weights, float)
        if d.size == 0 or d.shape != w.shape:
            raise ValueError("a size distribution needs as many weights as diameters (>= 1)")
        if np.any(~np.isfinite(d)) or np.any(d <= 0):
            raise ValueError("vesicle diameters must be positive")
        if np.any(w < 0) or not w.sum() > 0:
            raise ValueError("size weights must be non-negative and not all zero")
        object.__setattr__(self, "weights", tuple(float(x) for x in w / w.sum()))

    @classmethod
    def lognormal(cls, median_nm: float, gsd: float, nodes: int = 16) -> SizeDistribution:
        """A log-normal number distribution (median, geometric sd) by Gauss-Hermite nodes."""
        if median_nm <= 0 or gsd < 1:
            raise ValueError("a log-normal size needs median > 0 and geometric sd >= 1")
        if gsd == 1:
            return cls.single(median_nm)
        u, w = np.polynomial.hermite_e.hermegauss(nodes)
        return cls(tuple(median_nm * gsd**u), tuple(w))

    @classmethod
    def single(cls, diameter_nm: float) -> SizeDistribution:
        """All vesicles of one size."""
        return cls((float(diameter_nm),), (1.0,))

    @classmethod
    def from_sample(cls, diameters_nm: ArrayLike, counts: ArrayLike | None = None
                    ) -> SizeDistribution:
        """From measured sizes, or a histogram (bin centres and counts, e.g. from NTA)."""
        d = np.asarray(diameters_nm, float).ravel()
        n = np.ones_like(d) if counts is None else np.asarray(counts, float).ravel()
        return cls(tuple(d), tuple(n))

    def diffusivities_um2_s(self) -> FloatArray:
        """Stokes-Einstein diffusivity of each node."""
        return diffusivity_um2_s(self.diameters_nm)

    def effective_diffusivity_um2_s(self) -> float:
        """The diffusivity whose transport-limited flux equals the mean: (mean D^(2/3))^(3/2)."""
        w = np.asarray(self.weights)
        return float(np.sum(w * self.diffusivities_um2_s() ** (2 / 3)) ** 1.5)


@dataclass(frozen=True)
class Channel:
    """The flow channel: a flat duct ``width_um`` wide and ``height_um`` high."""

    width_um: float
    height_um: float

    def __post_init__(self) -> None:
        if not (self.width_um > 0 and self.height_um > 0):
            raise ValueError("channel width and height must be positive")

    def mean_velocity_um_s(self, flow_ul_min: float) -> float:
        """Mean flow velocity Q / (W H)."""
        return flow_ul_min * UM3_S_PER_UL_MIN / (self.width_um * self.height_um)

    def wall_shear_rate_s(self, flow_ul_min: float) -> float:
        """Wall shear rate of the parabolic profile, 6 U / H."""
        return 6.0 * self.mean_velocity_um_s(flow_ul_min) / self.height_um


@dataclass(frozen=True)
class Zone:
    """A capture zone: ``length_um`` along the flow, ``width_um`` across, centre in stage um."""

    length_um: float
    width_um: float
    center_um: tuple[float, float] = (0.0, 0.0)
    flow_axis: FlowAxis = "+x"

    def __post_init__(self) -> None:
        if not (self.length_um > 0 and self.width_um > 0):
            raise ValueError("zone length and width must be positive")

    @property
    def area_mm2(self) -> float:
        """Zone area."""
        return self.length_um * self.width_um * 1e-6

    def along_um(self, x_um: float, y_um: float) -> float:
        """Distance of a stage point from the zone's leading (upstream) edge, along the flow."""
        sign = 1.0 if self.flow_axis[0] == "+" else -1.0
        axis = 0 if self.flow_axis[1] == "x" else 1
        coord = (x_um, y_um)[axis]
        return sign * (coord - self.center_um[axis]) + self.length_um / 2


@dataclass(frozen=True)
class Footprint:
    """The part of a zone inside a field: an interval along the flow and a share across it."""

    start_um: float  # from the zone's leading edge
    end_um: float
    across_fraction: float  # share of the zone's width inside the field
    area_mm2: float


def footprint(zone: Zone, field_center_um: tuple[float, float],
              field_size_um: tuple[float, float]) -> Footprint:
    """Where a field (centre and (width along x, height along y), stage um) lies on a zone."""
    along_axis = 0 if zone.flow_axis[1] == "x" else 1
    across_axis = 1 - along_axis
    half_along = field_size_um[along_axis] / 2
    a = zone.along_um(*field_center_um)
    start = min(max(a - half_along, 0.0), zone.length_um)
    end = min(max(a + half_along, 0.0), zone.length_um)
    c_field, c_zone = field_center_um[across_axis], zone.center_um[across_axis]
    half_f, half_z = field_size_um[across_axis] / 2, zone.width_um / 2
    overlap = min(c_field + half_f, c_zone + half_z) - max(c_field - half_f, c_zone - half_z)
    across = max(overlap, 0.0) / zone.width_um
    return Footprint(start, end, across, (end - start) * across * zone.width_um * 1e-6)


def collected_fraction(xi: ArrayLike) -> FloatArray:
    """Fraction of a stream collected by an absorbing wall up to Graetz number ``xi``."""
    t = np.cbrt(np.asarray(xi, float))
    return LEVEQUE_A * t**2 / (1 + CURVATURE_A * t + CURVATURE_B * t**2)


def _local_sherwood(t: FloatArray) -> FloatArray:
    """dF/dxi at xi = t^3 (the wall flux in units of D c0 / H)."""
    den = 1 + CURVATURE_A * t + CURVATURE_B * t**2
    return np.asarray(LEVEQUE_A * (2 + CURVATURE_A * t) / (3 * t * den**2))


def reactive_fraction(xi: ArrayLike, damkohler_h: ArrayLike | None) -> FloatArray:
    """Collected fraction with a finite wall reaction: 1 / G = 1 / F(xi) + 1 / (Da_H xi)."""
    f = collected_fraction(xi)
    if damkohler_h is None:
        return f
    r = np.asarray(damkohler_h, float) * np.asarray(xi, float)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.asarray(np.where((f > 0) & (r > 0), f * r / (f + r), 0.0))


def _local_flux(xi: FloatArray, damkohler_h: FloatArray | None) -> FloatArray:
    """dG/dxi: the wall flux on an empty zone in units of D c0 / H."""
    t = np.cbrt(np.maximum(xi, 1e-30))
    d_f = _local_sherwood(t)
    if damkohler_h is None:
        return d_f
    f, r = collected_fraction(xi), damkohler_h * xi
    return np.asarray((d_f * r**2 + damkohler_h * f**2) / (f + r) ** 2)


@dataclass(frozen=True)
class TransportRegime:
    """Dimensionless numbers of a zone at one flow rate (size-averaged where they vary)."""

    graetz: float  # xi at the zone's trailing edge, smallest vesicles
    boundary_layer_ratio: float  # Leveque layer thickness at the trailing edge / H
    peclet_shear: float  # Pe_s = 6 (L/H)^2 Q / (W D), effective D
    damkohler: float | None  # k_r / mean k_M; None when transport-limited
    valid: bool  # graetz <= XI_VALID (the closed form was checked there)


@dataclass(frozen=True)
class CaptureModel:
    """Closed-form capture of one zone; ``reaction_velocity_um_s`` = k_on b_m (None: infinite)."""

    channel: Channel
    zone: Zone
    sizes: SizeDistribution
    reaction_velocity_um_s: float | None = None

    def _graetz(self, flow_ul_min: float, along_um: float) -> FloatArray:
        u = self.channel.mean_velocity_um_s(flow_ul_min)
        return self.sizes.diffusivities_um2_s() * along_um / (u * self.channel.height_um**2)

    def collected(self, flow_ul_min: float, start_um: float, end_um: float) -> float:
        """Size-averaged fraction of the zone's stream captured between two distances."""
        if flow_ul_min <= 0 or end_um <= start_um:
            return 0.0
        xi0, xi1 = self._graetz(flow_ul_min, start_um), self._graetz(flow_ul_min, end_um)
        da = self._damkohler_h()
        per_size = reactive_fraction(xi1, da) - reactive_fraction(xi0, da)
        return float(np.sum(np.asarray(self.sizes.weights) * np.minimum(per_size, 1.0)))

    def _damkohler_h(self) -> FloatArray | None:
        """k_r H / D per size node (None when transport-limited)."""
        if self.reaction_velocity_um_s is None:
            return None
        return np.asarray(self.reaction_velocity_um_s * self.channel.height_um
                          / self.sizes.diffusivities_um2_s())

    def efficiency(self, flow_ul_min: float) -> float:
        """Fraction of the channel's (marker-positive) vesicles the zone captures."""
        share = min(1.0, self.zone.width_um / self.channel.width_um)
        return share * self.collected(flow_ul_min, 0.0, self.zone.length_um)

    def field_share(self, flow_ul_min: float, fp: Footprint) -> float:
        """Fraction of the zone's captured vesicles that lie inside the footprint ``fp``."""
        whole = self.collected(flow_ul_min, 0.0, self.zone.length_um)
        part = self.collected(flow_ul_min, fp.start_um, fp.end_um)
        return fp.across_fraction * part / whole if whole > 0 else 0.0

    def mass_transfer_um_s(self, flow_ul_min: float, along_um: ArrayLike) -> FloatArray:
        """Local transport coefficient k_M (um/s), shape (positions, sizes): with the reaction
        in series it gives the empty zone's local flux (infinite reaction: the Leveque k_M)."""
        x = np.atleast_1d(np.asarray(along_um, float))[:, None]
        xi = self._graetz(flow_ul_min, 1.0)[None, :] * np.maximum(x, 1e-9)
        d = self.sizes.diffusivities_um2_s()[None, :]
        da = self._damkohler_h()
        sherwood = _local_flux(xi, None if da is None else da[None, :])
        if da is not None:  # remove the reaction's resistance: 1/k_M = 1/j0 - 1/k_r
            sherwood = 1 / (1 / sherwood - 1 / da[None, :])
        return np.asarray(d * sherwood / self.channel.height_um)

    def regime(self, flow_ul_min: float) -> TransportRegime:
        """Graetz, Peclet and Damkohler numbers of the zone at a flow rate."""
        xi = float(self._graetz(flow_ul_min, self.zone.length_um).max())
        d_eff = self.sizes.effective_diffusivity_um2_s()
        q = flow_ul_min * UM3_S_PER_UL_MIN
        pe_s = 6 * (self.zone.length_um / self.channel.height_um) ** 2 * q / (
            self.channel.width_um * d_eff)
        da = None
        if self.reaction_velocity_um_s is not None:
            u_h = self.channel.mean_velocity_um_s(flow_ul_min) * self.channel.height_um
            mean_k_m = u_h * self.collected_transport_limited(flow_ul_min) / self.zone.length_um
            da = self.reaction_velocity_um_s / mean_k_m if mean_k_m > 0 else math.inf
        return TransportRegime(xi, (1.5 * xi) ** (1 / 3), pe_s, da, xi <= XI_VALID)

    def standing_ul(self, seconds: float) -> float:
        """Sample volume (uL) whose vesicles the zone captures from the column standing over
        it for ``seconds`` after the flow stopped (chipctl.analysis.standing)."""
        if seconds <= 0:
            return 0.0
        h = self.channel.height_um
        tau = self.sizes.diffusivities_um2_s() * seconds / h**2
        area_um2 = self.zone.length_um * min(self.zone.width_um, self.channel.width_um)
        share = float(np.sum(np.asarray(self.sizes.weights) * captured_share(tau)))
        return share * h * area_um2 * 1e-9

    def collected_transport_limited(self, flow_ul_min: float) -> float:
        """Size-averaged collected fraction of the zone's stream at infinite reaction rate."""
        xi = self._graetz(flow_ul_min, self.zone.length_um)
        return float(np.sum(np.asarray(self.sizes.weights) * collected_fraction(xi)))


@dataclass(frozen=True)
class FlowSegment:
    """Sample pumped through the chip at one flow rate, then left standing ``standing_s``
    (every pump stopped) as ``share`` of the mixture over the zones."""

    flow_ul_min: float
    volume_ul: float
    standing_s: float = 0.0
    share: float = 1.0

    @property
    def duration_s(self) -> float:
        """How long the segment lasted."""
        return 60.0 * self.volume_ul / self.flow_ul_min if self.flow_ul_min > 0 else 0.0


def captured_ul(model: CaptureModel, seg: FlowSegment) -> float:
    """Sample volume whose vesicles the zone captures from one segment: while it flows
    (efficiency x volume) and while it stands."""
    return (model.efficiency(seg.flow_ul_min) * seg.volume_ul
            + seg.share * model.standing_ul(seg.standing_s))


def segment_field_share(model: CaptureModel, seg: FlowSegment, fp: Footprint) -> float:
    """Share of one segment's capture inside a footprint: the flowing part falls along the
    zone, the standing part lies evenly over it."""
    flowing = model.efficiency(seg.flow_ul_min) * seg.volume_ul
    standing = seg.share * model.standing_ul(seg.standing_s)
    if flowing + standing <= 0:
        return 0.0
    even = fp.across_fraction * (fp.end_um - fp.start_um) / model.zone.length_um
    return (flowing * model.field_share(seg.flow_ul_min, fp) + standing * even) / (
        flowing + standing)


def captured_volume_ml(model: CaptureModel, segments: Sequence[FlowSegment]) -> float:
    """Sum of the captured volumes: captured vesicles = concentration x this (unsaturated)."""
    return sum(captured_ul(model, s) * 1e-3 for s in segments)


def imaged_share(model: CaptureModel, segments: Sequence[FlowSegment],
                 footprints: Sequence[Footprint]) -> float:
    """Fraction of the zone's captured vesicles inside the imaged fields (capture-weighted)."""
    weights = [captured_ul(model, s) for s in segments]
    total = sum(weights)
    if total <= 0:
        return 0.0
    shares = [sum(segment_field_share(model, s, fp) for fp in footprints) for s in segments]
    return sum(w * sh for w, sh in zip(weights, shares, strict=True)) / total


def expected_count(model: CaptureModel, segments: Sequence[FlowSegment], c0_per_ml: float,
                   fp: Footprint) -> float:
    """Expected captured vesicles inside a footprint, far from saturation."""
    return sum(c0_per_ml * captured_ul(model, s) * 1e-3 * segment_field_share(model, s, fp)
               for s in segments)


def saturating_density(model: CaptureModel, segments: Sequence[FlowSegment], c0_per_ml: float,
                       along_um: ArrayLike, site_density_per_um2: float) -> FloatArray:
    """Captured density (per um^2) at positions along the zone, with sites filling (Langmuir).

    With ``model.reaction_velocity_um_s`` = k_on b_m the on-rate is that over the site density;
    without it capture is transport-limited until the sites are full.
    """
    x = np.atleast_1d(np.asarray(along_um, float))
    b = np.zeros_like(x)
    c0 = c0_per_ml * PER_UM3_PER_ML
    w = np.asarray(model.sizes.weights)
    for seg in segments:
        k_m = model.mass_transfer_um_s(seg.flow_ul_min, x)  # (positions, sizes)
        if model.reaction_velocity_um_s is None:
            b = np.minimum(b + c0 * (k_m @ w) * seg.duration_s, site_density_per_um2)
        elif seg.duration_s > 0:
            k_on = model.reaction_velocity_um_s / site_density_per_um2
            b = _fill_sites(b, c0 * k_m, w, site_density_per_um2, k_on * c0, seg.duration_s)
    return np.asarray(np.minimum(b, site_density_per_um2))


def _fill_sites(b: FloatArray, transport: FloatArray, w: FloatArray, b_m: float,
                reaction: float, duration_s: float) -> FloatArray:
    """Integrate db/dt = sum_d w_d / (1 / transport_d + 1 / (reaction (b_m - b))) over a time."""
    def rate(_t: float, y: FloatArray) -> FloatArray:
        free = np.maximum(b_m - y, 0.0)[:, None]
        with np.errstate(divide="ignore"):
            return np.asarray((1 / (1 / transport + 1 / (reaction * free))) @ w)

    return np.asarray(solve_ivp(rate, (0.0, duration_s), b, rtol=1e-6, atol=1e-12).y[:, -1])


def expected_count_saturating(model: CaptureModel, segments: Sequence[FlowSegment],
                              c0_per_ml: float, fp: Footprint,
                              site_density_per_um2: float) -> float:
    """Expected captured vesicles inside a footprint, with binding sites filling."""
    if fp.end_um <= fp.start_um or fp.across_fraction <= 0:
        return 0.0
    s = (_T_NODES + 1) / 2  # x = start + (end - start) s^3 keeps the x^(-1/3) edge smooth
    span = fp.end_um - fp.start_um
    x = fp.start_um + span * s**3
    b = saturating_density(model, segments, c0_per_ml, x, site_density_per_um2)
    integral = float(np.sum(b * 3 * span * s**2 * _T_WEIGHTS / 2))
    return integral * fp.across_fraction * model.zone.width_um
