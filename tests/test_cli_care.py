"""The command line given the same care as the app (issue 15): --runs-dir before or after the
runs action, validate of several files, protocols found in the library by name, --speed
above 0, a closed pipe, the Ctrl-C summary read from the record, progress during long steps
with protocol and wall time labelled, field numbers from 1, nouns in the right number."""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import time
import tomllib
from pathlib import Path

import pytest
import tifffile

from chipctl.cli.main import main
from chipctl.cli.progress import Outcome
from chipctl.protocol.library import (
    LIBRARY_ENV,
    ProtocolNotFound,
    find_protocol,
    library_names,
    protocol_library,
)
from chipctl.runs import RunFolder
from tests.fakes import spots_image

ROOT = Path(__file__).resolve().parents[1]
LIBRARY = ROOT / "protocols"
OFFLINE_BENCH = str(ROOT / "tests" / "data" / "bench_offline.yaml")
QUICKSTART = str(LIBRARY / "quickstart.yaml")
PANEL = str(LIBRARY / "tetraspanin_panel.yaml")
pytestmark = pytest.mark.timeout(240)


def chipctl(*args: str, cwd: Path = ROOT, timeout: float = 180,
            env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "chipctl", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=timeout)


def without_library_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if k != LIBRARY_ENV}


def installed_library() -> Path:
    """The library the command line finds from a folder outside the repository: the repo's
    protocols/ in an editable install, share/chipctl/protocols in a packaged one (as in CI)."""
    found = subprocess.run(
        [sys.executable, "-c", "from chipctl.protocol.library import protocol_library as p; "
         "print(p())"], cwd="/", env=without_library_env(), capture_output=True, text=True,
        check=True).stdout.strip()
    library = Path(found)
    assert {p.name for p in library.iterdir()} >= {p.name for p in LIBRARY.iterdir()}
    return library


def library_in_process() -> Path:
    """The library this process's chipctl finds (the repository's protocols/ when the tests
    import the source tree, share/chipctl/protocols from a packaged install)."""
    library = protocol_library(os.environ)
    assert library is not None and {p.name for p in library.iterdir()} >= {
        p.name for p in LIBRARY.iterdir()}
    return library


# -- --runs-dir ------------------------------------------------------------------------------
@pytest.mark.parametrize("action", [["list"], ["show", "last"], ["report", "last"],
                                    ["export", "last"]])
