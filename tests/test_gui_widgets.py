"""GUI pieces against small in-memory fakes: the bridge, frames, panels, log, history, dialogs."""

from __future__ import annotations

import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import json
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from fakes import fake_engine, spots_image
from PySide6.QtCore import QSettings, Qt, QUrl

from chipctl.devices.interfaces import Frame
from chipctl.protocol import parse_protocol
from chipctl.run.events import RunEvents
from chipctl.vision import count_frame
from gui.bridge import DeviceCalls, EmergencyStopper, RunBridge
from gui.counts_plot import Series
from gui.dialogs import ParametersDialog
from gui.estop import guard
from gui.event_log import EventLog
from gui.frames import FrameSlot, bin_for_display
from gui.live_view import scale_bar_um
from gui.main_window import MainWindow

pytestmark = pytest.mark.timeout(60)

GOOD = """\
name: fake run
steps:
  - prime: {pump: buffer_pump, volume: 10 uL, rate: 100 uL/min}
  - image: {zones: [CD63], channels: [{channel: AF647, exposure: 10 ms}]}
  - sample: {pump: sample_pump, rate: 10 uL/min, volume: 20 uL}
  - image: {zones: [CD63], channels: [{channel: AF647, exposure: 10 ms}]}
"""
BAD = """\
name: broken
steps:
  - prime: {pump: buffer_pump, volume: 10 uL, rate: 100 uL/min}
  - flow: {pump: no_such_pump, rate: 5 uL/min, volume: 10 uL}
  - image: {zones: [CD64], channels: [AF647]}
"""


@pytest.fixture
def window(qtbot: Any, tmp_path: Path) -> MainWindow:
    engine = fake_engine(tmp_path / "runs")
    engine.connect()
    opened: list[QUrl] = []
    win = MainWindow(engine, QSettings(str(tmp_path / "gui.ini"), QSettings.Format.IniFormat),
                     open_url=opened.append)
    win.opened_urls = opened  # type: ignore[attr-defined]
    win.ask_before_close = False
    qtbot.addWidget(win)
    win.show()
    return win


def write(tmp_path: Path, name: str, text: str) -> str:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return str(path)


def test_bridge_delivers_worker_thread_events_on_the_qt_thread(qtbot: Any) -> None:
    bridge = RunBridge(FrameSlot())
    events = RunEvents()
    bridge.attach(events)
    seen: list[tuple[str, bool]] = []
    bridge.stateChanged.connect(
        lambda state, _reason: seen.append((state, threading.current_thread()
                                            is threading.main_thread())))
    worker = threading.Thread(target=lambda: events.state_changed.emit("running", "started"))
    with qtbot.waitSignal(bridge.stateChanged, timeout=2000):
        worker.start()
    assert seen == [("running", True)]
    bridge.detach()
    events.state_changed.emit("paused", "")
    qtbot.wait(50)
    assert seen == [("running", True)]


def test_frame_slot_keeps_only_the_newest_frame_per_channel() -> None:
    slot = FrameSlot()
    for index, channel in enumerate(["AF488", "AF647", "AF488"]):
        slot.put(Frame(np.full((4, 4), index, np.uint16), {"channel": channel}))
    seq, frame = slot.latest()
    assert (seq, int(frame.image[0, 0])) == (3, 2)
    assert int(slot.latest("AF647")[1].image[0, 0]) == 1
    assert slot.latest("AF555") is None
    assert slot.wait_newer(3, "", 0.05) is None


def test_device_call_errors_come_back_as_messages(qtbot: Any) -> None:
    calls = DeviceCalls()

    def fail() -> None:
        raise TimeoutError("sample_pump: no reply within 1 s")

    with qtbot.waitSignal(calls.failed, timeout=2000) as blocker:
        calls.submit("sample_pump status", fail)
    assert blocker.args == ["sample_pump status", "TimeoutError: sample_pump: no reply within 1 s"]
    calls.shutdown()


def test_emergency_stopper_does_not_wait_for_a_busy_qt_thread(qtbot: Any) -> None:
    stopped = threading.Event()
    stopper = EmergencyStopper(lambda: (stopped.set(), [])[1])
    stopper.trigger()
    # the Qt thread is busy (no event processing) and the stop happens all the same
    assert stopped.wait(2.0)


