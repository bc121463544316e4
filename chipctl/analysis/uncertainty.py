"""Concentration of marker-positive vesicles with a 95 % interval from the whole error budget.

concentration = (detected / detection - control density x imaged area) / imaged share
                / capture efficiency / volume x dilution

- *detected*: spots counted on the imaged fields of the zone, in the channel of the zone's label;
- *detection*: the fraction of the vesicles in view that are counted (``detection``: brightness
  above the limit of detection and crowding), with its uncertainty;
- *control*: the isotype zone's detection-corrected density per mm^2 (non-specific binding is
  reaction-limited, so uniform), subtracted per imaged area;
- *imaged share*: the fields' share of the zone's capture (flux-weighted, ``transport``);
- *capture efficiency*: from the transport model or a calibration file (``calibration``).

The interval is computed on the log scale, so its lower bound is always above zero: the
relative variances of the terms add, each counted once. Counting noise is Poisson, inflated by
the field-to-field dispersion beyond Poisson when the fields show it (Pearson chi^2 of the field
counts against their expected shares); that variance is estimated from k - 1 fields, so the
interval uses Student's t with Welch-Satterthwaite degrees of freedom. A zone whose count does
not exceed the control gives an upper limit only.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
from numpy.typing import ArrayLike
from scipy import stats

Z95 = float(stats.norm.ppf(0.975))


@dataclass(frozen=True)
class Factor:
    """A multiplicative term: its value, relative standard uncertainty and where it comes from."""

    name: str
    value: float
    rsd: float
    source: str = ""

    def __post_init__(self) -> None:
        if not (math.isfinite(self.value) and self.value > 0):
            raise ValueError(f"{self.name} must be a positive number, got {self.value}")
        if not (math.isfinite(self.rsd) and self.rsd >= 0):
            raise ValueError(f"{self.name}: relative uncertainty must be a finite number >= 0, "
                             f"got {self.rsd}")


@dataclass(frozen=True)
class FieldCounts:
    """Detected vesicles of one zone in one channel, one entry per imaged field."""

    counts: tuple[int, ...]
    shares: tuple[float, ...]  # each field's share of the zone's capture (flux-weighted)
    areas_mm2: tuple[float, ...]  # zone area inside each field
    detection: Factor  # fraction of the vesicles in view that are counted

    def __post_init__(self) -> None:
        n = len(self.counts)
        if n == 0 or len(self.shares) != n or len(self.areas_mm2) != n:
            raise ValueError("field counts need one count, share and area per field (>= 1)")
        if min(self.counts) < 0 or min(self.shares) <= 0 or min(self.areas_mm2) <= 0:
            raise ValueError("field counts must be >= 0 and shares and areas > 0")

    @classmethod
    def of(cls, counts: ArrayLike, shares: ArrayLike, areas_mm2: ArrayLike,
           detection: Factor) -> FieldCounts:
        """From sequences or arrays of numbers."""
        return cls(tuple(int(c) for c in np.ravel(counts)),
                   tuple(float(s) for s in np.ravel(shares)),
                   tuple(float(a) for a in np.ravel(areas_mm2)), detection)

    @property
    def detected(self) -> int:
        """Spots counted over all fields."""
        return sum(self.counts)

    @property
    def imaged_share(self) -> float:
        """Share of the zone's capture inside the imaged fields."""
        return sum(self.shares)

    @property
    def imaged_area_mm2(self) -> float:
        """Zone area imaged."""
        return sum(self.areas_mm2)

    def dispersion(self) -> float:
        """Pearson chi^2 / (k - 1) of the field counts against their shares (1 = Poisson)."""
        k = len(self.counts)
        if k < 2 or self.detected == 0:
            return 1.0
        n = np.asarray(self.counts, float)
        expected = self.detected * np.asarray(self.shares) / self.imaged_share
        return float(np.sum((n - expected) ** 2 / expected) / (k - 1))


@dataclass(frozen=True)
class _Term:
    """One variance term of the zone total (absolute) with its degrees of freedom."""

    variance: float
    dof: float = math.inf


@dataclass(frozen=True)
class ZoneTotal:
    """A zone's estimated captured vesicles and the variance terms behind it."""

    estimate: float  # specific (control-subtracted) vesicles on the whole zone
    specific_imaged: float  # specific vesicles in the imaged fields
    nonspecific_imaged: float  # control-density x imaged area, detection-corrected
    imaged_share: float
    dispersion: float  # field-to-field, of the zone (1 = Poisson)
    terms: dict[str, _Term] = field(default_factory=dict)

    def relative_sd(self, name: str) -> float:
        """Relative standard uncertainty of the estimate from one term."""
        term = self.terms.get(name)
        if term is None or self.specific_imaged <= 0:
            return 0.0
        return math.sqrt(term.variance) / self.specific_imaged


