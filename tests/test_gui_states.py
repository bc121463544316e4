"""States that are true: the status bar follows the devices, an alarm is latched until
acknowledged and then cleared by the next state change, "waiting for the operator" is its own
state, and the light state is visible whichever tab is shown."""

from __future__ import annotations

import os
import threading

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

from pathlib import Path
from typing import Any

import pytest
from fakes import fake_engine
from PySide6.QtCore import QSettings, Qt

from gui.bench_state import (
    BenchPoller,
    BenchSnapshot,
    PumpState,
    follow_run_event,
    read_bench,
)
from gui.core import devices_of
from gui.main_window import MainWindow
from gui.status import AlarmLatch, describe_bench, describe_light

pytestmark = pytest.mark.timeout(60)


@pytest.fixture
def window(qtbot: Any, tmp_path: Path) -> MainWindow:
    engine = fake_engine(tmp_path / "runs")
    win = MainWindow(engine, QSettings(str(tmp_path / "gui.ini"), QSettings.Format.IniFormat),
                     open_url=lambda url: None)
    win.ask_before_close = False
    qtbot.addWidget(win)
    win.show()
    return win


def test_alarm_latch_holds_until_acknowledged_then_clears_on_the_next_change() -> None:
    latch = AlarmLatch()
    assert not latch.state_changed() and latch.text() == ""
    latch.raise_alarm("EMERGENCY STOP")
    assert latch.latched
    assert not latch.state_changed() and latch.latched, "a change alone does not clear it"
    latch.acknowledge()
    assert not latch.latched and latch.text().startswith("acknowledged:")
    assert latch.state_changed() and latch.text() == ""
    latch.raise_alarm("pump stalled")
    latch.raise_alarm("run failed")
    assert latch.latched and "(+1 more)" in latch.text()


def test_all_off_only_when_every_pump_and_light_was_read_and_is_off() -> None:
    off = BenchSnapshot(pumps={"p": PumpState(False)}, lights={"led": {"AF647": (False, 0.0)}})
    assert off.all_off() and describe_bench(off) == "every pump and light is off"
    lit = BenchSnapshot(pumps=off.pumps, lights={"led": {"AF647": (True, 40.0)}})
    assert not lit.all_off()
    armed = BenchSnapshot(pumps=off.pumps, lights=off.lights, armed={"led": {"AF647": 40.0}})
    assert not armed.all_off() and describe_bench(armed) == "bench active"
    assert describe_light(armed) == "light AF647 40 % while the camera exposes"
    unread = BenchSnapshot(pumps=off.pumps, lights=off.lights, errors={"p": "timeout"})
    assert not unread.all_off() and "not answering: p" in describe_bench(unread)
    running = follow_run_event(off, {"event": "pump_start", "pump": "p", "direction": "infuse",
                                     "rate_ul_min": 5})
    assert running is not None and running.pumps_running() == ["p"]
    held = follow_run_event(running, {"event": "pump_hold", "pump": "p", "delivered_ul": 2.5})
    assert held is not None and held.all_off() and held.pumps["p"].dispensed_ul == 2.5
    assert follow_run_event(off, {"event": "step_started"}) is None


def test_status_bar_follows_the_devices_whoever_changes_them(window: MainWindow,
                                                              qtbot: Any) -> None:
    status = window.status
    qtbot.waitUntil(lambda: "every pump and light is off" in status.bench.full_text(),
                    timeout=5000)
    engine = window.engine
    engine.illuminators()["led"].light("AF555", 70)  # behind the window's back
    engine.pumps()["sample_pump"].infuse(12.0)
    qtbot.waitUntil(lambda: "light AF555 70 %" in status.light.full_text(), timeout=5000)
    qtbot.waitUntil(lambda: "sample_pump running" in status.pumps.full_text(), timeout=5000)
    assert "every pump and light is off" not in status.bench.full_text()
    engine.illuminators()["led"].dark()
    engine.pumps()["sample_pump"].stop()
    qtbot.waitUntil(lambda: "every pump and light is off" in status.bench.full_text(),
                    timeout=5000)
    assert status.light.full_text() == "light off"


