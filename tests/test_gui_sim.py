"""The real window driven against the simulated bench (real sockets, real drivers, offscreen).

What the simulator says is read on its control channel (simulator.control in the bench file):
{"cmd": "status"} for every device model's state, {"cmd": "fault", ...} to inject a fault.
"""

from __future__ import annotations

import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from PySide6.QtCore import QSettings, Qt

from chipctl.config.bench import Bench, load_bench
from chipctl.devices.illuminator import ExposureLight
from chipctl.engine import Engine
from chipctl.runs import RunFolder
from chipctl.simlaunch import SimulatedBench
from gui.main_window import MainWindow
from hardware_sim.control import request

pytestmark = pytest.mark.timeout(60)
SPEED = 100.0
PUMPS = ("buffer_pump", "sample_pump", "stain_pump")

CAPTURE = """\
name: capture twice
steps:
  - prime: {pump: buffer_pump, volume: 10 uL, rate: 60 uL/min}
  - sample: {pump: sample_pump, rate: 10 uL/min, volume: 10 uL}
  - stain: {pump: stain_pump, rate: 10 uL/min, volume: 5 uL}
  - image: {zones: [CD63], channels: [{channel: AF555, exposure: 50 ms, power: 80 %}]}
  - sample: {pump: sample_pump, rate: 10 uL/min, volume: 40 uL}
  - stain: {pump: stain_pump, rate: 10 uL/min, volume: 5 uL}
  - image: {zones: [CD63], channels: [{channel: AF555, exposure: 50 ms, power: 80 %}]}
"""
LONG_SAMPLE = """\
name: long sample
steps:
  - sample: {pump: sample_pump, rate: 5 uL/min, volume: 150 uL}
"""
BROKEN = """\
name: broken
steps:
  - sample: {pump: sample_pump, rate: 5 uL/min, volume: 10 uL}
  - stain: {pump: no_such_pump, rate: 5 uL/min, volume: 5 uL}
  - image: {zones: [CD64], channels: [{channel: AF555, exposure: 50 ms}]}
  - flow: {pump: sample_pump, rate: 5 uL/min}
"""


def control(bench: Bench, payload: dict[str, Any]) -> dict[str, Any]:
    """One request on the simulator's control channel."""
    sim = bench.simulator or {}
    return request(str(sim["control"]), payload, timeout=20, token=str(sim["token"]))


def sim_pumps_running(bench: Bench) -> dict[str, bool]:
    """Whether each simulated pump's motor runs, from the simulator's own state."""
    devices = control(bench, {"cmd": "status"})["devices"]
    return {name: bool(devices[name]["running"]) for name in PUMPS}


def led_emission(bench: Bench) -> list[Any]:
    """What the simulated LED emits now ([] when dark)."""
    return list(control(bench, {"cmd": "status"})["devices"]["led"]["emission"])


@pytest.fixture(scope="module")
def sim() -> Iterator[SimulatedBench]:
    with SimulatedBench(speed=SPEED, seed=3) as running:
        yield running


@pytest.fixture
def window(sim: SimulatedBench, qtbot: Any, tmp_path: Path) -> Iterator[MainWindow]:
    engine = Engine(load_bench(sim.bench_path), runs_dir=tmp_path / "runs")
    engine.connect()
    win = MainWindow(engine, QSettings(str(tmp_path / "gui.ini"), QSettings.Format.IniFormat),
                     open_url=lambda url: None)
    win.ask_before_close = False
    qtbot.addWidget(win)
    win.show()
    yield win
    if win.session.active:
        win.session.abort("test over")
        win.session.runner.wait(10)
    win.close()
    engine.close()


def open_protocol(window: MainWindow, tmp_path: Path, name: str, text: str) -> bool:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return window.protocol_panel.open_file(str(path))


def test_run_pause_resume_and_counts_rise(window: MainWindow, qtbot: Any,
                                          tmp_path: Path) -> None:
    panel = window.protocol_panel
    assert open_protocol(window, tmp_path, "capture.yaml", CAPTURE), panel.problems
    assert "valid on this bench" in panel.verdict.text()
    assert "7 steps" in panel.dry_run.text() and "sample_pump: 50 uL" in panel.dry_run.text()
    assert panel.steps.topLevelItemCount() == 7
    qtbot.mouseClick(panel.run_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: panel.steps.topLevelItem(4).text(4) == "running", timeout=20000)
    qtbot.mouseClick(panel.pause_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: panel.state == "paused", timeout=10000)
    assert not sim_pumps_running(window.engine.bench)["sample_pump"], "pause holds the fluidics"
    assert panel.resume_button.isEnabled() and not panel.pause_button.isEnabled()
    qtbot.mouseClick(panel.resume_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: panel.state == "completed", timeout=40000)
    series = window.counts_plot.series
    qtbot.waitUntil(lambda: len(series[("CD63", "AF555")].counts) == 2,  # the last count may
                    timeout=10000)  # reach the window just after the state
    counts = series[("CD63", "AF555")].counts
    assert len(counts) == 2 and counts[1] > counts[0] > 0, counts
    curve = window.counts_plot.curves[("CD63", "AF555")]
    assert list(curve.yData) == counts
    assert panel.progress.value() == 7
    assert window.history.table.rowCount() == 1
    assert window.history.table.item(0, 3).text() == "completed"


