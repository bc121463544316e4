"""Quantities written out in files."""

from __future__ import annotations

import pytest

from chipctl.config.units import UnitError, to_unit


@pytest.mark.parametrize(
    ("text", "unit", "expected"),
    [
        ("5 uL/min", "uL/min", 5.0),
        ("0.3 mL/h", "uL/min", 5.0),
        ("10 min", "s", 600.0),
        ("50 ms", "ms", 50.0),
        ("1 mL", "uL", 1000.0),
        ("4.699 mm", "mm", 4.699),
        ("60 %", "%", 60.0),
        ("2 µm", "um", 2.0),
        ("1e9 /mL", "1/mL", 1e9),
    ],
)
def test_quantities_convert(text: str, unit: str, expected: float) -> None:
    assert to_unit(text, unit) == pytest.approx(expected)


@pytest.mark.parametrize(
    ("text", "fragment"),
    [("5 uL", "is not a flow rate"), ("fast", "cannot read"), ("", "expected a quantity"),
     ("5", "has no unit"), (True, "expected a quantity")],
)
def test_bad_quantities_explain_themselves(text: object, fragment: str) -> None:
    with pytest.raises(UnitError, match=fragment):
        to_unit(text, "uL/min")
