"""Manual controls in sync and on the record: the exposure box shows the camera's actual
exposure; every button goes through the engine's manual session (chipctl.manual), so a click
is written to the manual-session record (read back with chipctl.runs, listed as kind manual)
and shown in the event log; an action beyond the chip's pressure limit, the syringe's contents
or the stage's travel is refused with the core's message, nothing is sent and it is not
recorded as done."""

from __future__ import annotations

import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import copy
from pathlib import Path
from typing import Any

import pytest
from fakes import GUI_BENCH, fake_engine
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QPushButton

from chipctl.runs import RunFolder, RunIndex
from gui.main_window import MainWindow
from tests.gui_support import open_window

pytestmark = pytest.mark.timeout(60)


TRAVEL_BENCH = copy.deepcopy(GUI_BENCH)
TRAVEL_BENCH["devices"]["stage"]["travel"] = {"x": ["-1 mm", "1 mm"], "y": ["-1 mm", "1 mm"],
                                              "z": ["0 um", "900 um"]}


@pytest.fixture
def window(qtbot: Any, tmp_path: Path) -> MainWindow:
    return open_window(qtbot, tmp_path, fake_engine(tmp_path / "runs", TRAVEL_BENCH))


def manual_lines(window: MainWindow) -> list[str]:
    return [t.split("  ", 1)[1] for t in window.event_log.visible_texts() if "manual:" in t]


def recorded(window: MainWindow, kind: str = "manual") -> list[dict[str, Any]]:
    """The manual-session record's events of one kind, read back from its folder."""
    folder = window.engine.manual.folder
    if folder is None:
        return []
    return [e for e in RunFolder.open(folder).events if e["event"] == kind]


def done(window: MainWindow) -> list[tuple[str, str]]:
    return [(e["device"], e["action"]) for e in recorded(window)]


def button(box: Any, text: str) -> QPushButton:
    return next(b for b in box.findChildren(QPushButton) if b.text() == text)


def click(qtbot: Any, widget: QPushButton) -> None:
    qtbot.mouseClick(widget, Qt.MouseButton.LeftButton)


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


def test_every_manual_button_writes_the_manual_session_record(window: MainWindow,
                                                              qtbot: Any) -> None:
    def recorded_as(n: int) -> None:  # one action at a time: the device pool has 4 threads
        qtbot.waitUntil(lambda: len(done(window)) == n, timeout=5000)

    pump = window.pumps_panel.boxes["sample_pump"]
    pump.rate.setValue(4.0)
    pump.volume.setValue(6.0)
    click(qtbot, pump.infuse_button)
    qtbot.waitUntil(lambda: window.engine.pumps()["sample_pump"].t0 is not None, timeout=5000)
    click(qtbot, pump.stop_button)
    recorded_as(2)
    light = window.light_boxes[0]
    light.channel.setCurrentText("AF555")
    light.power.setValue(35)
    click(qtbot, light.on_button)
    recorded_as(3)
    click(qtbot, light.off_button)
    recorded_as(4)
    stage = window.stage_boxes[0]
    stage.x_spin.setValue(120.0)
    stage.y_spin.setValue(-40.0)
    click(qtbot, button(stage, "Go to"))
    qtbot.waitUntil(lambda: stage.position.full_text().startswith("x 120.0 um"), timeout=5000)
    stage.jog.setCurrentText("10")
    click(qtbot, button(stage, "→"))
    qtbot.waitUntil(lambda: stage.position.full_text().startswith("x 130.0 um"), timeout=5000)
    camera = window.camera_boxes[0]
    click(qtbot, camera.snap_button)
    recorded_as(7)
    camera.exposure.setValue(25.0)
    click(qtbot, camera.exposure_button)
    recorded_as(8)
    assert done(window) == [("sample_pump", "infuse"), ("sample_pump", "stop"),
                            ("led", "light"), ("led", "dark"), ("stage", "move to"),
                            ("stage", "move to"), ("camera", "snap"), ("camera", "exposure")]
    infuse, *_ = recorded(window)
    assert (infuse["rate_ul_min"], infuse["volume_ul"]) == (4.0, 6.0)
    assert [(e["x_um"], e["y_um"]) for e in recorded(window)[4:6]] == [(120.0, -40.0),
                                                                      (130.0, -40.0)]
    assert recorded(window)[7]["exposure_ms"] == 25.0
    assert recorded(window, "pump_start"), "the flow is booked like a run's"
    assert recorded(window, "manual_refused") == []
    index = RunIndex(window.engine.runs_dir)
    assert index.refresh() == [], "an open session is not taken for an interrupted one"
    assert [(r["kind"], r["folder"], r["status"]) for r in index.list()] == [
        ("manual", str(window.engine.manual.folder), "running")]
    qtbot.waitUntil(lambda: len(manual_lines(window)) >= 8, timeout=5000)
    assert any(t.startswith("manual: t_s=") and t.endswith(
        'device="sample_pump", action="infuse", rate_ul_min=4.0, volume_ul=6.0')
        for t in manual_lines(window))
    assert window.error_dialog is None, window.error_dialog and window.error_dialog.text()