def test_protocol_with_errors_shows_them_and_cannot_start(window: MainWindow,
                                                          tmp_path: Path) -> None:
    panel = window.protocol_panel
    assert not open_protocol(window, tmp_path, "broken.yaml", BROKEN)
    texts = [panel.problem_list.item(i).text() for i in range(panel.problem_list.count())]
    assert any(t.startswith("line 6:") and "volume or a duration" in t for t in texts), texts
    assert "cannot run" in panel.verdict.text()
    assert not panel.run_button.isEnabled()
    panel.run_button.click()
    assert panel.start_run() is False
    assert window.session.runner is None


def test_errors_found_by_the_bench_check_are_listed_with_lines(window: MainWindow,
                                                               tmp_path: Path) -> None:
    panel = window.protocol_panel
    fixable = BROKEN.replace("  - flow: {pump: sample_pump, rate: 5 uL/min}\n", "")
    assert not open_protocol(window, tmp_path, "unknown.yaml", fixable)
    texts = [panel.problem_list.item(i).text() for i in range(panel.problem_list.count())]
    assert any(t.startswith("line 4:") and "no_such_pump" in t for t in texts), texts
    assert any(t.startswith("line 5:") and "CD64" in t for t in texts), texts
    assert not panel.run_button.isEnabled() and window.session.runner is None


def test_emergency_stop_halts_every_simulated_pump(window: MainWindow, qtbot: Any,
                                                   tmp_path: Path) -> None:
    bench = window.engine.bench
    for name in ("buffer_pump", "stain_pump"):
        box = window.pumps_panel.boxes[name]
        box.rate.setValue(2.0)
        box.volume.setValue(0.0)  # until stopped
        qtbot.mouseClick(box.infuse_button, Qt.MouseButton.LeftButton)
    qtbot.mouseClick(window.light_boxes[0].on_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: led_emission(bench) != [], timeout=10000)
    qtbot.waitUntil(lambda: sim_pumps_running(bench)["buffer_pump"]
                    and sim_pumps_running(bench)["stain_pump"], timeout=15000)
    # manual flows and the light: the emergency stop halts them and the manual session says so
    qtbot.keyClick(window, Qt.Key.Key_F12)
    qtbot.waitUntil(lambda: not any(sim_pumps_running(bench).values()), timeout=5000)
    qtbot.waitUntil(lambda: led_emission(bench) == [], timeout=5000)

    def stops_recorded() -> int:
        events = RunFolder.open(window.engine.manual.folder).events
        return [e["event"] for e in events].count("emergency_stop")

    qtbot.waitUntil(lambda: stops_recorded() >= 1, timeout=10000)  # recorded after the halt
    qtbot.waitUntil(lambda: "reached every pump" in window.status.alarm.full_text(),
                    timeout=10000)
    assert stops_recorded() == 1
    # a run's pump: the run records its own emergency stop and is aborted
    assert open_protocol(window, tmp_path, "long.yaml", LONG_SAMPLE)
    window.protocol_panel.run_button.click()
    qtbot.waitUntil(lambda: sim_pumps_running(bench)["sample_pump"], timeout=15000)
    # during the run the indicators say what runs (the run's pump from its own events)
    qtbot.waitUntil(lambda: "sample_pump infusing at 5 uL/min" in window.status.pumps.full_text(),
                    timeout=10000)
    assert "every pump and light is off" not in window.status.bench.full_text()
    qtbot.keyClick(window, Qt.Key.Key_F12)
    qtbot.waitUntil(lambda: not any(sim_pumps_running(bench).values()), timeout=5000)
    qtbot.waitUntil(lambda: window.protocol_panel.state == "aborted", timeout=10000)
    status = window.status
    qtbot.waitUntil(lambda: "every pump and light is off" in status.bench.full_text(),
                    timeout=10000)
    assert led_emission(bench) == []
    assert not any(sim_pumps_running(bench).values())
    assert status.latch.latched and "EMERGENCY STOP" in status.alarm.full_text()
    # A pump started after the stop: the indicators say so at once, the alarm stays latched.
    box = window.pumps_panel.boxes["sample_pump"]
    box.rate.setValue(2.0)
    box.volume.setValue(0.0)
    qtbot.mouseClick(box.infuse_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: "sample_pump infusing" in status.pumps.full_text()
                    or "sample_pump running" in status.pumps.full_text(), timeout=10000)
    assert sim_pumps_running(bench)["sample_pump"]
    assert "every pump and light is off" not in status.bench.full_text()
    assert status.latch.latched, "an alarm stays until acknowledged"
    qtbot.mouseClick(status.ack_button, Qt.MouseButton.LeftButton)
    assert "acknowledged" in status.alarm.full_text() and not status.ack_button.isVisible()
    qtbot.mouseClick(box.stop_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: status.alarm.full_text() == "", timeout=10000)  # the next change
    assert "every pump and light is off" in status.bench.full_text()


