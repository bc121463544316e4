"""The main window: live view in the middle; protocol, devices, counts, log and history in docks;
the emergency stop in the toolbar. It is given a connected engine and builds nothing else.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from PySide6.QtCore import QByteArray, QSettings, Qt, QUrl
from PySide6.QtGui import QCloseEvent, QDesktopServices
from PySide6.QtWidgets import (
    QDockWidget,
    QLabel,
    QMainWindow,
    QMessageBox,
    QScrollArea,
    QTabWidget,
    QToolBar,
    QVBoxLayout,
    QWidget,
)

from chipctl.engine import Engine
from chipctl.protocol.model import Protocol
from chipctl.vision.factory import make_counter
from gui.bridge import DeviceCalls, EmergencyStopper, RunBridge
from gui.counts_plot import CountsPlot
from gui.dialogs import ask_parameters, error_box, prompt_box
from gui.estop import EmergencyStopButton
from gui.event_log import EventLog
from gui.frames import FrameSlot
from gui.live_view import LiveView
from gui.protocol_panel import ProtocolPanel
from gui.pump_panel import PumpsPanel
from gui.run_history import RunHistory
from gui.run_session import RunSession
from gui.scope_panels import CameraBox, IlluminatorBox, StageBox


class MainWindow(QMainWindow):
    """The bench operator's window onto one connected engine."""

    def __init__(self, engine: Engine, settings: QSettings,
                 counter: Callable[[Any], Any] | None = None,
                 parameters: Callable[[Protocol], dict[str, str] | None] | None = None,
                 open_url: Callable[[QUrl], Any] = QDesktopServices.openUrl) -> None:
        super().__init__()
        self.engine, self.settings = engine, settings
        self.setWindowTitle(f"chipctl — {engine.bench.name}")
        self.setObjectName("chipctlMainWindow")
        self.ask_before_close = True
        self.prompt_dialog: QMessageBox | None = None
        self.error_dialog: QMessageBox | None = None
        self.frames = FrameSlot()
        self.bridge = RunBridge(self.frames, self)
        self.calls = DeviceCalls(parent=self)
        self.stopper = EmergencyStopper(self._emergency_stop_now, self)
        self.session = RunSession(engine, self.bridge)
        self._build(counter, parameters or (lambda p: ask_parameters(p, self, self.emergency_stop)),
                    open_url)
        self._connect()
        self._restore()
        self.history.refresh()
        self.refresh_devices()

    # -- construction -----------------------------------------------------------------------
    def _build(self, counter: Callable[[Any], Any] | None,
               parameters: Callable[[Protocol], dict[str, str] | None],
               open_url: Callable[[QUrl], Any]) -> None:
        self.docks: dict[str, QDockWidget] = {}
        lights, cameras = self.engine.illuminators(), self.engine.cameras()
        channels = list(next(iter(lights.values())).channels) if lights else []
        pixel = float(next(iter(cameras.values())).pixel_size_um) if cameras else 0.0
        counter = counter or make_counter(self.engine.count_params)
        self.live_view = LiveView(self.frames, channels, pixel, counter,
                                  lambda message: self.calls.report("live view", message))
        self.setCentralWidget(self.live_view)
        self.protocol_panel = ProtocolPanel(self.engine.bench, self.session, parameters,
                                            self.emergency_stop)
        self.counts_plot = CountsPlot()
        self.event_log = EventLog()
        self.history = RunHistory(Path(self.engine.runs_dir), self.calls.submit, open_url)
        self.devices = self._device_panels()
        self._dock("Protocol", self.protocol_panel, Qt.DockWidgetArea.LeftDockWidgetArea)
        self._dock("Devices", self.devices, Qt.DockWidgetArea.RightDockWidgetArea)
        counts = self._dock("Counts", self.counts_plot, Qt.DockWidgetArea.BottomDockWidgetArea)
        log = self._dock("Event log", self.event_log, Qt.DockWidgetArea.BottomDockWidgetArea)
        history = self._dock("Run history", self.history, Qt.DockWidgetArea.BottomDockWidgetArea)
        self.splitDockWidget(counts, log, Qt.Orientation.Horizontal)
        self.tabifyDockWidget(log, history)
        log.raise_()
        self.resizeDocks([counts], [300], Qt.Orientation.Vertical)
        self.resizeDocks([self.docks["Protocol"], self.docks["Devices"]], [380, 400],
                         Qt.Orientation.Horizontal)
        self._toolbar()

    def _device_panels(self) -> QTabWidget:
        engine = self.engine
        self.pumps_panel = PumpsPanel(engine.pumps(), self.calls, lambda: self.session.active)
        scope = QWidget()
        layout = QVBoxLayout(scope)
        self.light_boxes = [IlluminatorBox(n, d, self.calls)
                            for n, d in engine.illuminators().items()]
        self.stage_boxes = [StageBox(n, d, self.calls, dict(engine.bench.chip.zones),
                                     engine.autofocus) for n, d in engine.stages().items()]
        self.camera_boxes = [CameraBox(n, d, self.calls, self.frames,
                                       lambda message: self.calls.report("camera", message))
                             for n, d in engine.cameras().items()]
        for box in (*self.light_boxes, *self.stage_boxes, *self.camera_boxes):
            layout.addWidget(box)
        layout.addStretch(1)
        tabs = QTabWidget()
        for title, widget in (("Pumps", self.pumps_panel), ("Microscope", scope)):
            area = QScrollArea()
            area.setWidgetResizable(True)
            area.setWidget(widget)
            tabs.addTab(area, title)
        return tabs

    def _dock(self, title: str, widget: QWidget, area: Qt.DockWidgetArea) -> QDockWidget:
        dock = QDockWidget(title, self)
        dock.setObjectName(f"dock-{title}")
        dock.setWidget(widget)
        self.addDockWidget(area, dock)
        self.docks[title] = dock
        return dock

    def _toolbar(self) -> None:
        bar = QToolBar("Emergency stop", self)
        bar.setObjectName("emergencyToolbar")
        bar.setMovable(False)
        bar.setFloatable(False)
        self.estop_button = EmergencyStopButton(self.emergency_stop)
        self.estop_button.install_shortcuts(self)
        bar.addWidget(self.estop_button)
        self.run_state = QLabel("  no run")
        bar.addWidget(self.run_state)
        self.addToolBar(Qt.ToolBarArea.TopToolBarArea, bar)
        self.alarm = QLabel("")
        self.statusBar().addPermanentWidget(self.alarm)

    def _connect(self) -> None:
        bridge, panel = self.bridge, self.protocol_panel
        bridge.stateChanged.connect(self.on_state)
        bridge.stepStarted.connect(panel.step_started)
        bridge.stepFinished.connect(panel.step_finished)
        bridge.counted.connect(self.counts_plot.add_row)
        bridge.prompt.connect(self.on_prompt)
        bridge.record.connect(self.event_log.add)
        bridge.record.connect(self.pumps_panel.run_event)
        self.calls.failed.connect(self.on_device_error)
        self.stopper.done.connect(self.on_emergency_stop_done)
        self.history.interrupted.connect(self.on_interrupted_run)
        panel.fileOpened.connect(self._remember_protocol)
        panel.runStarted.connect(self._run_started)
        panel.runFailedToStart.connect(lambda why: self.show_error("Run not started", why))

    # -- run events (Qt thread) ---------------------------------------------------------------
    def _run_started(self) -> None:
        self.counts_plot.clear(self.session.started_s)
        self._set_devices_for_run(True)
        name = self.session.protocol.name if self.session.protocol else ""
        self.run_state.setText(f"  run started: {name}")

    def on_state(self, state: str, reason: str) -> None:
        """A run changed state: panel, toolbar, device panels, and failures shown."""
        self.protocol_panel.set_state(state, reason)
        self.run_state.setText(f"  run {state}" + (f": {reason}" if reason else ""))
        if state in ("completed", "aborted", "failed"):
            self._set_devices_for_run(False)
            self.refresh_devices()
            if self.prompt_dialog is not None:
                self.prompt_dialog.done(0)
            self.history.refresh()
            if self.session.folder is not None:
                self.history.mark(Path(self.session.folder), state, reason)
        if state == "failed":
            self.show_error("Run failed", reason)

    def on_prompt(self, message: str) -> None:
        """An operator prompt: a dialog; the run waits for OK."""
        self.prompt_dialog = prompt_box(message, self, self._prompt_answered)

    def _prompt_answered(self) -> None:
        self.prompt_dialog = None
        self.session.confirm()

    def refresh_devices(self) -> None:
        """Read back the lights and the stage (after a run or an emergency stop)."""
        boxes: list[IlluminatorBox | StageBox] = [*self.light_boxes, *self.stage_boxes]
        for box in boxes:
            box.refresh()

    def _set_devices_for_run(self, active: bool) -> None:
        self.pumps_panel.set_run_active(active)
        boxes: list[IlluminatorBox | StageBox | CameraBox] = [
            *self.light_boxes, *self.stage_boxes, *self.camera_boxes]
        for box in boxes:
            box.set_run_active(active)

    # -- errors and the emergency stop --------------------------------------------------------
    def on_device_error(self, source: str, message: str) -> None:
        """A device call failed: log it, flag it, and tell the operator."""
        self.event_log.add_error(source, message)
        self.show_error(f"{source} failed", message)

    def show_error(self, title: str, message: str) -> None:
        """Red status-bar flag and one non-blocking dialog (reused while open)."""
        self.alarm.setText(f"<b style='color:#c62828'>{title}: {message}</b>")
        self.statusBar().showMessage(f"{title}: {message}")
        if self.error_dialog is not None and self.error_dialog.isVisible():
            self.error_dialog.setText(f"{self.error_dialog.text()}\n\n{title}: {message}")
            return
        self.error_dialog = error_box(title, message, self)

    def on_interrupted_run(self, notice: str) -> None:
        """A run was cut off by a crash: what it did and what each syringe held."""
        self.event_log.add({"event": "interrupted_run", "notice": notice})
        self.show_error("A run was interrupted", notice)

    def emergency_stop(self) -> None:
        """Halt every pump and light now (dedicated thread); stop live frames."""
        self.stopper.trigger()
        for box in self.camera_boxes:
            box.stop_live()
        self.alarm.setText("<b style='color:#c62828'>EMERGENCY STOP: halting pumps and lights"
                           "</b>")

    def _emergency_stop_now(self) -> list[str]:
        return list(self.engine.emergency_stop())

    def on_emergency_stop_done(self, failures: list[str]) -> None:
        """Report the emergency stop's outcome."""
        self.event_log.add({"event": "emergency_stop", "failures": failures})
        self.refresh_devices()
        if failures:
            self.show_error("Emergency stop incomplete", "; ".join(failures))
        else:
            self.alarm.setText("<b style='color:#c62828'>EMERGENCY STOP: every pump and light "
                               "is off</b>")

    # -- settings -----------------------------------------------------------------------------
    def _remember_protocol(self, path: str) -> None:
        self.settings.setValue("last_protocol", path)

    def _restore(self) -> None:
        geometry = self.settings.value("geometry")
        if isinstance(geometry, QByteArray):
            self.restoreGeometry(geometry)
        else:
            self.resize(1500, 950)
        state = self.settings.value("window_state")
        if isinstance(state, QByteArray):
            self.restoreState(state)
        last = self.settings.value("last_protocol")
        if isinstance(last, str) and Path(last).is_file():
            self.protocol_panel.open_file(last)

    def save_settings(self) -> None:
        """Remember the layout (and, as it is opened, the last protocol)."""
        self.settings.setValue("geometry", self.saveGeometry())
        self.settings.setValue("window_state", self.saveState())
        self.settings.sync()

    def closeEvent(self, event: QCloseEvent) -> None:  # noqa: N802 - Qt's name
        """Ask before closing during a run; then abort it, save the layout, stop threads."""
        if self.session.active and self.ask_before_close:
            answer = QMessageBox.question(self, "A run is in progress",
                                          "Abort the run and close chipctl?")
            if answer != QMessageBox.StandardButton.Yes:
                event.ignore()
                return
        self.session.abort("the window was closed")
        self.session.wait(15.0)  # the bench is made safe before the ports close
        self.save_settings()
        self.pumps_panel.timer.stop()
        for box in self.camera_boxes:
            box.stop_live()
        self.live_view.close_down()
        self.bridge.detach()
        self.calls.shutdown()
        event.accept()
