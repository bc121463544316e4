"""The units a syringe pump is told a rate or a volume in. New Era (RAT, VOL): the units that
carry the number with the least rounding in the pump's four-digit format
(drivers.newera.format_number). Harvard (irate, wrate): ml/min, ul/min or nl/min.
"""

from __future__ import annotations

from drivers.newera import RATE_UNITS, format_number

RATE_PREFERENCE = ("UM", "UH", "MM", "MH")  # on a tie in rounding, the first


def newera_rate(rate_ul_min: float) -> tuple[float, str]:
    """The units that carry `rate_ul_min` with the least rounding: (number, units) for RAT."""
    best: tuple[float, float, str] | None = None
    for units in RATE_PREFERENCE:
        value = rate_ul_min / RATE_UNITS[units]
        try:
            number = float(format_number(value))
        except ValueError:
            continue
        error = abs(number - value) / value
        if number > 0 and (best is None or error < best[0] - 1e-12):
            best = (error, number, units)
    if best is None:
        raise ValueError(f"rate {rate_ul_min} uL/min cannot be written for a New Era pump")
    return best[1], best[2]


def newera_volume(volume_ul: float) -> tuple[float, str]:
    """(number, UL|ML) for VOL; 0 means pump until stopped, so a volume must not round to 0."""
    value, units = (volume_ul, "UL") if volume_ul < 9999.5 else (volume_ul / 1000.0, "ML")
    number = float(format_number(value))
    if volume_ul > 0 and number == 0:
        raise ValueError(f"{volume_ul} uL is below the pump's volume resolution (0.001 uL)")
    return number, units


def harvard_rate(rate_ul_min: float) -> tuple[float, str]:
    """Units for a Harvard irate/wrate command: (number, units) in ml/min, ul/min or nl/min."""
    if rate_ul_min >= 10000.0:
        return rate_ul_min / 1000.0, "m/m"
    if rate_ul_min >= 0.1:
        return rate_ul_min, "u/m"
    return rate_ul_min * 1000.0, "n/m"