def test_series_averages_the_fields_of_one_pass() -> None:
    series = Series()
    series.add(1, 0, 1.0, 10)
    series.add(1, 1, 1.2, 20)
    series.add(3, 0, 5.0, 40)
    series.add(4, 0, 6.0, 50)  # a monitor step: the same field again and again
    series.add(4, 0, 7.0, 70)
    assert series.counts == [15, 40, 50, 70]
    assert series.times_min == pytest.approx([1.1, 5.0, 6.0, 7.0])


def test_scale_bar_is_a_round_fifth_of_the_field() -> None:
    assert scale_bar_um(2048 * 0.65) == 200
    assert scale_bar_um(256 * 0.65) == 20
    assert scale_bar_um(3) == 1


def test_event_log_filters_by_text_and_errors(qtbot: Any) -> None:
    log = EventLog()
    qtbot.addWidget(log)
    log.add({"event": "pump_start", "pump": "sample_pump"})
    log.add({"event": "pump_start", "pump": "buffer_pump"})
    log.add_error("stage", "StageFault: limit reached")
    log.filter.setText("sample")
    assert [t.split("  ", 1)[1] for t in log.visible_texts()] == [
        'pump_start: pump="sample_pump"']
    log.filter.setText("")
    log.kind.setCurrentIndex(1)
    assert len(log.visible_texts()) == 1 and "limit reached" in log.visible_texts()[0]


def test_parameters_dialog_prefills_defaults(qtbot: Any) -> None:
    text = GOOD + ("parameters:\n  sample_id: {default: S-001}\n"
                   "  operator: {description: who runs it}\n  dilution: {default: ''}\n")
    dialog = ParametersDialog(parse_protocol(text, "p.yaml"))
    qtbot.addWidget(dialog)
    assert not dialog.ok_button.isEnabled(), "operator is required"
    dialog.edits["operator"].setText(" ana ")
    assert dialog.ok_button.isEnabled()
    assert dialog.values() == {"sample_id": "S-001", "operator": "ana"}


def test_bad_protocol_lists_problems_with_lines_and_cannot_start(
        window: MainWindow, tmp_path: Path) -> None:
    panel = window.protocol_panel
    assert panel.open_file(write(tmp_path, "bad.yaml", BAD)) is False
    texts = [panel.problem_list.item(i).text() for i in range(panel.problem_list.count())]
    assert any(t.startswith("line 4:") and "no_such_pump" in t for t in texts), texts
    assert any(t.startswith("line 5:") and "CD64" in t for t in texts), texts
    assert not panel.run_button.isEnabled()
    assert panel.start_run() is False and window.session.runner is None


def test_run_on_fakes_counts_and_records(window: MainWindow, qtbot: Any, tmp_path: Path) -> None:
    panel = window.protocol_panel
    assert panel.open_file(write(tmp_path, "good.yaml", GOOD)), panel.problems
    assert "4 steps" in panel.dry_run.text()
    qtbot.wait(1000)  # the engine's clock runs (200 s of protocol time) before the run starts
    panel.run_button.click()
    qtbot.waitUntil(lambda: panel.state == "completed", timeout=20000)
    series = window.counts_plot.series[("CD63", "AF647")]
    counts = series.counts
    assert len(counts) == 2 and counts[1] > counts[0]
    # plotted against the time since the run started, not since the engine was made
    assert 0 <= series.times_min[0] < window.session.started_s / 60
    assert panel.progress.value() == 4
    assert window.history.table.rowCount() == 1
    assert window.settings.value("last_protocol") == str(tmp_path / "good.yaml")
    window.history.open_report(0)
    qtbot.waitUntil(lambda: bool(window.opened_urls), timeout=10000)
    report = Path(window.opened_urls[-1].toLocalFile())
    assert report.name == "report.html" and report.parent == window.session.folder
    assert "CD63" in report.read_text(encoding="utf-8")


