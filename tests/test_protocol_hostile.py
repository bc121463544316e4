"""Hostile and absurd protocol files (issue 17): each is refused by `chipctl validate` with exit
code 2 and a message at its file and line, never a traceback, a hang or a blow-up.

Every reproduction is generated here (small), none is committed as a file.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from chipctl.cli.main import main
from chipctl.config.sourcefile import MAX_BYTES, SourceError, clean_text, parse_yaml
from chipctl.config.units import UnitError, to_unit
from chipctl.protocol.loader import parse_protocol

BENCH = str(Path(__file__).parent / "data" / "bench_offline.yaml")
HEAD = "name: hostile\nsteps:\n"


def refused(tmp_path: Path, capsys: pytest.CaptureFixture[str], text: str | bytes,
            line: int, fragment: str) -> str:
    """Write the protocol, validate it: exit 2, a message at `line` holding `fragment`."""
    path = tmp_path / "p.yaml"
    path.write_bytes(text.encode("utf-8", "surrogatepass") if isinstance(text, str) else text)
    assert main(["validate", str(path), "--bench", BENCH]) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err
    where = f"{path}:{line}: " if line else f"{path}: "
    matching = [x for x in err.splitlines() if x.startswith(where) and fragment in x]
    assert matching, err
    return err


@pytest.mark.parametrize(
    ("step", "fragment"),
    [
        ("  - wait: 1e400 s", "too large a number"),  # the run hung forever with run.json running
        ("  - wait: 1e9 s", "outside 0..604800 s"),
        ("  - sample: {pump: sample_pump, rate: 5 uL/min, volume: 9**9**9 uL}", "no arithmetic"),
        ("  - sample: {pump: sample_pump, rate: nan uL/min, volume: 5 uL}", "does not start"),
        ("  - sample: {pump: sample_pump, rate: inf uL/min, volume: 5 uL}", "does not start"),
        ("  - sample: {pump: sample_pump, rate: 1e-320 uL/min, volume: 5 uL}", "outside 0.0001"),
        ("  - sample: {pump: sample_pump, rate: 5 uL/min, volume: 1e308 mL}", "not a finite"),
        ("  - sample: {pump: sample_pump, rate: 5 uL/min, volume: 2e6 uL}", "outside 0..1e+06"),
        ("  - image: {zones: [CD9], channels: [AF647], positions: [[nan um, 0 um]]}",
         "does not start"),
        ("  - image: {zones: [CD9], channels: [AF647], fields: 100000000}", "1..10000"),
        ("  - image: {zones: [CD9], channels: [AF647], grid: [100000, 100000]}", "at most 10000"),
        ("  - image: {zones: [CD9], channels: [{channel: AF647, exposure: 1e9 ms}]}",
         "outside 0..1e+06 ms"),
        ("  - repeat: {times: 1000000000, steps: [{wait: 1 s}]}", "1..10000"),
        ("  - prompt: 'Sample {sample:>200000000}'", "not a plain {name} placeholder"),
        ("  - wait: 5 uL)", "is not a unit"),
        ("  - wait: 5 s ((", "is not a unit"),
        ("  - wait: '1e99999999999 s'", "too large a number"),
    ],
)
def test_absurd_quantities_and_counts_are_refused(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], step: str, fragment: str) -> None:
    refused(tmp_path, capsys, HEAD + step + "\n", 3, fragment)


def test_nan_rate_in_a_monitor_with_flow_is_refused(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # the run "completed" while the stain pump delivered 0 uL
    text = HEAD + (
        "  - monitor:\n"
        "      zone: CD63\n"
        "      channel: AF647\n"
        "      flow: {pump: sample_pump, rate: 5 uL/min, volume: 10 uL}\n"
        "      with: [{pump: stain_pump, rate: nan uL/min}]\n")
    refused(tmp_path, capsys, text, 7, "monitor.with.rate: cannot read 'nan uL/min'")


def test_repeats_that_multiply_to_too_many_steps_are_refused(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    inner = "{repeat: {times: 10000, steps: [{wait: 1 s}]}}"
    refused(tmp_path, capsys, HEAD + f"  - repeat: {{times: 10000, steps: [{inner}]}}\n", 2,
            "100,000,000 steps once every repeat is unrolled")


def test_a_run_lasting_more_than_a_month_is_refused(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    text = HEAD + "  - repeat: {times: 10000, steps: [{wait: 100 min}]}\n"
    refused(tmp_path, capsys, text, 0, "the run would take 694.4 days")


@pytest.mark.parametrize(
    ("text", "line", "fragment"),
    [
        ("name: a\nsteps:\n  - wait: 1 s\nsteps:\n  - wait: 2 s\n", 4,
         "'steps' is given twice (lines 2 and 4)"),
        (HEAD + "  - sample:\n      pump: buffer_pump\n      rate: 5 uL/min\n"
         "      pump: sample_pump\n      volume: 5 uL\n", 6,
         "'pump' is given twice (lines 4 and 6)"),
    ],
)
def test_duplicate_keys_are_refused_with_both_lines(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], text: str, line: int,
        fragment: str) -> None:
    refused(tmp_path, capsys, text, line, fragment)


def billion_laughs(levels: int = 9) -> str:
    lines = ['a0: &a0 ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    for level in range(1, levels):
        refs = ", ".join([f"*a{level - 1}"] * 9)
        lines.append(f"a{level}: &a{level} [{refs}]")
    return "\n".join(lines) + "\n"


def test_billion_laughs_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    text = billion_laughs() + HEAD + "  - wait: 1 s\n"
    assert len(text) < 1000  # 9 ** 9 values (3.9 GB in 60 s) from under a kilobyte
    refused(tmp_path, capsys, text, 6, "once its aliases are expanded")


def test_a_few_aliases_are_still_fine() -> None:
    text = ("channel: &ch {channel: AF647, exposure: 50 ms}\n"
            "x: [*ch, *ch, *ch]\n")
    assert parse_yaml(text, "t.yaml")["x"][2]["exposure"] == "50 ms"


@pytest.mark.parametrize("text", ["steps: " + "[" * 3000 + "]" * 3000,
                                  "".join("  " * i + f"k{i}:\n" for i in range(60)) + "  " * 60
                                  + "v\n"])
def test_deep_nesting_is_refused_with_a_message(text: str) -> None:
    with pytest.raises(SourceError, match="nested deeper than 32 levels"):
        parse_yaml(text, "deep.yaml")


def test_a_huge_file_is_refused_unread(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    text = HEAD + "  - wait: 1 s\n" + "#" * MAX_BYTES
    refused(tmp_path, capsys, text, 0, "larger than 1024 KiB")


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="POSIX FIFOs")
def test_a_fifo_is_refused_without_hanging(tmp_path: Path,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    fifo = tmp_path / "p.yaml"
    os.mkfifo(fifo)  # nobody writes: reading it would block for ever
    assert main(["validate", str(fifo), "--bench", BENCH]) == 2
    assert "not a regular file" in capsys.readouterr().err


def test_the_surrogate_name_is_cleaned() -> None:
    protocol = parse_protocol(HEAD.replace("hostile", '"\\ud800"') + "  - wait: 1 s\n", "p.yaml")
    assert protocol.name == "\ufffd"
    protocol.name.encode("utf-8")  # what SQLite and the file system need


def test_escape_codes_and_bidi_overrides_never_reach_the_terminal() -> None:
    text = 'name: "run\\x1b[2J\\x1b]0;pwned\\x07 \\u202egnp.exe"\nsteps:\n  - wait: 1 s\n'
    protocol = parse_protocol(text, "p.yaml")
    assert protocol.name == "run[2J]0;pwned gnp.exe"


@pytest.mark.parametrize(
    ("raw", "clean"),
    [("a\ud800b", "a\ufffdb"), ("\ud83d\ude00", "\U0001f600"), ("x\x1b[31my", "x[31my"),
     ("two\nlines", "two\nlines"), ("tab\there", "tab\there"), ("e\u0301", "\u00e9"),
     ("\u2028", " ")],
)
def test_clean_text(raw: str, clean: str) -> None:
    assert clean_text(raw) == clean
    assert "\n" not in clean_text(raw, newlines=False)


@pytest.mark.parametrize(
    "text",
    ["9**9**9 uL", "5 uL)", "(5 uL", "5 uL**", "5 uL^999999999", "1e999999 uL", "1" * 5000 + " uL",
     "5 uL/", "5 /", "5 **", "5 uL uL uL ** 9", "5e uL", "-inf uL", "0x1p3 uL", "5 µ", "5 %%",
     "five uL", "5\x00uL", "5 uL\n6 uL", "½ uL", "٥ uL"],
)
def test_no_quantity_text_escapes_as_anything_but_unit_error(text: str) -> None:
    with pytest.raises(UnitError):
        to_unit(text, "uL")


def test_numbers_given_directly_must_be_finite() -> None:
    for value in (float("nan"), float("inf"), -float("inf"), 10**400):
        with pytest.raises(UnitError):
            to_unit(value, "s")
    assert to_unit(2, "s") == 2.0
