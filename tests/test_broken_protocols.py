"""Every broken protocol in tests/data/broken_protocols/ is refused by `chipctl validate` with
exit code 2 and a message naming its file and line (and step), never a traceback."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from chipctl.cli.main import main

DATA = Path(__file__).parent / "data"
BROKEN = DATA / "broken_protocols"
BENCH = str(DATA / "bench_offline.yaml")

# file -> [(line, what the message must say), ...]: every problem the file has.
EXPECTED: dict[str, list[tuple[int, str]]] = {
    "wrong_units.yaml": [(5, "step 2 (sample): sample.rate: '5 uL' is not a flow rate")],
    "bare_number.yaml": [(6, "step 1 (sample): sample.rate: write the unit, e.g. '5 uL/min'")],
    "unknown_step.yaml": [(5, "step 2 (centrifuge): unknown step 'centrifuge'; known steps:")],
    "unknown_device.yaml": [(5, "2. wash: unknown pump 'waste_pump'; the bench has: buffer_pump")],
    "unknown_zone.yaml": [(4, "1. image: unknown capture zone 'CD47'")],
    "unknown_channel.yaml": [(4, "1. image: unknown channel 'DAPI'; the illuminator has: AF488")],
    "too_much_volume.yaml": [(5, "2. sample: draws 600 uL from sample_pump, which holds only "
                                 "400 uL at that point: the syringe would run dry")],
    "overfill_withdraw.yaml": [(4, "1. flow: withdrawing 50 uL overfills buffer_pump")],
    "over_pressure.yaml": [(4, "1. wash: 5000 uL/min drives 165 kPa through the chip, over its "
                               "100 kPa limit")],
    "yaml_syntax.yaml": [(5, "YAML syntax error")],
    "wrong_types.yaml": [(6, "step 1 (image): image.fields: expected a whole number 1..10000, "
                             "got 'three'"),
                         (7, "step 1 (image): image.autofocus: expected true or false, "
                             "got 'yes please'")],
    "empty.yaml": [(1, "the protocol file is empty")],
    "only_comments.yaml": [(1, "the protocol file is empty")],
    "binary_garbage.yaml": [(1, "not a YAML protocol file: it contains binary data")],
    "not_utf8.yaml": [(1, "not a YAML protocol file: not UTF-8 text")],
    "exposure_too_long.yaml": [(4, "1. image: exposure 60000 ms is outside the camera's")],
    "missing_field.yaml": [(4, "step 1 (sample): sample: missing field 'rate'")],
    "unknown_field.yaml": [(7, "sample: unknown field 'volumne'; did you mean 'volume'?")],
    "schema_version.yaml": [(1, "schema_version 7 is not supported")],
    "undeclared_parameter.yaml": [(6, "1. prompt: '{donor}' is not a declared parameter")],
    "volume_and_duration.yaml": [(4, "sample: give either a volume or a duration")],
    "not_a_mapping.yaml": [(1, "a protocol file is a mapping with 'name' and 'steps'")],
    "field_outside_zone.yaml": [(4, "1. image: 1 field(s) leave zone CD9")],
    "negative_duration.yaml": [(4, "step 1 (wait): wait.duration: must not be negative")],
    "many_errors.yaml": [(4, "step 1 (prime): prime.rate: cannot read 'fast'"),
                         (6, "step 3 (spin): unknown step 'spin'"),
                         (7, "step 4 (wait): wait.duration: cannot read '5 apples'")],
    "bench_errors.yaml": [(4, "1. sample: draws 2000 uL from sample_pump"),
                          (5, "2. wash: unknown pump 'wash_pump'"),
                          (6, "3. image: unknown capture zone 'CD64'")],
    "file_and_bench_errors.yaml": [(5, "step 2 (sample): sample.rate: '5 uL' is not a flow rate"),
                                   (6, "3. wash: unknown pump 'waste_pump'"),
                                   (7, "4. image: unknown channel 'AF700'")],
    "script_error.py": [(6, "NameError: name 'wash_volume' is not defined")],
    "script_syntax.py": [(5, "syntax error: '(' was never closed")],
    "script_bad_unit.py": [(6, "sample: sample.rate: '5 uL' is not a flow rate")],
    "script_unknown_pump.py": [(6, "2. wash: unknown pump 'waste_pump'")],
    "script_no_protocol.py": [(1, "a protocol script must set `protocol = builder.build()`")],
}


def test_the_corpus_is_pinned() -> None:
    on_disk = {path.name for path in BROKEN.iterdir()}
    assert on_disk == set(EXPECTED)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_validate_refuses_with_file_and_line(name: str, capsys: pytest.CaptureFixture[str]) -> None:
    path = str(BROKEN / name)
    assert main(["validate", path, "--bench", BENCH]) == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert "Traceback" not in err
    problem_lines = [line for line in err.splitlines() if line.startswith(f"{path}:")]
    assert len(problem_lines) == len(EXPECTED[name]), err
    for line, (number, message) in zip(problem_lines, EXPECTED[name], strict=True):
        assert line.startswith(f"{path}:{number}: "), err
        assert message in line, err


@pytest.mark.parametrize("name", ["many_errors.yaml", "bench_errors.yaml", "binary_garbage.yaml",
                                  "file_and_bench_errors.yaml"])
def test_validate_json_lists_every_problem(name: str, capsys: pytest.CaptureFixture[str]) -> None:
    path = str(BROKEN / name)
    assert main(["validate", path, "--bench", BENCH, "--json"]) == 2
    report = json.loads(capsys.readouterr().out)
    assert report["valid"] is False
    assert [(p["file"], p["line"]) for p in report["problems"]] == [
        (path, line) for line, _ in EXPECTED[name]]


def test_a_real_process_prints_no_traceback() -> None:
    """The console script end to end: exit 2, one message per problem, no traceback."""
    path = str(BROKEN / "binary_garbage.yaml")
    chipctl = Path(sys.executable).parent / "chipctl"  # the installed console script
    result = subprocess.run([str(chipctl), "validate", path, "--bench", BENCH],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert f"{path}:1: not a YAML protocol file" in result.stderr