def test_light_state_is_visible_from_every_tab(window: MainWindow, qtbot: Any) -> None:
    window.engine.illuminators()["led"].light("AF647", 40)
    qtbot.waitUntil(lambda: "AF647 40 %" in window.status.light.full_text(), timeout=5000)
    for tab in range(window.devices.count()):
        window.devices.setCurrentIndex(tab)
        for dock in ("Devices", "Frames", "Chip map"):
            window.docks[dock].raise_()
            qtbot.wait(20)
            assert window.status.light.isVisible() and window.status.light.visibleRegion()
    window.engine.illuminators()["led"].dark()


def test_emergency_stop_alarm_is_latched_until_acknowledged(window: MainWindow,
                                                             qtbot: Any) -> None:
    status = window.status
    pumps = window.engine.pumps()
    pumps["sample_pump"].infuse(5.0)
    qtbot.waitUntil(lambda: "sample_pump running" in status.pumps.full_text(), timeout=5000)
    qtbot.keyClick(window, Qt.Key.Key_F12)
    qtbot.waitUntil(lambda: "reached every pump" in status.alarm.full_text(), timeout=5000)
    qtbot.waitUntil(lambda: "every pump and light is off" in status.bench.full_text(),
                    timeout=5000)
    assert status.latch.latched and status.ack_button.isVisible()
    qtbot.wait(1500)  # polls that find nothing new leave the alarm alone
    assert status.latch.latched
    qtbot.mouseClick(status.ack_button, Qt.MouseButton.LeftButton)
    assert "acknowledged" in status.alarm.full_text()
    pumps["buffer_pump"].infuse(3.0)  # the next change clears it
    qtbot.waitUntil(lambda: status.alarm.full_text() == "", timeout=5000)
    assert "buffer_pump running" in status.pumps.full_text()
    pumps["buffer_pump"].stop()


def test_a_device_that_stops_answering_is_an_alarm_and_never_reads_as_off(
        window: MainWindow, qtbot: Any) -> None:
    pump = window.engine.pumps()["sample_pump"]
    qtbot.waitUntil(lambda: "every pump and light is off" in window.status.bench.full_text(),
                    timeout=5000)
    pump.fault = TimeoutError("sample_pump: no reply within 1 s")
    qtbot.waitUntil(lambda: "not answering: sample_pump" in window.status.bench.full_text(),
                    timeout=5000)
    assert window.status.latch.latched and "no reply" in window.status.alarm.full_text()
    assert "not answering" in window.pumps_panel.boxes["sample_pump"].status.full_text()


def test_read_bench_reads_every_device_kind(window: MainWindow) -> None:
    snapshot = read_bench(devices_of(window.engine), read_pumps=True)
    assert set(snapshot.pumps) == {"buffer_pump", "sample_pump"}
    assert set(snapshot.lights) == {"led"} and set(snapshot.stages) == {"stage"}
    assert snapshot.exposure_ms == {"camera": 10.0}
    during_run = read_bench(devices_of(window.engine), read_pumps=False, previous=snapshot)
    assert during_run.pumps == snapshot.pumps, "pumps are followed from the run's events"


class SlowPump:
    """A pump whose state read waits until released (a poll still in flight)."""

    def __init__(self) -> None:
        self.release = threading.Event()

    def is_running(self) -> bool:
        self.release.wait(10)
        return False  # what it was when the read began: not yet started

    def displaced_ul(self) -> float:
        return 0.0


class SlowBench:
    def __init__(self) -> None:
        self.pumps = {"sample_pump": SlowPump()}
        self.illuminators: dict[str, Any] = {}
        self.stages: dict[str, Any] = {}
        self.cameras: dict[str, Any] = {}


def test_a_read_begun_before_a_run_never_overwrites_the_runs_pump_state(qtbot: Any) -> None:
    bench = SlowBench()
    running = {"run": False}
    poller = BenchPoller(bench, lambda: running["run"], interval_ms=60_000)
    poller.poll()  # idle: this read asks the pumps themselves ...
    running["run"] = True  # ... and a run starts its pump while the read is in flight
    poller.run_event({"event": "pump_start", "pump": "sample_pump", "direction": "infuse",
                      "rate_ul_min": 5.0})
    bench.pumps["sample_pump"].release.set()
    qtbot.waitUntil(lambda: poller.reads == 1, timeout=5000)
    state = poller.snapshot.pumps["sample_pump"]
    assert (state.running, state.rate_ul_min, state.source) == (True, 5.0, "run")
    poller.close()
