"""Quality-control flags a real bench can compute: from the spots, counts, fits and frames of a
run, never from simulator truth. Each check returns a ``Flag`` (or None when all is well) that
names what it is about, the measured value and the limit it was held to.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike
from scipy import stats

from chipctl.analysis.colocalization import Colocalization
from chipctl.analysis.detection import DetectionEstimate
from chipctl.analysis.kinetics import KineticsFit
from chipctl.analysis.transport import TransportRegime
from chipctl.analysis.uncertainty import ConcentrationEstimate, FieldCounts


@dataclass(frozen=True)
class Flag:
    """One QC finding: a short code, what it is about, a sentence, the value and its limit."""

    code: str
    subject: str
    message: str
    value: float
    limit: float


def near_limit_of_detection(det: DetectionEstimate, subject: str,
                            min_fraction: float = 0.7) -> Flag | None:
    """Many vesicles below the limit of detection: the total is an extrapolation."""
    if not det.measured:
        return Flag("detection-unmeasured", subject,
                    f"too few spots ({det.detected}) to measure the fraction below the "
                    f"{det.limit_photons:.0f}-photon limit of detection: counts are a lower bound",
                    float(det.detected), 50.0)
    if det.brightness_fraction >= min_fraction:
        return None
    below = 1 - det.brightness_fraction
    return Flag("near-lod", subject,
                f"{100 * below:.0f} % of the estimated vesicles are below the "
                f"{det.limit_photons:.0f}-photon limit of detection: the total extrapolates the "
                "brightness distribution (raise exposure or LED power)", below, 1 - min_fraction)


def crowding(det: DetectionEstimate, subject: str, min_fraction: float = 0.7) -> Flag | None:
    """Fields so dense that many vesicles merge into one spot."""
    if det.crowding_fraction >= min_fraction:
        return None
    lost = 1 - det.crowding_fraction
    return Flag("crowding", subject,
                f"{100 * lost:.0f} % of the vesicles merge with a brighter neighbour: image "
                "earlier or at higher magnification", lost, 1 - min_fraction)


def field_dispersion(fc: FieldCounts, subject: str, alpha: float = 0.01) -> Flag | None:
    """Field-to-field variation beyond Poisson (Pearson chi-squared against the expected
    shares)."""
    k = len(fc.counts)
    if k < 2 or fc.detected == 0:
        return None
    dof = k - 1
    p = float(stats.chi2.sf(fc.dispersion() * dof, dof))
    if p >= alpha:
        return None
    density = np.asarray(fc.counts, float) / np.asarray(fc.shares)
    cv = float(np.std(density, ddof=1) / np.mean(density))
    poisson = math.sqrt(k / fc.detected)
    return Flag("field-cv", subject,
                f"field-to-field CV {100 * cv:.0f} % against {100 * poisson:.0f} % from counting "
                f"alone (p = {p:.1g}): uneven capture, focus or illumination", cv, poisson)


def bleaching(photons_by_frame: Sequence[ArrayLike], subject: str, min_drop: float = 0.1,
              alpha: float = 0.01) -> Flag | None:
    """Spots dimmer frame after frame (frames in the order they were lit): a straight-line fit
    of ln photons against the frame's place in the sequence."""
    logs = [np.log(np.asarray(p, float)[np.asarray(p, float) > 0]) for p in photons_by_frame]
    order = np.concatenate([np.full(v.size, i, float) for i, v in enumerate(logs)])
    y = np.concatenate(logs) if logs else np.empty(0)
    if len(logs) < 2 or y.size < 10 or float(order.max()) == float(order.min()):
        return None
    fit = stats.linregress(order, y)
    drop = 1 - math.exp(fit.slope * (len(logs) - 1))
    if fit.slope >= 0 or fit.pvalue / 2 >= alpha or drop < min_drop:
        return None
    return Flag("bleaching", subject,
                f"spots {100 * drop:.0f} % dimmer from the first frame to the last: the light "
                "between exposures bleaches the dye (shorter exposure, less power, fewer frames)",
                drop, min_drop)