def test_device_fault_during_a_run_is_shown(window: MainWindow, qtbot: Any,
                                            tmp_path: Path) -> None:
    bench = window.engine.bench
    assert open_protocol(window, tmp_path, "long.yaml", LONG_SAMPLE)
    window.protocol_panel.run_button.click()
    qtbot.waitUntil(lambda: sim_pumps_running(bench)["sample_pump"], timeout=15000)
    reply = control(bench, {"cmd": "fault", "device": "sample_pump", "fault": "stall"})
    assert reply["ok"], reply
    qtbot.waitUntil(lambda: window.protocol_panel.state == "failed", timeout=15000)
    assert window.error_dialog is not None and window.error_dialog.isVisible()
    assert "stall" in window.error_dialog.text().lower()
    assert "stall" in window.alarm.text().lower()
    assert any("failed" in t for t in window.event_log.visible_texts())


def test_frames_streamed_during_a_run_reach_the_screen_counted(
        window: MainWindow, qtbot: Any, tmp_path: Path) -> None:
    """During a run, frames published the way a run publishes them (from a worker thread)
    reach the screen with their spots, and the run goes on. How smoothly the event loop turns
    meanwhile is measured by benchmarks/live_stream.py (a figure, not a test)."""
    frame = window.engine.camera().snap()  # a real 2048 x 2048 simulator frame
    assert open_protocol(window, tmp_path, "long.yaml", LONG_SAMPLE)
    window.live_view.spots_box.setChecked(True)  # every shown frame is counted too
    window.protocol_panel.run_button.click()
    qtbot.waitUntil(lambda: window.protocol_panel.state == "running", timeout=10000)
    events = window.bridge.events
    assert events is not None
    received, shown = window.frames.received, window.live_view.frames_shown

    def stream() -> None:  # the run's frame signal, fired from a worker thread
        for _ in range(20):
            events.frame.emit(frame)
            time.sleep(0.05)

    streamer = threading.Thread(target=stream, daemon=True)
    streamer.start()
    qtbot.waitUntil(lambda: not streamer.is_alive(), timeout=30000)
    assert window.frames.received - received == 20
    qtbot.waitUntil(lambda: window.live_view.frames_shown > shown, timeout=20000)
    qtbot.waitUntil(lambda: window.live_view.shown is not None
                    and window.live_view.shown.spots is not None, timeout=20000)
    assert window.protocol_panel.state == "running", "the run went on while frames streamed"


def test_manual_microscope_control_from_the_panels(window: MainWindow, qtbot: Any) -> None:
    light, stage, camera = window.light_boxes[0], window.stage_boxes[0], window.camera_boxes[0]
    light.channel.setCurrentText("AF555")
    qtbot.mouseClick(light.on_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: led_emission(window.engine.bench) != [], timeout=10000)
    stage.zone.setCurrentText("CD81")
    qtbot.mouseClick(stage.controls[[b.text() for b in stage.controls].index("Go to zone")],
                     Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: stage.position.text().startswith("x 3000.0 um, y 0.0 um"),
                    timeout=15000)
    camera.light.setCurrentText("as it is")  # the snap takes the light the panel left on
    qtbot.mouseClick(camera.snap_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: "zone CD81" in window.live_view.caption.text(), timeout=15000)
    assert "AF555" in window.live_view.caption.text()
    qtbot.mouseClick(light.off_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: led_emission(window.engine.bench) == [], timeout=10000)


def test_live_lights_the_sample_only_while_the_camera_exposes(window: MainWindow,
                                                              qtbot: Any) -> None:
    """Live takes its frames by the run's path: the channel armed for the camera's trigger, so
    the simulated LED lights each exposure and never emits between frames; dark after."""
    camera = window.camera_boxes[0]
    camera.light.setCurrentText("AF555 (led)")
    assert camera.exposure_light() == ExposureLight("led", "AF555", 50.0)
    camera.light_power.setValue(60)
    frames: dict[int, Any] = {}
    emitting: list[list[Any]] = []

    def watch() -> bool:
        latest = window.frames.latest()
        if latest is not None:
            frames.setdefault(latest[0], latest[1])
        emitting.append(led_emission(window.engine.bench))
        return len(frames) >= 4

    camera.live_button.setChecked(True)
    qtbot.waitUntil(watch, timeout=30000)
    status = window.status
    qtbot.waitUntil(lambda: watch() and "AF555 60 % while the camera exposes"
                    in status.light.full_text(), timeout=10000)  # read once a second
    assert "every pump and light is off" not in status.bench.full_text()
    camera.live_button.setChecked(False)
    qtbot.waitUntil(lambda: not camera.live._thread.is_alive(), timeout=10000)
    qtbot.waitUntil(lambda: status.light.full_text() == "light off", timeout=10000)
    lights = [[(li["dye"], li["power_pct"], li["triggered"]) for li in frame.metadata["led"]]
              for frame in frames.values()]
    assert lights == [[("AF555", 60.0, True)]] * len(frames)
    assert len(emitting) >= 4 and all(e == [] for e in emitting), emitting
    after = window.engine.manual.snap(camera.name)  # the light as Live left it
    assert after.metadata["led"] == []
