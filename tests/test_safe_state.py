"""Issue 17: a safe state that always happens.

Every stop path goes through Rig.safe_stop: each physical device's off on its own thread, sent
blindly, confirmed and recorded. Signals stop a `chipctl run` at once; a SIGKILLed controller's
New Era pumps stop by their own safe mode; a second controller on a bench is refused. The
signal tests run `chipctl run` as a child process against the simulator served in this process
and read what happened from the simulator's own record (the pump's `ended`, `ended_at_s` on
the simulated clock), as an outside observer of the bench would.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from fakes import GUI_BENCH, FakeLight, FakeStage, SpotsCamera, make_runner
from simbench import lights_on, pumps_running, sim_engine, simulated_bench

from chipctl.cli.main import main
from chipctl.config.bench import Bench
from chipctl.devices.rig import Rig
from chipctl.runs.lock import BenchInUse, BenchLock
from hardware_sim.control import request

POSIX = pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")
SPEED = 10.0  # the simulated clock: 10 s per wall second
# The target is 1 s from the signal to the pump stopped. Measured here on the
# simulator's clock, bounded at 2 s so a loaded 2-core machine cannot flake it;
# benchmarks/reliability.py prints the figures themselves.
STOP_BOUND_S = 2.0
LONG_FLOW = """schema_version: 1
name: long flow
steps:
  - prime: {pump: buffer_pump, volume: 500 uL, rate: 20 uL/min}
