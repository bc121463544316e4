"""The command-line contract: help, version, exit codes, messages without tracebacks."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

import chipctl
from chipctl.cli.main import main

ROOT = Path(__file__).resolve().parents[1]


def chipctl_cmd(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "chipctl", *args], capture_output=True,
                          text=True, timeout=timeout, cwd=ROOT, stdin=subprocess.DEVNULL)


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(["--version"])
    assert info.value.code == 0
    assert capsys.readouterr().out.strip() == f"chipctl {chipctl.__version__}"


def test_help_lists_every_command() -> None:
    result = chipctl_cmd("--help")
    assert result.returncode == 0
    for command in ("run", "validate", "count", "runs", "sim"):
        assert command in result.stdout


def test_run_without_a_bench_is_invalid_input(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["run", str(ROOT / "protocols" / "quickstart.yaml")]) == 2
    assert "--bench FILE, or --sim" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("bench_text", "fragment"),
    [
        ("devices:\n  p: {driver: warp-drive, url: /dev/null}\n", ":2: devices.p.driver: unknown"),
        ("devices:\n  p: {driver: newera}\n", ":2: devices.p: missing field 'url'"),
        ("devices:\n  p: {driver: newera, url: [\n", "YAML syntax error"),
    ],
)
def test_broken_bench_file_exits_2_naming_file_and_line(
    tmp_path: Path, bench_text: str, fragment: str, capsys: pytest.CaptureFixture[str]
) -> None:
    # in-process (the entry point itself: test_help_lists_every_command, test_cli_care)
    bench = tmp_path / "bench.yaml"
    bench.write_text(bench_text)
    assert main(["validate", str(ROOT / "protocols" / "quickstart.yaml"),
                 "--bench", str(bench)]) == 2
    out, err = capsys.readouterr()
    assert str(bench) in err and fragment in err
    assert "Traceback" not in err + out


def test_unplugged_port_names_the_device(tmp_path: Path,
                                         capsys: pytest.CaptureFixture[str]) -> None:
    # in-process, as the bench-file errors above (the entry point: test_help_lists_every_command)
    bench = tmp_path / "bench.yaml"
    bench.write_text(
        "devices:\n"
        "  sample_pump: {driver: newera, url: /dev/chipctl-no-such-port, address: 0,\n"
        "                syringe: {inner_diameter: 4.699 mm, volume: 1 mL}}\n"
        "chip: {zones: {}}\n"
    )
    protocol = tmp_path / "p.yaml"
    protocol.write_text("steps:\n  - flow: {pump: sample_pump, rate: 5 uL/min, volume: 1 uL}\n")
    code = main(["run", str(protocol), "--bench", str(bench), "--runs-dir",
                 str(tmp_path / "runs")])
    out, err = capsys.readouterr()
    assert code == 2
    assert "/dev/chipctl-no-such-port" in err
    assert "Traceback" not in err + out