def test_manual_pump_fault_is_shown(window: MainWindow, qtbot: Any) -> None:
    box = window.pumps_panel.boxes["sample_pump"]
    box.pump.fault = RuntimeError("sample_pump: stalled")  # type: ignore[attr-defined]
    box.poll()
    qtbot.waitUntil(lambda: window.error_dialog is not None, timeout=3000)
    assert "stalled" in window.alarm.text()
    assert any("stalled" in text for text in window.event_log.visible_texts())


def test_live_view_marks_spots_of_the_shown_frame(window: MainWindow, qtbot: Any) -> None:
    view = window.live_view
    view.spots_box.setChecked(True)
    image = spots_image(12, size=128, seed=3)
    window.frames.put(Frame(image, {"channel": "AF647"}))
    qtbot.waitUntil(lambda: view.shown is not None and view.shown.spots is not None,
                    timeout=5000)
    expected = count_frame(image)
    assert expected.count >= 10
    marked = np.sort(np.column_stack([view.spots.data["x"], view.spots.data["y"]]) - 0.5, axis=0)
    assert np.allclose(marked, np.sort(expected.xy, axis=0))
    assert f"{expected.count} spots marked" in view.caption.text()
    assert "AF647" in view.caption.text()


def test_window_remembers_layout_and_protocol(qtbot: Any, tmp_path: Path) -> None:
    path = write(tmp_path, "good.yaml", GOOD)
    ini = str(tmp_path / "gui.ini")
    first = MainWindow(fake_engine(tmp_path / "runs"), QSettings(ini, QSettings.Format.IniFormat))
    qtbot.addWidget(first)
    first.protocol_panel.open_file(path)
    first.addDockWidget(Qt.DockWidgetArea.LeftDockWidgetArea, first.docks["Counts"])
    first.docks["Event log"].hide()
    first.close()
    second = MainWindow(fake_engine(tmp_path / "runs"), QSettings(ini, QSettings.Format.IniFormat))
    qtbot.addWidget(second)
    assert second.protocol_panel.protocol is not None
    assert second.protocol_panel.protocol.source == path
    assert second.dockWidgetArea(second.docks["Counts"]) == Qt.DockWidgetArea.LeftDockWidgetArea
    assert second.docks["Event log"].isHidden() and not second.docks["Run history"].isHidden()
    second.close()


def test_emergency_stop_key_stops_fake_pumps(window: MainWindow, qtbot: Any) -> None:
    pumps = window.engine.pumps()
    for pump in pumps.values():
        pump.infuse(10.0)
    qtbot.keyClick(window, Qt.Key.Key_F12)
    deadline = time.monotonic() + 3
    while time.monotonic() < deadline and any(p.is_running() for p in pumps.values()):
        qtbot.wait(20)
    assert not any(p.is_running() for p in pumps.values())
    assert window.stopper.pressed == 1


def test_stage_jog_buttons_move_along_their_axis(window: MainWindow, qtbot: Any) -> None:
    box = window.stage_boxes[0]
    box.jog.setCurrentText("100")
    buttons = {b.text(): b for b in box.controls}
    for arrow, expected in (("→", (100.0, 0.0)), ("↓", (100.0, 100.0)),
                            ("←", (0.0, 100.0)), ("↑", (0.0, 0.0))):
        qtbot.mouseClick(buttons[arrow], Qt.MouseButton.LeftButton)
        qtbot.waitUntil(lambda e=expected: box.stage.position() == e, timeout=3000)


def test_bin_for_display_averages_blocks_and_keeps_small_frames() -> None:
    image = np.arange(16, dtype=np.uint16).reshape(4, 4)
    binned, n = bin_for_display(image, max_side=2)
    assert n == 2 and binned.dtype == np.uint16
    assert binned.tolist() == [[2, 4], [10, 12]]  # block means, floored
    same, one = bin_for_display(image, max_side=4)
    assert one == 1 and same is image