"""


# -- the safe stop on a rig of fakes ---------------------------------------------------------
class OffPump:
    """A pump whose off either confirms at once or hangs until released (a dead port)."""

    def __init__(self, name: str, hang: threading.Event | None = None) -> None:
        self.name, self.hang = name, hang
        self.offs = 0
        self.done_while_other_hung = False

    def connect(self) -> None: ...

    def close(self) -> None: ...

    def off(self) -> bool:
        self.offs += 1
        if self.hang is not None:
            self.hang.wait(30)
            return False
        return True


class OffLight(FakeLight):
    def off(self) -> bool:
        self.on = {}
        return True


def _rig(devices: dict[str, Any], same_pump: bool = False) -> Rig:
    document = json.loads(json.dumps(GUI_BENCH))
    if not same_pump:
        document["devices"]["sample_pump"]["address"] = 1
    bench = Bench.model_validate(document)
    base = {"led": OffLight(), "stage": FakeStage(), "camera": SpotsCamera("camera", 0.65)}
    return Rig(bench, {**base, **devices})


def test_a_dead_port_does_not_delay_stopping_a_healthy_pump() -> None:
    hang = threading.Event()
    dead, healthy = OffPump("buffer_pump", hang), OffPump("sample_pump")
    rig = _rig({"buffer_pump": dead, "sample_pump": healthy})
    rig.illuminators["led"].light("AF488", 100)
    try:
        stop = rig.safe_stop("test")
        # the healthy pump and the light were confirmed while the dead pump still hung
        assert not hang.is_set()
        assert sorted(stop.confirmed) == ["led", "sample_pump", "stage"]
        assert stop.failures == ["buffer_pump: no confirmation within 2 s"]
        assert rig.illuminators["led"].on == {}
        record = stop.as_record()
        assert record["unconfirmed"] == ["buffer_pump"]
        assert {d["device"] for d in record["devices"]} == {"buffer_pump", "sample_pump", "led",
                                                           "stage"}
    finally:
        hang.set()


def test_one_pump_named_twice_is_stopped_once() -> None:
    pump = OffPump("pump")
    rig = _rig({"buffer_pump": pump, "sample_pump": pump}, same_pump=True)
    stop = rig.safe_stop("test")
    assert pump.offs == 1
    assert "buffer_pump+sample_pump" in stop.confirmed


def test_every_run_end_records_which_device_confirmed(tmp_path: Path) -> None:
    runner, _rig_, records = make_runner(
        "schema_version: 1\nname: t\nsteps:\n  - wait: 1 s\n")
    runner.run()
    stops = [r for r in records if r["event"] == "safe_stop"]
    assert len(stops) == 1 and stops[0]["reason"] == "end of run"
    assert set(stops[0]["confirmed"]) >= {"led"} and stops[0]["unconfirmed"] == []


# -- one controller per bench ----------------------------------------------------------------
def test_a_second_controller_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bench = tmp_path / "bench.yaml"
    bench.write_text(json.dumps(GUI_BENCH | {"devices": {
        "buffer_pump": {"driver": "newera", "url": "socket://127.0.0.1:9", "reagent": "buffer",
                        "syringe": {"inner_diameter": "12.45 mm", "volume": "5000 uL"}}},
        "chip": GUI_BENCH["chip"]}))
    protocol = tmp_path / "p.yaml"
    protocol.write_text(LONG_FLOW)
    first = BenchLock({"socket://127.0.0.1:9": "buffer_pump"})  # the first controller
    first.acquire()
    try:
        code = main(["run", str(protocol), "--bench", str(bench), "--runs-dir",
                     str(tmp_path / "runs"), "--yes"])
        err = capsys.readouterr().err
        assert code == 2
        assert f"device 'buffer_pump' is in use by another chipctl (pid {os.getpid()})" in err
        assert "Traceback" not in err
        with pytest.raises(BenchInUse):
            BenchLock({"socket://127.0.0.1:9": "again"}).acquire()
    finally:
        first.release()
    second = BenchLock({"socket://127.0.0.1:9": "buffer_pump"})
    second.acquire()  # free again once the first let go
    second.release()


def test_a_stale_bench_lock_is_taken_over(tmp_path: Path) -> None:
    lock = BenchLock({"socket://127.0.0.1:9": "pump"}, tmp_path)
    lock._path("socket://127.0.0.1:9").write_text("pid 999999")  # left by a dead controller
    lock.acquire()
    assert lock._path("socket://127.0.0.1:9").read_text() == f"pid {os.getpid()}"
    lock.release()


# -- signals against the simulator -----------------------------------------------------------
def _start_run(folder: Path, bench_file: Path) -> subprocess.Popen[bytes]:
    protocol = folder / "long.yaml"
    protocol.write_text(LONG_FLOW)
    return subprocess.Popen(
        [sys.executable, "-m", "chipctl.cli.main", "run", str(protocol), "--bench",
         str(bench_file), "--runs-dir", str(folder / "runs"), "--yes"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def _sim(bench: Any) -> dict[str, Any]:
    reply = request(bench.control.address, {"cmd": "status"}, token=bench.control.token)
    assert reply["ok"], reply
    return reply


def _wait_for(what: Callable[[], bool], wall_s: float = 60.0) -> None:
    deadline = time.monotonic() + wall_s  # a bound on waiting, not a speed assertion
    while not what():
        assert time.monotonic() < deadline, "timed out waiting"
        time.sleep(0.05)


def _run_events(folder: Path) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    (run,) = [p for p in (folder / "runs").iterdir() if (p / "run.json").exists()]
    events = [json.loads(line) for line in (run / "events.jsonl").read_text().splitlines()]
    return json.loads((run / "run.json").read_text()), events


@POSIX
@pytest.mark.parametrize("sig", ["SIGTERM", "SIGHUP"])
def test_a_signal_mid_flow_stops_the_pumps_at_once(tmp_path: Path, sig: str) -> None:
    with simulated_bench(tmp_path, SPEED) as (bench, bench_file):
        child = _start_run(tmp_path, bench_file)
        try:
            _wait_for(lambda: "buffer_pump" in pumps_running(_sim(bench)["devices"]))
            signalled_at = _sim(bench)["time_s"]
            child.send_signal(getattr(signal, sig))
            out, err = child.communicate(timeout=60)
        finally:
            child.kill()
        devices = _sim(bench)["devices"]
    assert child.returncode == 1, err
    assert pumps_running(devices) == [] and lights_on(devices) == []
    pump = devices["buffer_pump"]
    assert pump["ended"] == "stopped"  # by a command, not the safe-mode watchdog
    assert 0 <= (pump["ended_at_s"] - signalled_at) / SPEED <= STOP_BOUND_S
    info, events = _run_events(tmp_path)
    assert info["status"] == "aborted" and info["reason"] == f"interrupted by {sig}"
    assert any(e["event"] == "interrupted" for e in events)
    stops = [e for e in events if e["event"] == "safe_stop"]
    assert stops and all("buffer_pump" in s["confirmed"] for s in stops)
    assert b"Traceback" not in err


@POSIX
def test_sigkill_mid_flow_the_pump_stops_by_its_safe_mode(tmp_path: Path) -> None:
    with simulated_bench(tmp_path, SPEED) as (bench, bench_file):
        child = _start_run(tmp_path, bench_file)
        try:
            _wait_for(lambda: "buffer_pump" in pumps_running(_sim(bench)["devices"]))
            killed_at = _sim(bench)["time_s"]
            child.kill()  # SIGKILL: nothing of chipctl runs any more
            child.wait(30)
        finally:
            child.kill()
        _wait_for(lambda: "buffer_pump" not in pumps_running(_sim(bench)["devices"]))
        pump = _sim(bench)["devices"]["buffer_pump"]
    assert pump["ended"] == "comm_timeout"  # the pump's own watchdog stopped it
    safe_mode_s = 5.0  # the bench file names none: the default
    assert 0 < (pump["ended_at_s"] - killed_at) / SPEED <= safe_mode_s + STOP_BOUND_S


def test_the_emergency_stop_halts_a_moving_stage(tmp_path: Path) -> None:
    with sim_engine(tmp_path, 1.0) as (engine, _bench):
        (stage,) = engine.stages().values()
        x0, y0 = stage.position()
        stage.move_to(x0 + 10_000.0, y0)  # 2 s of travel at the simulated stage's top speed
        assert engine.emergency_stop() == []  # every device confirmed
        halted_at = stage.position()
        assert stage.driver.busy() == 0  # type: ignore[attr-defined]  # nothing moves any more ...
        assert x0 <= halted_at[0] < x0 + 10_000.0  # ... and it stopped short of the target
        time.sleep(0.3)
        assert stage.position() == halted_at


class _WireWatch(logging.Handler):
    """Bytes the simulated bench received on one device's wire (its endpoint's debug log)."""

    def __init__(self, endpoint: str) -> None:
        super().__init__(logging.DEBUG)
        self.prefix, self.received, self.changed = f"{endpoint}: -> ", [], threading.Event()

    def emit(self, entry: logging.LogRecord) -> None:
        text = entry.getMessage()
        if text.startswith(self.prefix):
            self.received.append(text[len(self.prefix):])
            self.changed.set()

    def wait_for(self, text: str, wall_s: float = 60.0) -> int:
        """The index of the first received chunk containing `text` (waits for it)."""
        _wait_for(lambda: any(text in r for r in self.received), wall_s)
        return next(i for i, r in enumerate(self.received) if text in r)


@contextlib.contextmanager
def _watching(endpoint: str) -> Iterator[_WireWatch]:
    watch, wire = _WireWatch(endpoint), logging.getLogger("hardware_sim.wire")
    level = wire.level
    wire.addHandler(watch)
    wire.setLevel(logging.DEBUG)
    try:
        yield watch
    finally:
        wire.removeHandler(watch)
        wire.setLevel(level)


@POSIX
@pytest.mark.parametrize("sig", ["SIGTERM", "SIGINT"])
def test_a_signal_while_connecting_is_recorded_and_leaves_the_bench_safe(
        tmp_path: Path, sig: str) -> None:
    """A signal during engine.connect() (the LED hears but never answers: connect waits on
    it) used to kill the process (SIGTERM's default) before anything was recorded. Now: the
    run recorded as aborted, every device sent its off, exit 1, no traceback."""
    with simulated_bench(tmp_path, SPEED) as (bench, bench_file), _watching("led") as led:
        document = yaml.safe_load(bench_file.read_text())
        document["devices"]["led"]["timeout"] = "5 s"  # connect waits 5 s per try on it
        bench_file.write_text(yaml.safe_dump(document, sort_keys=False))
        bench.endpoint_of("led").faults.arm("lockup", 1)
        child = _start_run(tmp_path, bench_file)
        try:
            asked = led.wait_for("XMODEL")  # the child is connecting the LED, and waits
            child.send_signal(getattr(signal, sig))
            out, err = child.communicate(timeout=60)
        finally:
            child.kill()
        devices = _sim(bench)["devices"]
        assert any("CSF" in r for r in led.received[asked + 1:])  # its off went out after
    assert child.returncode == 1, err
    assert b"Traceback" not in err
    cause = "the operator (Ctrl-C)" if sig == "SIGINT" else sig
    reason = f"interrupted by {cause} while connecting to the bench"
    assert reason.encode() in out
    info, events = _run_events(tmp_path)
    assert info["status"] == "aborted" and info["reason"] == reason
    assert [e["event"] for e in events if e["event"] in ("interrupted", "safe_stop")] == [
        "interrupted", "safe_stop"]
    (stop,) = [e for e in events if e["event"] == "safe_stop"]
    assert "buffer_pump" in stop["confirmed"] and "led" not in stop["confirmed"]
    assert pumps_running(devices) == [] and lights_on(devices) == []
