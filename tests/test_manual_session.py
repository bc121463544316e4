"""Manual work recorded and guarded like a run (issue 15), on the in-memory bench: every
manual action goes into an append-only manual session beside the runs, and passes the run's
interlocks (chip pressure for the total flow, syringe contents and room, end of travel, stage
travel limits, a run having the bench) before anything is sent."""

from __future__ import annotations

import copy
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from chipctl.cli.main import main
from chipctl.devices.illuminator import ExposureLight
from chipctl.engine import Engine
from chipctl.manual import ManualRefused
from chipctl.protocol import parse_protocol
from chipctl.runs import RunFolder, RunIndex
from tests.fakes import GUI_BENCH, FakePump, FakeStage, fake_engine

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.timeout(120)


def wait_until(condition: Callable[[], object], timeout_s: float = 60.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.01)


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[Engine]:
    engine = fake_engine(tmp_path / "runs")
    engine.connect()
    yield engine
    engine.close()


def pump(engine: Engine, name: str = "sample_pump") -> FakePump:
    return engine.pumps()[name]  # type: ignore[return-value]


def events(engine: Engine) -> list[dict[str, Any]]:
    assert engine.manual.folder is not None
    return RunFolder.open(engine.manual.folder).events


def of_kind(records: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [e for e in records if e["event"] == kind]


def test_a_manual_flow_is_recorded_like_a_run_and_listed(engine: Engine, tmp_path: Path,
                                                          capsys: pytest.CaptureFixture[str]
                                                          ) -> None:
    engine.manual.infuse("sample_pump", 60.0, 5.0)
    wait_until(lambda: not engine.manual.flowing())
    folder = engine.manual.folder
    assert folder is not None and folder.parent == tmp_path / "runs"
    info = RunFolder.open(folder).info
    assert (info["kind"], info["status"], info["protocol"]) == ("manual", "running",
                                                                "manual control")
    log = events(engine)
    assert log[0]["event"] == "run_started" and log[0]["kind"] == "manual"
    assert log[0]["syringes"]["sample_pump"]["contents_ul"] == 1000
    assert of_kind(log, "manual") == [
        {**of_kind(log, "manual")[0], "device": "sample_pump", "action": "infuse",
         "rate_ul_min": 60.0, "volume_ul": 5.0}]
    done = of_kind(log, "pump_done")
    assert len(done) == 1 and done[0]["delivered_ul"] == pytest.approx(5.0)
    assert of_kind(log, "syringe")[-1]["contents_ul"] == pytest.approx(995.0)
    assert pump(engine).commands == ["infuse 60 5.0"]

    engine.manual.light("led", "AF555", 35.0)
    engine.manual.dark("led")
    engine.manual.move_to("stage", 120.0, -40.0)
    engine.manual.set_exposure("camera", 25.0)
    frame = engine.manual.snap("camera")
    assert frame.image.size > 0
    done_actions = [(e["device"], e["action"]) for e in of_kind(events(engine), "manual")]
    assert done_actions[1:] == [("led", "light"), ("led", "dark"), ("stage", "move to"),
                                ("camera", "exposure"), ("camera", "snap")]

    engine.close()
    info = RunFolder.open(folder).info
    assert (info["status"], info["reason"]) == ("completed", "session closed")
    assert info["syringes"]["sample_pump"]["contents_ul"] == pytest.approx(995.0)

    assert main(["runs", "list", "--runs-dir", str(tmp_path / "runs")]) == 0
    listing = capsys.readouterr().out.splitlines()
    assert len(listing) == 1
    assert listing[0].split()[:3] == [folder.name, "manual", "completed"]
    assert main(["runs", "show", folder.name, "--runs-dir", str(tmp_path / "runs")]) == 0
    shown = capsys.readouterr().out
    assert shown.startswith(f"manual session {folder.name}")
    assert "6 actions, 0 refusals, 0 interlocks, 0 emergency stops" in shown
    assert "sample_pump infuse rate_ul_min=60 volume_ul=5" in shown
    assert "sample_pump infused 5 uL" in shown
    assert "stage move to x_um=120 y_um=-40" in shown


def test_the_record_is_append_only_across_actions(engine: Engine) -> None:
    engine.manual.light("led", "AF488", 10.0)
    assert engine.manual.folder is not None
    path = engine.manual.folder / "events.jsonl"
    before = path.read_bytes()
    engine.manual.dark("led")
    after = path.read_bytes()
    assert after.startswith(before) and len(after) > len(before)


def test_a_flow_over_the_chips_pressure_limit_is_refused_before_anything_is_sent(
        engine: Engine) -> None:
    limit = engine.bench.chip.max_flow_ul_min()
    with pytest.raises(ManualRefused, match=r"over-pressure: sample_pump at .* uL/min would "
                                            r"drive an estimated .* kPa .*limit 100 kPa"):
        engine.manual.infuse("sample_pump", limit * 1.2, 5.0)
    assert pump(engine).commands == []
    refused = of_kind(events(engine), "manual_refused")
    assert refused[0]["action"] == "infuse" and "over-pressure" in refused[0]["reason"]
    assert of_kind(events(engine), "manual") == []


def test_two_manual_flows_together_are_held_to_the_chips_limit(engine: Engine) -> None:
    limit = engine.bench.chip.max_flow_ul_min()
    engine.manual.infuse("buffer_pump", limit * 0.6, 4000.0)
    with pytest.raises(ManualRefused, match="over-pressure: buffer_pump \\+ sample_pump"):
        engine.manual.infuse("sample_pump", limit * 0.6, 5.0)
    assert pump(engine).commands == []
    engine.manual.stop_pump("buffer_pump")
    engine.manual.infuse("sample_pump", limit * 0.6, 5.0)  # alone it is within the limit
    assert pump(engine).commands == [f"infuse {limit * 0.6:g} 5.0"]


@pytest.mark.parametrize(("direction", "volume", "contents", "message"), [
    ("infuse", 60.0, 50.0, "60 uL is more than the syringe on sample_pump holds (50.0 uL)"),
    ("withdraw", 60.0, 950.0, "60 uL is more than the syringe on sample_pump has room for "
                              "(50.0 uL)"),
    ("infuse", None, 0.0, "end of travel: the syringe on sample_pump is empty"),
    ("withdraw", 5.0, 1000.0, "end of travel: the syringe on sample_pump is full"),
    ("infuse", -2.0, 500.0, "the volume must be above 0 uL"),
])
def test_the_syringe_limits_a_manual_flow(engine: Engine, direction: str, volume: float | None,
                                          contents: float, message: str) -> None:
    pump(engine).syringe.contents_ul = contents
    start = engine.manual.infuse if direction == "infuse" else engine.manual.withdraw
    with pytest.raises(ManualRefused) as refused:
        start("sample_pump", 10.0, volume)
    assert message in str(refused.value)
    assert pump(engine).commands == []
    assert of_kind(events(engine), "manual_refused")[0]["reason"] == str(refused.value)


def test_a_flow_without_a_volume_pumps_what_the_syringe_holds(engine: Engine) -> None:
    pump(engine).syringe.contents_ul = 4.0
    engine.manual.infuse("sample_pump", 100.0)
    assert pump(engine).commands == ["infuse 100 4.0"]
    wait_until(lambda: not engine.manual.flowing())
    assert of_kind(events(engine), "interlock") == []
    assert pump(engine).syringe.contents_ul == pytest.approx(0.0)


def test_end_of_travel_during_a_manual_flow_is_an_interlock_on_the_record(
        engine: Engine) -> None:
    sample = pump(engine)
    sample.syringe.contents_ul = 10.0
    sample.stall_after_ul = 10.0  # the plunger hits the end: the pump stalls with an alarm
    engine.manual.infuse("sample_pump", 100.0, 10.0)
    wait_until(lambda: not engine.manual.flowing())
    interlocks = of_kind(events(engine), "interlock")
    assert [e["device"] for e in interlocks] == ["sample_pump"]
    assert interlocks[0]["reason"] == ("interlock: end of travel: the syringe on sample_pump "
                                       "is empty after 10.0 of 10 uL")
    assert sample.t0 is None and "stop" in sample.commands
    assert of_kind(events(engine), "pump_done")[0]["delivered_ul"] == pytest.approx(10.0)


def test_a_stall_mid_syringe_is_recorded_as_the_stall_it_is(engine: Engine) -> None:
    pump(engine).stall_after_ul = 3.0
    engine.manual.infuse("sample_pump", 100.0, 10.0)
    wait_until(lambda: not engine.manual.flowing())
    reason = of_kind(events(engine), "interlock")[0]["reason"]
    assert reason.startswith("interlock: pump stall alarm")


def test_a_pump_already_pumping_is_not_started_twice(engine: Engine) -> None:
    engine.manual.infuse("buffer_pump", 10.0, 1000.0)
    with pytest.raises(ManualRefused, match="buffer_pump is already pumping; stop it first"):
        engine.manual.infuse("buffer_pump", 10.0, 1000.0)
    engine.manual.stop_pump("buffer_pump")
    done = of_kind(events(engine), "pump_done")
    assert len(done) == 1 and 0 <= done[0]["delivered_ul"] < 1000


def test_emergency_stop_during_manual_work_is_recorded_and_books_the_flow(
        engine: Engine) -> None:
    engine.manual.infuse("buffer_pump", 10.0, 1000.0)
    engine.manual.light("led", "AF647", 80.0)
    failures = engine.emergency_stop()
    assert failures == []
    assert engine.manual.flowing() == {}
    assert pump(engine, "buffer_pump").t0 is None and engine.illuminators()["led"].on == {}
    log = events(engine)
    stop = of_kind(log, "emergency_stop")
    assert len(stop) == 1 and stop[0]["failures"] == []
    assert log.index(stop[0]) > log.index(of_kind(log, "pump_start")[0])
    done = of_kind(log, "pump_done")
    assert len(done) == 1 and 0 <= done[0]["delivered_ul"] < 1000


def test_an_emergency_stop_on_an_idle_bench_opens_a_session_to_record_it(
        engine: Engine) -> None:
    assert engine.manual.folder is None
    engine.emergency_stop()
    assert [e["event"] for e in events(engine)] == ["run_started", "emergency_stop"]


TRAVEL_BENCH = copy.deepcopy(GUI_BENCH)
TRAVEL_BENCH["devices"]["stage"]["travel"] = {"x": ["-10 mm", "10 mm"],
                                              "y": ["-5 mm", "5 mm"], "z": ["0 um", "900 um"]}
TRAVEL_BENCH["devices"]["camera"]["exposure_range"] = ["1 ms", "2 s"]


@pytest.mark.parametrize(("call", "message"), [
    (lambda m: m.move_to("stage", 12_000.0, 0.0),
     "x 12000 um is outside the stage's travel limits (-10000 to 10000 um)"),
    (lambda m: m.move_by("stage", 0.0, -6_000.0),
     "y -6000 um is outside the stage's travel limits (-5000 to 5000 um)"),
    (lambda m: m.focus_to("stage", 950.0),
     "z 950 um is outside the stage's travel limits (0 to 900 um)"),
    (lambda m: m.set_exposure("camera", 3000.0),
     "3000 ms is outside the camera's exposure range (1 to 2000 ms)"),
    (lambda m: m.light("led", "DAPI", 10.0), "led has no channel 'DAPI' (it has AF488, AF555"),
    (lambda m: m.light("led", "AF488", 120.0), "LED power must be 0-100 %, got 120"),
    (lambda m: m.infuse("no_such_pump", 1.0, 1.0), "no pump 'no_such_pump' on this bench"),
])
def test_stage_travel_camera_and_light_limits_refuse_before_anything_moves(
        tmp_path: Path, call: Callable[[Any], object], message: str) -> None:
    engine = fake_engine(tmp_path / "runs", TRAVEL_BENCH)
    engine.connect()
    try:
        stage: FakeStage = engine.stages()["stage"]  # type: ignore[assignment]
        with pytest.raises(ManualRefused) as refused:
            call(engine.manual)
        assert message in str(refused.value)
        assert stage.visits == [] and stage.z == 0.0
        assert engine.cameras()["camera"].exposure_ms == 10.0
        assert engine.illuminators()["led"].on == {}
        assert of_kind(events(engine), "manual_refused")[0]["reason"] == str(refused.value)
        assert engine.manual.move_to("stage", 9_000.0, 4_000.0) == (9_000.0, 4_000.0)
    finally:
        engine.close()


WAIT = """schema_version: 1
name: long wait
steps:
  - wait: 30 min
"""


def test_no_manual_action_while_a_run_has_the_bench_but_stopping_is_never_refused(
        engine: Engine) -> None:
    runner = engine.start_run(parse_protocol(WAIT, "wait.yaml"))
    wait_until(lambda: runner.state.value == "running")
    assert engine.recorder is not None
    for call in (lambda: engine.manual.infuse("sample_pump", 5.0, 1.0),
                 lambda: engine.manual.light("led", "AF488", 10.0),
                 lambda: engine.manual.move_to("stage", 1.0, 1.0),
                 lambda: engine.manual.snap("camera")):
        with pytest.raises(ManualRefused, match=f"run {engine.recorder.run_id} is in progress"):
            call()
    engine.manual.stop_pump("sample_pump")
    engine.manual.dark()
    engine.manual.halt_stage("stage")
    assert pump(engine).commands == ["stop"]
    kinds = [(e["event"], e["action"]) for e in events(engine) if "action" in e]
    assert kinds == [("manual_refused", "infuse"), ("manual_refused", "light"),
                     ("manual_refused", "move to"), ("manual_refused", "snap"),
                     ("manual", "stop"), ("manual", "dark"), ("manual", "halt")]
    engine.abort()
    runner.wait(30)


def test_a_run_does_not_start_over_a_manual_flow_and_the_session_notes_the_run(
        engine: Engine) -> None:
    engine.manual.infuse("buffer_pump", 10.0, 1000.0)
    with pytest.raises(RuntimeError, match="manual flow on buffer_pump is running"):
        engine.start_run(parse_protocol(WAIT, "wait.yaml"))
    engine.manual.stop_pump("buffer_pump")
    runner = engine.start_run(parse_protocol(WAIT, "wait.yaml"))
    engine.abort()
    runner.wait(30)
    assert engine.recorder is not None
    noted = of_kind(events(engine), "protocol_run")
    assert [(e["run_id"], e["protocol"]) for e in noted] == [(engine.recorder.run_id,
                                                              "long wait")]


def test_the_next_run_starts_from_the_syringe_the_manual_work_left(engine: Engine) -> None:
    engine.manual.infuse("sample_pump", 100.0, 20.0)
    wait_until(lambda: not engine.manual.flowing())
    runner = engine.start_run(parse_protocol(WAIT, "wait.yaml"))
    engine.abort()
    runner.wait(30)
    assert engine.recorder is not None
    run = RunFolder.open(engine.recorder.folder)
    assert run.events[0]["syringes"]["sample_pump"]["contents_ul"] == pytest.approx(980.0)


def test_runs_list_filters_by_kind(engine: Engine, tmp_path: Path,
                                   capsys: pytest.CaptureFixture[str]) -> None:
    engine.manual.light("led", "AF488", 10.0)
    runner = engine.start_run(parse_protocol(WAIT, "wait.yaml"))
    engine.abort()
    runner.wait(30)
    engine.close()
    runs = str(tmp_path / "runs")
    assert main(["runs", "--runs-dir", runs, "list", "--kind", "manual"]) == 0
    manual = capsys.readouterr().out.splitlines()
    assert main(["runs", "list", "--kind", "protocol", "--runs-dir", runs]) == 0
    protocol = capsys.readouterr().out.splitlines()
    assert [line.split()[1] for line in manual] == ["manual"]
    assert [line.split()[1:3] for line in protocol] == [["protocol", "aborted"]]
    assert main(["runs", "report", manual[0].split()[0], "--runs-dir", runs]) == 2
    assert "is a manual session" in capsys.readouterr().err
    RunIndex(tmp_path / "runs").refresh()
    kinds = sorted(row["kind"] for row in RunIndex(tmp_path / "runs").list())
    assert kinds == ["manual", "protocol"]


KILLED_MID_FLOW = """
import sys, time
from pathlib import Path
from tests.fakes import fake_engine
engine = fake_engine(Path(sys.argv[1]))
engine.connect()
engine.manual.infuse("buffer_pump", 1.0, 4000.0)
print(engine.manual.folder, flush=True)
time.sleep(60)
"""


@pytest.mark.skipif(sys.platform == "win32", reason="SIGKILL is POSIX")
def test_a_manual_session_cut_off_by_a_crash_is_found_interrupted_with_its_syringes(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    runs = tmp_path / "runs"
    child = subprocess.Popen([sys.executable, "-c", KILLED_MID_FLOW, str(runs)], cwd=ROOT,
                             stdout=subprocess.PIPE, text=True)
    assert child.stdout is not None
    folder = Path(child.stdout.readline().strip())
    os.kill(child.pid, signal.SIGKILL)
    child.wait(30)
    assert RunFolder.open(folder).info["status"] == "running"
    assert main(["runs", "list", "--runs-dir", str(runs)]) == 0
    out = capsys.readouterr().out
    assert (f"NOTE: manual session {folder.name} (started ") in out
    assert "was interrupted: the controller stopped unexpectedly during manual work." in out
    assert ("buffer_pump (buffer): 5000 uL at the last record; was infusing 4000 uL at 1 uL/min"
            in out)
    assert out.splitlines()[-1].split()[:3] == [folder.name, "manual", "interrupted"]


def test_last_is_the_newest_protocol_run_and_recount_all_skips_sessions(
        engine: Engine, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    runner = engine.start_run(parse_protocol(WAIT, "wait.yaml"))
    engine.abort()
    runner.wait(30)
    assert engine.recorder is not None
    time.sleep(1.1)  # folder names carry the second: the session's sorts after the run's
    engine.manual.light("led", "AF488", 10.0)
    session = engine.manual.folder
    assert session is not None and session.name > engine.recorder.run_id
    engine.close()
    runs = str(tmp_path / "runs")
    assert main(["runs", "show", "last", "--runs-dir", runs]) == 0
    assert capsys.readouterr().out.startswith(f"run {engine.recorder.run_id}\n")
    assert main(["runs", "recount", "--all", "--workers", "1", "--runs-dir", runs]) == 0
    out = capsys.readouterr().out
    assert out.startswith("re-counting 1 run with counter ") and session.name not in out
    assert main(["runs", "recount", session.name, "--runs-dir", runs]) == 2
    assert "is a manual session: it has no frames to re-count" in capsys.readouterr().err


def test_live_frames_are_lit_for_their_exposure_only_until_an_emergency_stop(
        tmp_path: Path) -> None:
    """Live as a run's image step: the channel lit around each exposure (this LED has no
    camera trigger), dark between frames; an emergency stop ends live view in the core."""
    engine = fake_engine(tmp_path / "runs", spots=False)
    engine.connect()
    camera, light = engine.cameras()["camera"], engine.illuminators()["led"]
    try:
        with pytest.raises(ManualRefused, match="no channel 'AF700'"):
            engine.manual.live("camera", True, ExposureLight("led", "AF700", 35.0))
        engine.manual.live("camera", True, ExposureLight("led", "AF555", 35.0))
        dark_between: list[dict[str, float]] = []
        for _ in range(3):
            engine.manual.live_frame("camera")
            dark_between.append(dict(light.on))  # type: ignore[attr-defined]
        assert camera.lit_snaps == ["AF555"] * 3  # type: ignore[attr-defined]
        assert dark_between == [{}] * 3
        engine.manual.emergency_stop()
        with pytest.raises(ManualRefused, match="live view on camera is off"):
            engine.manual.live_frame("camera")
        assert camera.lit_snaps == ["AF555"] * 3  # type: ignore[attr-defined]
        live_on = [e for e in of_kind(events(engine), "manual") if e["action"] == "live on"]
        assert [(e["channel"], e["power_pct"]) for e in live_on] == [("AF555", 35.0)]
    finally:
        engine.close()