def _count_terms(fc: FieldCounts, scale: float, prefix: str) -> dict[str, _Term]:
    """Poisson and beyond-Poisson variance of scale x detected / detection."""
    base = scale**2 * fc.detected / fc.detection.value**2
    disp = fc.dispersion()
    terms = {f"{prefix}counting": _Term(base)}
    if disp > 1:
        terms[f"{prefix}field-to-field"] = _Term((disp - 1) * base, len(fc.counts) - 1)
    estimate = scale * fc.detected / fc.detection.value
    terms[f"{prefix}detection"] = _Term((estimate * fc.detection.rsd) ** 2)
    return terms


def zone_total(zone: FieldCounts, control: FieldCounts | None = None) -> ZoneTotal:
    """Detection-corrected, control-subtracted vesicles on the whole zone, with its terms."""
    in_view = zone.detected / zone.detection.value
    terms = _count_terms(zone, 1.0, "")
    nonspecific = 0.0
    if control is not None:
        scale = zone.imaged_area_mm2 / control.imaged_area_mm2
        nonspecific = scale * control.detected / control.detection.value
        terms |= _count_terms(control, scale, "control ")
    specific = in_view - nonspecific
    return ZoneTotal(specific / zone.imaged_share, specific, nonspecific, zone.imaged_share,
                     zone.dispersion(), terms)


@dataclass(frozen=True)
class ConcentrationEstimate:
    """Marker-positive vesicles per mL of the original sample, with its 95 % interval.

    ``budget`` holds each source's relative standard uncertainty (log scale); with
    ``upper_limit_only`` the zone did not exceed its control: ``per_ml`` is 0 and ``ci95`` is
    (0, one-sided 95 % upper limit).
    """

    per_ml: float
    ci95: tuple[float, float]
    log_sd: float
    dof: float
    budget: dict[str, float]
    zone_total: ZoneTotal
    upper_limit_only: bool = False

    @property
    def relative_width(self) -> float:
        """Width of the interval over the estimate (inf for an upper limit)."""
        if self.upper_limit_only or self.per_ml <= 0:
            return math.inf
        return (self.ci95[1] - self.ci95[0]) / self.per_ml


def concentration(zone: FieldCounts, capture: Factor, volume_ml: Factor, dilution: float = 1.0,
                  control: FieldCounts | None = None) -> ConcentrationEstimate:
    """Concentration in the original sample (``dilution``: 10 for a 1:10 dilution loaded)."""
    if not (math.isfinite(dilution) and dilution >= 1):
        raise ValueError(f"dilution must be a factor >= 1 (10 for 1:10), got {dilution}")
    total = zone_total(zone, control)
    scale = dilution / (capture.value * volume_ml.value)
    factors = {"capture efficiency": capture.rsd, "volume": volume_ml.rsd}
    if total.specific_imaged <= 0:
        return _upper_limit(total, scale, factors)
    rel = {name: total.relative_sd(name) for name in total.terms}
    budget = {name: r for name, r in (rel | factors).items() if r > 0}
    variances = [(r**2, total.terms[n].dof if n in total.terms else math.inf)
                 for n, r in budget.items()]
    log_var = sum(math.log1p(v) for v, _ in variances)
    dof = _welch_satterthwaite(variances)
    q = Z95 if math.isinf(dof) else float(stats.t.ppf(0.975, dof))
    per_ml = total.estimate * scale
    half = q * math.sqrt(log_var)
    return ConcentrationEstimate(per_ml, (per_ml * math.exp(-half), per_ml * math.exp(half)),
                                 math.sqrt(log_var), dof, budget, total)


def _welch_satterthwaite(variances: Sequence[tuple[float, float]]) -> float:
    """Effective degrees of freedom of a sum of variance estimates."""
    finite = [(v, d) for v, d in variances if math.isfinite(d) and d > 0 and v > 0]
    if not finite:
        return math.inf
    total = sum(v for v, _ in variances)
    return total**2 / sum(v**2 / d for v, d in finite)


def _upper_limit(total: ZoneTotal, scale: float, factors: dict[str, float]
                 ) -> ConcentrationEstimate:
    """One-sided 95 % upper limit when the zone does not exceed its control."""
    sd = math.sqrt(sum(t.variance for t in total.terms.values()))
    upper_imaged = max(total.specific_imaged, 0.0) + float(stats.norm.ppf(0.95)) * sd
    rsd = math.sqrt(sum(r**2 for r in factors.values()))
    upper = upper_imaged / total.imaged_share * scale * math.exp(float(stats.norm.ppf(0.95)) * rsd)
    return ConcentrationEstimate(0.0, (0.0, upper), math.inf, math.inf, {}, total, True)