def camera_saturation(saturated: int, spots: int, subject: str,
                      max_fraction: float = 0.01) -> Flag | None:
    """Spots rejected by the counter as saturated (clipped at the camera's full scale)."""
    share = saturated / max(saturated + spots, 1)
    if share <= max_fraction:
        return None
    return Flag("camera-saturation", subject,
                f"{100 * share:.1f} % of the spots saturate the camera: their brightness is "
                "clipped and they are not counted (shorter exposure or less power)", share,
                max_fraction)


def capture_saturation(kin: KineticsFit, subject: str, max_occupancy: float = 0.3
                       ) -> Flag | None:
    """Binding sites filling during the flow: the linear capture model overestimates capture."""
    if kin.regime != "saturating" or kin.k_per_min <= 0 or not kin.points:
        return None
    occupied = kin.plateau - kin.offset
    reached = 1 - math.exp(-kin.k_per_min * kin.span_min) if kin.span_min else 0.0
    if reached <= max_occupancy or occupied <= 0:
        return None
    return Flag("capture-saturation", subject,
                f"capture {100 * reached:.0f} % of the way to its plateau: binding sites are "
                "filling, so the mass-transport efficiency overestimates capture (calibrate, "
                "or load less sample)", reached, max_occupancy)


def kinetics(kin: KineticsFit, subject: str) -> Flag | None:
    """A negative or non-significant capture slope."""
    if kin.regime != "no capture":
        return None
    return Flag("kinetics", subject, kin.flags[0] if kin.flags else "no capture",
                kin.slope_z, 1.96)


def out_of_focus(scores: Mapping[str, float], subject: str, min_ratio: float = 0.5
                 ) -> list[Flag]:
    """Frames much less sharp than the median frame of the same zone and channel (scores from
    chipctl.vision.focus.focus_metric)."""
    if len(scores) < 2:
        return []
    median = float(np.median(list(scores.values())))
    return [Flag("focus", f"{subject} / {name}",
                 f"focus score {score / median:.2f} of the channel's median: out of focus "
                 "(autofocus, or a tilted chip)", score / median, min_ratio)
            for name, score in scores.items() if median > 0 and score < min_ratio * median]


def bleed_through(ref_photons: ArrayLike, other_photons: ArrayLike, coloc: Colocalization,
                  subject: str, max_log_sd: float = 0.25, max_ratio: float = 0.25,
                  min_share: float = 0.9) -> Flag | None:
    """Signal of the reference channel seen in the other: among matched pairs of the brightest
    reference spots, the other's photons are a small, constant fraction of the reference's and
    nearly every bright reference spot has a partner."""
    ref, other = np.asarray(ref_photons, float), np.asarray(other_photons, float)
    ok = (ref > 0) & (other > 0)
    ref, other = ref[ok], other[ok]
    if ref.size < 20 or coloc.reference_spots == 0:
        return None
    top = ref >= np.quantile(ref, 0.75)
    log_ratio = np.log(other[top] / ref[top])
    ratio, spread = float(np.exp(np.median(log_ratio))), float(np.std(log_ratio))
    if spread > max_log_sd or ratio > max_ratio or coloc.fraction < min_share:
        return None
    return Flag("bleed-through", subject,
                f"the other channel shows {100 * ratio:.1f} % of the reference's photons on "
                f"{100 * coloc.fraction:.0f} % of its vesicles with little spread (log sd "
                f"{spread:.2f}): possible bleed-through, check with a single-stain control",
                spread, max_log_sd)


def wide_interval(est: ConcentrationEstimate, subject: str) -> Flag | None:
    """A 95 % interval wider than the estimate itself."""
    if est.relative_width <= 1:
        return None
    if est.upper_limit_only:
        message = "not above the isotype control: only an upper limit"
    else:
        worst = max(est.budget, key=lambda k: est.budget[k]) if est.budget else "counting"
        message = (f"95 % interval wider than the estimate ({est.relative_width:.1f} x); the "
                   f"largest term is {worst}")
    return Flag("wide-interval", subject, message, est.relative_width, 1.0)


def transport_validity(regime: TransportRegime, subject: str) -> Flag | None:
    """A zone outside the range where the closed-form capture model was checked."""
    if regime.valid:
        return None
    return Flag("transport-model", subject,
                f"Graetz number {regime.graetz:.2g} above the checked range: the zone collects "
                "enough of its stream that the closed form overestimates capture (calibrate)",
                regime.graetz, 0.1)
