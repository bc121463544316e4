"""Numbers and sample entries for people: formatting, dilution, pre-clearing, labels."""

from __future__ import annotations

import pytest

from chipctl.analysis.labels import run_labels
from chipctl.analysis.numbers import filled, number
from chipctl.analysis.provenance import SampleInfoError, dilution_factor, labelling, preclearing


@pytest.mark.parametrize(("value", "text"), [
    (6000, "6,000"), (6000.0, "6,000"), (1.234e7, "1.23 × 10⁷"), (9.996e6, "1.00 × 10⁷"),
    (0.0123, "0.0123"), (2.5e-5, "2.50 × 10⁻⁵"), (None, "–"), (float("nan"), "–"), (0.0, "0"),
    (123.456, "123"),
])
def test_numbers_are_written_for_people(value: object, text: str) -> None:
    assert number(value) == text


def test_placeholders_are_filled_from_the_run() -> None:
    assert filled("capture {sample}, diluted {dilution}", {"sample": "MSC-CM 3",
                                                            "dilution": "1:10"}) == \
        "capture MSC-CM 3, diluted 1:10"
    assert "{" not in filled("capture {sample}", {})


@pytest.mark.parametrize(("text", "factor"), [("1:10", 10.0), ("1/4", 4.0), ("20x", 20.0),
                                             ("5", 5.0), ("1:1", 1.0), ("", 1.0)])
def test_dilution_as_entered(text: str, factor: float) -> None:
    assert dilution_factor({"dilution": text})[0] == factor


@pytest.mark.parametrize("text", ["ten", "10:1", "0.5", "1:0"])
def test_a_dilution_that_is_no_dilution_is_refused(text: str) -> None:
    with pytest.raises(SampleInfoError, match="dilution"):
        dilution_factor({"dilution": text})


def test_preclearing_spins_are_structured() -> None:
    spins = preclearing({"preprocessing": "300 x g 10 min 4 C; 2,000 xg 0.5 h, "
                                          "10,000 x g 30 min at 4 °C"})
    assert [(s["g_force"], s["minutes"], s["temperature_c"]) for s in spins] == [
        (300.0, 10.0, 4.0), (2000.0, 30.0, None), (10000.0, 30.0, 4.0)]


def test_labelling_efficiency_is_checked() -> None:
    assert labelling({}) is None
    assert labelling({"labelling_efficiency": "0.85"}).value == 0.85
    with pytest.raises(SampleInfoError):
        labelling({"labelling_efficiency": "1.5"})


def test_labels_come_from_the_stain_step_before_any_run_parameter() -> None:
    events = [{"event": "step", "index": 4, "line": 12,
               "labels": {"CD9": "AF488", "CD63": "AF555"}}]
    labels = run_labels(events, {"labels": "AF647=CD63"})
    assert labels.channel_of("cd63") == "AF555" and labels.marker_of("AF488") == "CD9"
    assert labels.source == "protocol stain step 5 (line 12)"
    old = run_labels([], {"labels": "AF647=CD63"})
    assert old.channel_of("CD63") == "AF647" and "run parameter" in old.source
    assert run_labels([], {}).dyes == {}