def test_a_run_cut_off_by_a_crash_is_reported_at_start(qtbot: Any, tmp_path: Path) -> None:
    folder = tmp_path / "runs" / "20260101-100000-capture"
    folder.mkdir(parents=True)
    (folder / "run.json").write_text(json.dumps(
        {"run_id": folder.name, "protocol": "capture", "status": "running",
         "started": "2026-01-01T10:00:00+00:00"}))
    (folder / "events.jsonl").write_text(json.dumps(
        {"event": "pump_start", "pump": "sample_pump", "direction": "infuse",
         "rate_ul_min": 5, "volume_ul": 25}) + "\n")
    win = MainWindow(fake_engine(tmp_path / "runs"),
                     QSettings(str(tmp_path / "gui.ini"), QSettings.Format.IniFormat))
    qtbot.addWidget(win)
    assert win.error_dialog is not None and "interrupted" in win.error_dialog.text()
    assert "what each syringe held" in win.error_dialog.text()
    assert win.history.table.item(0, 3).text() == "interrupted"
    win.close()


def test_operator_prompt_is_a_dialog_and_the_run_waits_for_it(
        window: MainWindow, qtbot: Any, tmp_path: Path) -> None:
    text = GOOD.replace("steps:\n", "steps:\n  - prompt: \"Load sample {sample}\"\n") + (
        "parameters:\n  sample: {default: S-7}\n")
    panel = window.protocol_panel
    assert panel.open_file(write(tmp_path, "prompt.yaml", text)), panel.problems
    window.protocol_panel.ask_parameters = lambda protocol: {"sample": "S-9"}
    panel.run_button.click()
    qtbot.waitUntil(lambda: window.prompt_dialog is not None, timeout=5000)
    assert "Load sample S-9" in window.prompt_dialog.text()
    qtbot.wait(300)
    assert panel.progress.value() == 0, "the run waits"
    assert panel.state == "waiting for the operator"  # its own state, not "running"
    assert "run waiting for the operator" in window.status.run.full_text()
    window.prompt_dialog.accept()
    qtbot.waitUntil(lambda: "run running" in window.status.run.full_text(), timeout=5000)
    qtbot.waitUntil(lambda: panel.state == "completed", timeout=20000)
    assert window.session.runner.state == "completed"


def test_camera_live_streams_into_the_view_until_stopped(window: MainWindow, qtbot: Any) -> None:
    box = window.camera_boxes[0]
    shown = window.live_view.frames_shown
    box.live_button.click()
    qtbot.waitUntil(lambda: window.live_view.frames_shown >= shown + 3, timeout=10000)
    box.live_button.click()
    qtbot.wait(200)
    snaps = box.camera.snaps
    qtbot.wait(300)
    assert box.camera.snaps <= snaps + 1, "live stopped"


def test_f12_stops_everything_even_from_a_dialog(window: MainWindow, qtbot: Any) -> None:
    window.show_error("A device failed", "stage: StageFault: limit")
    dialog = window.error_dialog
    assert dialog is not None and dialog.isVisible()
    pumps = window.engine.pumps()
    pumps["sample_pump"].infuse(5.0)
    window.light_boxes[0].light.light("AF647", 50)
    window.light_boxes[0].refresh()
    qtbot.waitUntil(lambda: window.light_boxes[0].status.text() == "AF647 on at 50 %",
                    timeout=3000)
    dialog.activateWindow()
    qtbot.waitUntil(dialog.isActiveWindow, timeout=2000)
    qtbot.keyClick(dialog, Qt.Key.Key_F12)
    qtbot.waitUntil(lambda: window.stopper.pressed == 1, timeout=2000)
    qtbot.waitUntil(lambda: not pumps["sample_pump"].is_running(), timeout=3000)
    # pumps and lights are stopped side by side (the safe stop's threads): either may be first
    qtbot.waitUntil(lambda: window.light_boxes[0].light.on == {}, timeout=3000)
    qtbot.waitUntil(lambda: window.light_boxes[0].status.text() == "off", timeout=3000)


def test_a_modal_dialog_keeps_the_emergency_stop_key(qtbot: Any) -> None:
    dialog = ParametersDialog(parse_protocol(GOOD + "parameters:\n  sample: {}\n", "p.yaml"))
    qtbot.addWidget(dialog)
    pressed: list[bool] = []
    guard(dialog, lambda: pressed.append(True))
    dialog.show()
    dialog.activateWindow()
    qtbot.waitUntil(dialog.isActiveWindow, timeout=2000)
    qtbot.keyClick(dialog.edits["sample"], Qt.Key.Key_F12)
    assert pressed == [True]