def test_runs_dir_is_taken_before_or_after_the_action(
        tmp_path: Path, action: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    runs = str(tmp_path / "elsewhere")
    before = main(["runs", "--runs-dir", runs, *action])
    said_before = capsys.readouterr()
    after = main(["runs", *action, "--runs-dir", runs])
    said_after = capsys.readouterr()
    assert (before, said_before.out, said_before.err) == (after, said_after.out, said_after.err)
    assert runs in said_after.out + said_after.err  # both looked in the directory given


# -- validate --------------------------------------------------------------------------------
BROKEN = """schema_version: 1
name: broken
steps:
  - flow: {pump: sample_pump, rate: 5 uL/min}
"""


def test_validate_checks_every_file_given_and_fails_if_any_cannot_run(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    broken = tmp_path / "broken.yaml"
    broken.write_text(BROKEN)
    assert main(["validate", QUICKSTART, str(broken), PANEL, "--bench", OFFLINE_BENCH]) == 2
    said = capsys.readouterr()
    assert f"{QUICKSTART}: valid" in said.out and f"{PANEL}: valid" in said.out
    assert f"{broken}:4:" in said.err and said.err.count("chipctl:") == 1
    assert main(["validate", QUICKSTART, PANEL, "--bench", OFFLINE_BENCH]) == 0
    capsys.readouterr()

    assert main(["validate", QUICKSTART, str(broken), "quickstart", "--bench", OFFLINE_BENCH,
                 "--json"]) == 2
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [(d["protocol"], d["valid"]) for d in lines] == [
        (QUICKSTART, True), (str(broken), False), (QUICKSTART, True)]
    assert lines[1]["problems"][0]["line"] == 4


def test_the_dry_run_counts_images_and_steps_in_words(capsys: pytest.CaptureFixture[str]
                                                      ) -> None:
    assert main(["validate", QUICKSTART, PANEL, "--bench", OFFLINE_BENCH]) == 0
    out = capsys.readouterr().out
    assert "\n  1 image, " in out and "1 images" not in out
    assert "\n  48 images, " in out and "6 steps, about" in out


# -- the protocol library --------------------------------------------------------------------
def away_from_the_library(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """In-process, as `chipctl` started in an empty folder without the library variable."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv(LIBRARY_ENV, raising=False)


def test_a_library_protocol_is_found_by_name_from_any_folder(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    away_from_the_library(tmp_path, monkeypatch)
    code = main(["validate", "quickstart", "tetraspanin_panel.yaml", "rate_sweep",
                 "--bench", OFFLINE_BENCH])
    out, err = capsys.readouterr()
    assert code == 0, err
    for name in ("quickstart.yaml", "tetraspanin_panel.yaml", "rate_sweep.py"):
        assert f"{library_in_process() / name}: valid" in out


def test_an_unknown_name_lists_the_library(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    away_from_the_library(tmp_path, monkeypatch)
    assert main(["run", "quikstart", "--sim"]) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err
    assert (f"no protocol 'quikstart': not a file here, nor in the protocol library "
            f"({library_in_process()}); the library has: capture_kinetics, clean_and_store, "
            "quickstart, rate_sweep, stopped_flow_kinetics, tetraspanin_panel") in err


def test_a_file_in_the_working_folder_comes_before_the_library(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "quickstart").write_text("mine")
    monkeypatch.chdir(tmp_path)
    assert find_protocol("quickstart") == Path("quickstart")
    assert find_protocol("clean_and_store") == LIBRARY / "clean_and_store.yaml"
    with pytest.raises(ProtocolNotFound):
        find_protocol("nothing")
    assert find_protocol("sub/missing.yaml") == Path("sub/missing.yaml")  # its loader says why


def test_the_library_is_found_in_each_place_an_install_puts_it(tmp_path: Path) -> None:
    own = tmp_path / "own"
    own.mkdir()
    (own / "mine.yaml").write_text("")
    assert protocol_library({LIBRARY_ENV: str(own)}) == own
    assert library_names(own) == ["mine"]
    assert protocol_library({}) == LIBRARY  # a source or editable install
    installed = tmp_path / "prefix" / "share" / "chipctl" / "protocols"
    installed.mkdir(parents=True)
    assert protocol_library({}, package_root=tmp_path / "site-packages",
                            prefix=str(tmp_path / "prefix")) == installed
    assert protocol_library({}, package_root=tmp_path, prefix=str(tmp_path)) is None


def test_a_packaged_install_carries_the_whole_library_where_it_is_looked_for() -> None:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())
    data = config["tool"]["setuptools"]["data-files"]["share/chipctl/protocols"]
    shipped = {p for pattern in data for p in ROOT.glob(pattern)}
    assert shipped == {p for p in LIBRARY.iterdir() if p.is_file()}


# -- --speed ---------------------------------------------------------------------------------
@pytest.mark.parametrize("speed", ["0", "-5", "nan", "fast"])
def test_a_speed_of_zero_or_below_is_refused_by_the_parser(
        speed: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as stop:
        main(["run", QUICKSTART, "--sim", f"--speed={speed}"])
    assert stop.value.code == 2
    err = capsys.readouterr().err
    assert "chipctl run: error: argument --speed: " in err
    if speed in ("0", "-5"):
        assert ("must be above 0 (simulated seconds per wall second, e.g. 1 or 100), "
                f"got {speed}") in err


def test_a_negative_speed_ends_the_process_before_a_simulator_starts() -> None:
    result = chipctl("run", QUICKSTART, "--sim", "--speed", "-1")
    assert result.returncode == 2
    assert result.stderr.splitlines()[-1] == (
        "chipctl run: error: argument --speed: must be above 0 (simulated seconds per wall "
        "second, e.g. 1 or 100), got -1")
    assert "hardware_sim" not in result.stderr and "Traceback" not in result.stderr


def test_speed_is_for_the_simulated_bench(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["run", QUICKSTART, "--bench", OFFLINE_BENCH, "--speed", "5"]) == 2
    assert "--speed applies to the simulated bench (--sim)" in capsys.readouterr().err


# -- a closed pipe ---------------------------------------------------------------------------
def test_count_json_into_a_pipe_closed_early_ends_without_a_traceback(tmp_path: Path) -> None:
    image = tmp_path / "frame.tif"
    tifffile.imwrite(image, spots_image(20, size=64))
    child = subprocess.Popen([sys.executable, "-m", "chipctl", "count", "--json",
                              *[str(image)] * 400], cwd=ROOT, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True)
    assert child.stdout is not None and child.stderr is not None
    first = json.loads(child.stdout.readline())  # like `| head -1`: one line, then gone
    child.stdout.close()
    err = child.stderr.read()
    assert child.wait(120) == 0
    assert first["image"] == str(image) and first["count"] > 0
    assert err == ""


# -- Ctrl-C ----------------------------------------------------------------------------------
def read_until(child: subprocess.Popen[str], marker: str, timeout_s: float = 120) -> list[str]:
    assert child.stdout is not None
    lines: list[str] = []
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        line = child.stdout.readline()
        if not line:
            break
        lines.append(line.rstrip("\n"))
        if marker in line:
            return lines
    raise AssertionError(f"{marker!r} never came: {lines}")


@pytest.mark.skipif(sys.platform == "win32", reason="SIGINT to a child is POSIX")
def test_the_ctrl_c_summary_says_what_the_record_says(tmp_path: Path) -> None:
    child = subprocess.Popen([sys.executable, "-m", "chipctl", "run", QUICKSTART, "--sim",
                              "--speed", "20", "--runs-dir", str(tmp_path / "runs")],
                             cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                             text=True, start_new_session=True)
    read_until(child, "step 2/6: 2. sample")
    child.send_signal(signal.SIGINT)
    out, err = child.communicate(timeout=120)
    assert child.returncode == 1, err
    summary = next(line for line in out.splitlines() if line.startswith("run "))
    folder = Path(out.split("run folder: ", 1)[1].strip())
    info = RunFolder.open(folder).info
    assert (info["status"], info["reason"]) == ("aborted", "interrupted by the operator (Ctrl-C)")
    assert summary.startswith(f"run {info['status']}: {info['reason']}; ")
    assert "run running" not in out and "Traceback" not in err


def test_a_summary_of_a_run_still_recorded_as_running_says_so(tmp_path: Path) -> None:
    text = Outcome("running", "started", tmp_path).summary()
    assert text.splitlines()[0] == "run not finished: its record still says running; " \
                                   "0 frames counted"


# -- a whole run from the library: progress, field numbers -----------------------------------
def test_a_library_run_prints_progress_during_long_steps_and_fields_from_1(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    result = chipctl("run", "quickstart", "--sim", "--speed", "300", "--progress-every", "0.1",
                     "--runs-dir", str(tmp_path / "runs"), cwd=tmp_path,
                     env=without_library_env())
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    progress = [line for line in lines if line.startswith("[")]
    assert all("[protocol time " in line and "; wall time " in line for line in progress)
    # the 2-minute sample flow takes at least 0.4 wall seconds at 300x: ticks repeat it
    assert sum(line.endswith("step 2/6: 2. sample") for line in progress) >= 2
    assert any("]   CD63 AF555 field 1: " in line and " vesicles" in line for line in progress)
    assert "field 0" not in result.stdout
    folder = Path(result.stdout.split("run folder: ", 1)[1].strip())
    run = RunFolder.open(folder)
    assert run.info["protocol_source"] == str(installed_library() / "quickstart.yaml")
    assert run.info["status"] == "completed" and run.info["fields_from"] == 1
    assert lines[-2].startswith("run completed: all steps done; 1 frame counted; "
                                "CD63/AF555 field 1: ")
    with (folder / "counts.csv").open() as handle:
        assert [row["field"] for row in csv.DictReader(handle)] == ["1"]
    with (folder / "spots.csv").open() as handle:
        assert {row["field"] for row in csv.DictReader(handle)} == {"1"}
    assert [p.name.split("-")[2] for p in (folder / "frames").iterdir()] == ["f1"]
    # the record read back in this process (the run's own process and its library mattered)
    assert main(["runs", "show", folder.name, "--runs-dir", str(tmp_path / "runs")]) == 0
    assert "  1 counted frame, 1 frame kept, " in capsys.readouterr().out


WAITS = """schema_version: 1
name: two waits
steps:
  - wait: 5 min
  - wait: 5 min
"""


def test_a_run_whose_output_pipe_closes_carries_on_to_the_end(tmp_path: Path) -> None:
    protocol = tmp_path / "wait.yaml"
    protocol.write_text(WAITS)
    child = subprocess.Popen([sys.executable, "-m", "chipctl", "run", str(protocol), "--sim",
                              "--speed", "300", "--progress-every", "0.05",
                              "--runs-dir", str(tmp_path / "runs")],
                             cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                             text=True)
    read_until(child, "step 1/2: 1. wait")  # like `| head -3`: then the reader is gone
    assert child.stdout is not None and child.stderr is not None
    child.stdout.close()
    err = child.stderr.read()
    assert child.wait(120) == 0, err
    assert "Traceback" not in err and "Exception ignored" not in err
    (folder,) = (tmp_path / "runs").glob("*-two-waits")
    info = RunFolder.open(folder).info
    assert (info["status"], info["reason"]) == ("completed", "all steps done")


def test_one_vesicle_is_one_vesicle(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    image = tmp_path / "one.tif"
    tifffile.imwrite(image, spots_image(1, size=96, seed=3))
    assert main(["count", "--json", str(image)]) == 0
    assert json.loads(capsys.readouterr().out)["count"] == 1
    assert main(["count", str(image)]) == 0
    assert capsys.readouterr().out == f"{image}: 1 vesicle\n"
