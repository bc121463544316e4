"""What the operator entered about the sample (run parameters and `--info`), structured: the
dilution loaded, the vesicle sizes, the pre-clearing spins (g-force, time, temperature), the
MISEV2018 items and the protein concentration (for the particle:protein ratio).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any

from chipctl.analysis.transport import SizeDistribution
from chipctl.analysis.uncertainty import Z95, Factor
from chipctl.config.units import UnitError, to_unit

# MISEV2018 (Théry et al., J Extracell Vesicles 7:1535750) items an operator enters as run
# parameters: (label, parameter names accepted).
MISEV_ITEMS = [
    ("EV source (biofluid / cell type, culture conditions)", ("source", "sample_source")),
    ("Collection and pre-processing (e.g. 300 x g / 2,000 x g / 10,000 x g clearing)",
     ("preprocessing", "pre_processing", "pre-processing", "clearing")),
    ("Separation / concentration method", ("separation", "isolation", "method")),
    ("Storage (temperature, time, freeze-thaw cycles)", ("storage",)),
    ("Starting volume", ("starting_volume", "volume")),
    ("Dilution before loading", ("dilution",)),
    ("Protein concentration (for the particle:protein ratio)", ("protein", "protein_ug_per_ml")),
]
DEFAULT_PROTEIN_RSD = 0.10  # a BCA / micro-BCA assay, when the operator gives none
DEFAULT_DIAMETER_NM = 100.0
DEFAULT_LABELLING_RSD = 0.05
DEFAULT_SIZE_RSD = 0.05  # NTA's median diameter
ASSUMED_SIZE_RSD = 0.25  # no size entered: 100 nm assumed
_DILUTION = re.compile(r"^\s*(?:1\s*[:/]\s*([0-9.eE+]+)|([0-9.eE+]+)\s*[x×]?)\s*$")
_SPIN = re.compile(r"([0-9][0-9,.]*)\s*(?:x\s*)?g\b", re.IGNORECASE)
_TIME = re.compile(r"([0-9.]+)\s*(min|h|s)\b", re.IGNORECASE)
_TEMP = re.compile(r"(-?[0-9.]+)\s*°?\s*C\b")


class SampleInfoError(ValueError):
    """A sample entry that cannot be read (names the parameter)."""


def dilution_factor(params: dict[str, Any]) -> tuple[float, str]:
    """The dilution of the sample as loaded: "1:10", "1/10", "10x" or "10" -> 10."""
    text = str(params.get("dilution") or "").strip()
    if not text:
        return 1.0, "not entered: taken as undiluted (1:1)"
    match = _DILUTION.match(text)
    try:
        value = float(match.group(1) or match.group(2)) if match else math.nan
    except ValueError:
        value = math.nan
    if not (math.isfinite(value) and value >= 1):
        raise SampleInfoError(f"dilution {text!r}: write it as 1:10 (one part sample in ten),"
                              " 10x or 10")
    return value, f"entered: {text}"


def sizes(params: dict[str, Any]) -> tuple[SizeDistribution, str]:
    """The vesicle size distribution the capture model uses: a log-normal from
    ``size_median_nm`` (or ``vesicle_diameter_nm``) and ``size_gsd``, as measured by NTA or
    entered; else 100 nm (say so)."""
    median = params.get("size_median_nm") or params.get("vesicle_diameter_nm")
    gsd = params.get("size_gsd") or 1.0
    try:
        d, g = float(median or DEFAULT_DIAMETER_NM), float(gsd)
    except (TypeError, ValueError) as exc:
        raise SampleInfoError(f"vesicle size: numbers expected (size_median_nm={median!r}, "
                              f"size_gsd={gsd!r})") from exc
    if not (d > 0 and g >= 1):
        raise SampleInfoError("vesicle size: size_median_nm above 0 and size_gsd of 1 or more")
    dist = SizeDistribution.lognormal(d, g)
    if median in (None, ""):
        return dist, "not entered: 100 nm assumed (enter size_median_nm and size_gsd from NTA)"
    return dist, f"entered: median {d:g} nm, geometric sd {g:g}"


def size_rsd(params: dict[str, Any]) -> float:
    """Relative uncertainty of the median diameter: ``size_median_rsd`` as entered, else NTA's
    typical 5 %; with no size entered at all, the 100 nm assumed is known only to 25 % (small
    EVs' medians lie between about 70 and 150 nm)."""
    if params.get("size_median_nm") in (None, "") and \
            params.get("vesicle_diameter_nm") in (None, ""):
        return ASSUMED_SIZE_RSD
    value = params.get("size_median_rsd")
    try:
        rsd = float(DEFAULT_SIZE_RSD if value in (None, "") else value)
    except (TypeError, ValueError) as exc:
        raise SampleInfoError(f"size_median_rsd {value!r}: a fraction, e.g. 0.05") from exc
    if not (math.isfinite(rsd) and rsd >= 0):
        raise SampleInfoError(f"size_median_rsd {value!r}: a fraction of 0 or more")
    return rsd


def labelling(params: dict[str, Any]) -> Factor | None:
    """The detection antibodies' labelling efficiency (fraction of marker-positive vesicles that
    carry the dye) if measured and entered (``labelling_efficiency``, ``labelling_rsd``)."""
    value = params.get("labelling_efficiency")
    if value in (None, ""):
        return None
    try:
        eff, rsd = float(value), float(params.get("labelling_rsd") or DEFAULT_LABELLING_RSD)
    except (TypeError, ValueError) as exc:
        raise SampleInfoError(f"labelling_efficiency {value!r}: a fraction, e.g. 0.85") from exc
    if not (0 < eff <= 1 and rsd >= 0):
        raise SampleInfoError(f"labelling_efficiency {value!r}: a fraction above 0, at most 1")
    return Factor("labelling efficiency", eff, rsd, f"entered: {eff:g}")


def preclearing(params: dict[str, Any]) -> list[dict[str, Any]]:
    """The pre-clearing spins as entered ("300 x g 10 min 4 C, 2,000 x g 20 min"), one entry
    per spin with g-force, minutes and temperature (None where not written)."""
    text = next((str(params[k]) for k in MISEV_ITEMS[1][1] if params.get(k)), "")
    out = []
    for part in re.split(r"[;,](?![0-9]{3})", text):
        spin = _SPIN.search(part)
        if not spin:
            continue
        time, temp = _TIME.search(part), _TEMP.search(part[spin.end():])
        minutes = None
        if time:
            minutes = float(time.group(1)) * {"min": 1, "h": 60, "s": 1 / 60}[time.group(2).lower()]
        out.append({"g_force": float(spin.group(1).replace(",", "")), "minutes": minutes,
                    "temperature_c": float(temp.group(1)) if temp else None,
                    "as_entered": part.strip()})
    return out


def misev_items(params: dict[str, Any]) -> list[dict[str, str]]:
    """Each MISEV2018 item with what the operator entered (or "not reported")."""
    out = []
    for label, names in MISEV_ITEMS:
        value = next((str(params[n]) for n in names if params.get(n)), "")
        out.append({"item": label, "value": value or "not reported"})
    return out


@dataclass(frozen=True)
class Protein:
    """The sample's protein concentration (ug/mL) and its relative uncertainty."""

    ug_per_ml: float
    rsd: float


def protein(params: dict[str, Any]) -> Protein | None:
    """The protein concentration if entered (a bare number is ug/mL)."""
    for name in ("protein_ug_per_ml", "protein"):
        value = params.get(name)
        if value in (None, ""):
            continue
        try:
            amount = float(value)
        except (TypeError, ValueError):
            try:
                amount = to_unit(value, "ug/mL")
            except UnitError as exc:
                raise SampleInfoError(f"{name} {value!r}: {exc}") from exc
        try:
            rsd = float(params.get("protein_rsd") or DEFAULT_PROTEIN_RSD)
        except (TypeError, ValueError) as exc:
            raise SampleInfoError(f"protein_rsd {params.get('protein_rsd')!r}: a fraction, "
                                  "e.g. 0.1") from exc
        return Protein(amount, rsd) if amount > 0 else None
    return None


def particle_protein_ratio(per_ml: float, log_sd: float, prot: Protein
                           ) -> dict[str, float] | None:
    """Particles per ug of protein with its 95 % interval (log scale)."""
    if per_ml <= 0 or not math.isfinite(log_sd):
        return None
    ratio = per_ml / prot.ug_per_ml
    half = Z95 * math.hypot(log_sd, math.log1p(prot.rsd))
    return {"per_ug": ratio, "ci95_low": ratio * math.exp(-half),
            "ci95_high": ratio * math.exp(half), "protein_ug_per_ml": prot.ug_per_ml,
            "protein_rsd": prot.rsd}
