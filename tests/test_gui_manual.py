"""Manual controls in sync and on the record: the exposure box shows the camera's actual
exposure, every manual action appears in the event log, and an action beyond the chip's
pressure limit or the syringe's contents is refused before anything is sent."""

from __future__ import annotations

import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

from pathlib import Path
from typing import Any

import pytest
from fakes import fake_engine
from PySide6.QtCore import QSettings, Qt

from gui.core import Manual, ManualRefused
from gui.main_window import MainWindow

pytestmark = pytest.mark.timeout(60)


@pytest.fixture
def window(qtbot: Any, tmp_path: Path) -> MainWindow:
    win = MainWindow(fake_engine(tmp_path / "runs"),
                     QSettings(str(tmp_path / "gui.ini"), QSettings.Format.IniFormat),
                     open_url=lambda url: None)
    win.ask_before_close = False
    qtbot.addWidget(win)
    win.show()
    return win


def manual_lines(window: MainWindow) -> list[str]:
    return [t.split("  ", 1)[1] for t in window.event_log.visible_texts() if "manual:" in t]


def test_the_exposure_box_shows_the_cameras_actual_exposure(window: MainWindow,
                                                            qtbot: Any) -> None:
    box = window.camera_boxes[0]
    assert box.exposure.value() == 10.0
    box.camera.exposure_ms = 300.0  # a run (or anything else) set it
    qtbot.waitUntil(lambda: box.exposure.value() == 300.0, timeout=5000)
    assert "camera exposure 300 ms" in box.actual.full_text()
    box.exposure.setValue(25.0)  # the operator types a new value: the box keeps it ...
    qtbot.wait(1500)
    assert box.exposure.value() == 25.0
    assert "camera exposure 300 ms (typed value not set yet)" in box.actual.full_text()
    qtbot.mouseClick(box.exposure_button, Qt.MouseButton.LeftButton)  # ... until Set
    qtbot.waitUntil(lambda: box.camera.exposure_ms == 25.0, timeout=5000)
    qtbot.waitUntil(lambda: box.actual.full_text() == "camera exposure 25 ms", timeout=5000)


def test_manual_actions_appear_in_the_event_log(window: MainWindow, qtbot: Any) -> None:
    pump = window.pumps_panel.boxes["sample_pump"]
    pump.rate.setValue(4.0)
    pump.volume.setValue(6.0)
    qtbot.mouseClick(pump.infuse_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: window.engine.pumps()["sample_pump"].t0 is not None,
                    timeout=5000)
    qtbot.mouseClick(pump.stop_button, Qt.MouseButton.LeftButton)
    light = window.light_boxes[0]
    light.channel.setCurrentText("AF555")
    light.power.setValue(35)
    qtbot.mouseClick(light.on_button, Qt.MouseButton.LeftButton)
    qtbot.mouseClick(light.off_button, Qt.MouseButton.LeftButton)
    stage = window.stage_boxes[0]
    stage.x_spin.setValue(120.0)
    stage.y_spin.setValue(-40.0)
    go = next(b for b in stage.controls if b.text() == "Go to")
    qtbot.mouseClick(go, Qt.MouseButton.LeftButton)
    qtbot.mouseClick(window.camera_boxes[0].snap_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: len(manual_lines(window)) >= 6, timeout=5000)
    lines = manual_lines(window)
    assert lines[0] == ('manual: device="sample_pump", action="infuse", rate_ul_min=4.0, '
                        'volume_ul=6.0')
    assert 'manual: device="sample_pump", action="stop"' in lines
    assert ('manual: device="led", action="light", channel="AF555", power_pct=35.0'
            in lines)
    assert 'manual: device="led", action="dark"' in lines
    assert ('manual: device="stage", action="go to", x_um=120.0, y_um=-40.0' in lines)
    assert any(t.startswith('manual: device="camera", action="snap"') for t in lines)
    qtbot.waitUntil(lambda: window.engine.stages()["stage"].position() == (120.0, -40.0),
                    timeout=5000)


def test_a_manual_flow_beyond_the_chips_limit_or_the_syringe_is_refused(
        window: MainWindow, qtbot: Any) -> None:
    box = window.pumps_panel.boxes["sample_pump"]
    pump = window.engine.pumps()["sample_pump"]
    box.rate.setValue(10.0)
    box.volume.setValue(999.0)
    box.pump.syringe.contents_ul = 50.0
    qtbot.mouseClick(box.infuse_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: window.error_dialog is not None, timeout=5000)
    assert "more than the syringe holds (50.0 uL)" in window.error_dialog.text()
    assert pump.t0 is None, "nothing was sent"
    assert manual_lines(window) == [], "a refused action is not recorded as done"
    limit = window.engine.bench.chip.max_flow_ul_min()
    with pytest.raises(ManualRefused, match="pressure limit"):
        Manual(window.engine.bench, lambda r: None).check_pump(pump, "infuse", limit * 1.5,
                                                                None)
    with pytest.raises(ManualRefused, match="room for"):
        Manual(window.engine.bench, lambda r: None).check_pump(pump, "withdraw", 5.0, 980.0)


def test_autofocus_from_the_stage_panel_is_recorded_and_moves_the_focus(
        window: MainWindow, qtbot: Any) -> None:
    stage = window.stage_boxes[0]
    button = next(b for b in stage.controls if b.text() == "Autofocus")
    qtbot.mouseClick(button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: any('action="autofocus"' in t for t in manual_lines(window)),
                    timeout=5000)
    qtbot.waitUntil(lambda: window.engine.cameras()["camera"].snaps > 3, timeout=20000)
    qtbot.waitUntil(lambda: stage.position.full_text().startswith("x 0.0 um"), timeout=20000)
    assert window.error_dialog is None, window.error_dialog and window.error_dialog.text()