def refused_with(window: MainWindow, qtbot: Any, message: str) -> None:
    qtbot.waitUntil(lambda: window.error_dialog is not None
                    and message in window.error_dialog.text(), timeout=5000)
    assert f"refused: {message}" in window.error_dialog.text()
    qtbot.waitUntil(lambda: any(message in e["reason"]
                                for e in recorded(window, "manual_refused")), timeout=5000)


def test_a_manual_flow_beyond_the_syringe_or_the_chips_limit_is_refused_by_the_core(
        window: MainWindow, qtbot: Any) -> None:
    box = window.pumps_panel.boxes["sample_pump"]
    pump = window.engine.pumps()["sample_pump"]
    pump.syringe.contents_ul = 50.0
    box.rate.setValue(10.0)
    box.volume.setValue(999.0)
    click(qtbot, box.infuse_button)
    refused_with(window, qtbot, "999 uL is more than the syringe on sample_pump holds (50.0 uL)")
    window.error_dialog.done(0)
    window.error_dialog = None
    limit = window.engine.bench.chip.max_flow_ul_min()
    box.rate.setValue(limit * 1.5)
    box.volume.setValue(5.0)
    click(qtbot, box.infuse_button)
    refused_with(window, qtbot, f"over-pressure: sample_pump at {limit * 1.5:g} uL/min would "
                                "drive an estimated")
    assert pump.commands == [], "nothing was sent"
    assert done(window) == [], "a refused action is not recorded as done"
    assert len(recorded(window, "manual_refused")) == 2


def test_end_of_travel_is_refused_for_the_syringe_and_the_stage(window: MainWindow,
                                                               qtbot: Any) -> None:
    box = window.pumps_panel.boxes["sample_pump"]
    box.pump.syringe.contents_ul = 0.0
    box.volume.setValue(0.0)  # "until stopped"
    click(qtbot, box.infuse_button)
    refused_with(window, qtbot, "end of travel: the syringe on sample_pump is empty")
    window.error_dialog.done(0)
    window.error_dialog = None
    stage = window.stage_boxes[0]
    stage.jog.setCurrentText("1000")
    click(qtbot, button(stage, "→"))
    qtbot.waitUntil(lambda: stage.position.full_text().startswith("x 1000.0 um"), timeout=5000)
    click(qtbot, button(stage, "→"))  # from x 1000 um to 2000 um: beyond the travel
    refused_with(window, qtbot, "x 2000 um is outside the stage's travel limits")
    assert window.engine.stages()["stage"].position() == (1000.0, 0.0)
    assert done(window) == [("stage", "move to")]
    assert window.engine.pumps()["sample_pump"].commands == []


def test_autofocus_from_the_stage_panel_is_recorded_and_moves_the_focus(
        window: MainWindow, qtbot: Any) -> None:
    stage = window.stage_boxes[0]
    click(qtbot, button(stage, "Autofocus"))
    qtbot.waitUntil(lambda: ("stage", "autofocus") in done(window), timeout=5000)
    qtbot.waitUntil(lambda: window.engine.cameras()["camera"].snaps > 3, timeout=20000)
    qtbot.waitUntil(lambda: bool(recorded(window, "manual_result")), timeout=20000)
    assert recorded(window, "manual_result")[0]["action"] == "autofocus"
    qtbot.waitUntil(lambda: stage.position.full_text().startswith("x 0.0 um"), timeout=20000)
    assert window.error_dialog is None, window.error_dialog and window.error_dialog.text()


def test_live_view_is_recorded_on_and_off(window: MainWindow, qtbot: Any) -> None:
    camera = window.camera_boxes[0]
    camera.live_button.setChecked(True)
    qtbot.waitUntil(lambda: window.frames.received > 0, timeout=5000)
    camera.live_button.setChecked(False)  # live off goes out on the device pool: wait for it
    qtbot.waitUntil(lambda: len(done(window)) >= 2, timeout=5000)
    assert done(window) == [("camera", "live on"), ("camera", "live off")]
