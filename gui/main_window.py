"""The main window: live view in the middle; protocol, devices, frames, chip map, counts and
results, log and history in docks; the emergency stop in the toolbar; the bench's state in
the status bar. It is given a connected engine and builds nothing else.

Every dock's panel scrolls rather than demands room, so a dock never grows the window beyond
the screen (gui.layout); the status bar follows the devices' actual state (gui.bench_state).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from PySide6.QtCore import QSettings, QUrl
from PySide6.QtGui import QCloseEvent, QDesktopServices
from PySide6.QtWidgets import QDockWidget, QMainWindow, QMessageBox, QTabWidget

from gui.bench_state import BenchPoller, BenchSnapshot
from gui.bridge import DeviceCalls, EmergencyStopper, RunBridge
from gui.chip_map import ChipMap
from gui.core import (
    Protocol,
    RunNotFound,
    devices_of,
    kept_on_disk,
    make_counter,
    protocol_library,
)
from gui.counts_plot import CountsPlot
from gui.dialogs import ask_parameters, error_box, prompt_box
from gui.estop import EmergencyStopButton
from gui.event_log import EventLog
from gui.frame_archive import RunArchive
from gui.frame_browser import CURRENT, Chosen, FrameBrowser
from gui.frames import FrameSlot
from gui.layout import WindowLayout
from gui.live_view import LiveView
from gui.protocol_panel import ProtocolPanel
from gui.pump_panel import PumpsPanel
from gui.results import ResultsTable, run_counts
from gui.run_history import RunHistory
from gui.run_session import RunSession
from gui.scope_panels import CameraBox, IlluminatorBox, StageBox
from gui.status import StatusIndicators


class MainWindow(QMainWindow):
    """The bench operator's window onto one connected engine."""

    # the panels, built by gui.layout.WindowLayout
    live_view: LiveView
    protocol_panel: ProtocolPanel
    counts_plot: CountsPlot
    results: ResultsTable
    chip_map: ChipMap
    event_log: EventLog
    history: RunHistory
    browser: FrameBrowser
    devices: QTabWidget
    pumps_panel: PumpsPanel
    light_boxes: list[IlluminatorBox]
    stage_boxes: list[StageBox]
    camera_boxes: list[CameraBox]
    docks: dict[str, QDockWidget]
    estop_button: EmergencyStopButton

    def __init__(self, engine: Any, settings: QSettings,
                 counter: Callable[[Any], Any] | None = None,
                 parameters: Callable[[Protocol], dict[str, str] | None] | None = None,
                 open_url: Callable[[QUrl], Any] = QDesktopServices.openUrl,
                 library: Path | None = None) -> None:
        super().__init__()
        self.engine, self.settings = engine, settings
        self.setWindowTitle(f"chipctl — {engine.bench.name}")
        self.setObjectName("chipctlMainWindow")
        self.ask_before_close = True
        self.prompt_dialog: QMessageBox | None = None
        self.error_dialog: QMessageBox | None = None
        self.frames = FrameSlot()
        self.archive = RunArchive()
        self.bridge = RunBridge(self.frames, self, frame_sinks=[self.archive.add_frame],
                                count_sinks=[self.archive.add_count])
        self.calls = DeviceCalls(parent=self)
        self.stopper = EmergencyStopper(self._emergency_stop_now, self)
        self.session = RunSession(engine, self.bridge)
        self.status = StatusIndicators()
        self.status.install(self.statusBar())
        self.alarm = self.status.alarm
        self.layout_ = WindowLayout(self, library or protocol_library())
        self.manual = engine.manual  # every manual action: checked, recorded (chipctl.manual)
        self.manual.events.record.connect(self._on_manual_record)
        self.layout_.build(devices_of(engine), counter or make_counter(engine.count_params),
                           parameters or (lambda p: ask_parameters(p, self, self.emergency_stop)),
                           open_url)
        self._last_errors: dict[str, str] = {}
        self.current_rows: list[dict[str, Any]] = []  # the current run's counts rows
        self.poller = BenchPoller(devices_of(engine), lambda: self.session.active, parent=self)
        self._connect()
        self.layout_.restore(settings)
        self.history.refresh()
        self.browser.refresh_runs()
        self.poller.poll()

    def _connect(self) -> None:
        bridge, panel = self.bridge, self.protocol_panel
        bridge.stateChanged.connect(self.on_state)
        bridge.stepStarted.connect(panel.step_started)
        bridge.stepStarted.connect(self.on_step_started)
        bridge.stepFinished.connect(panel.step_finished)
        bridge.counted.connect(self.on_counted)
        bridge.prompt.connect(self.on_prompt)
        bridge.record.connect(self.event_log.add)
        bridge.record.connect(self.poller.run_event)
        self.poller.changed.connect(self.on_snapshot)
        self.calls.failed.connect(self.on_device_error)
        self.stopper.done.connect(self.on_emergency_stop_done)
        self.history.interrupted.connect(self.on_interrupted_run)
        self.history.browse.connect(self.browse_run)
        self.browser.chosen.connect(self.on_frame_chosen)
        self.browser.runChosen.connect(self.show_results_of)
        self.browser.failed.connect(self.on_device_error)
        panel.fileOpened.connect(lambda path: self.settings.setValue("last_protocol", path))
        panel.runStarted.connect(self._run_started)
        panel.runFailedToStart.connect(lambda why: self.show_error("Run not started", why))

    def _on_manual_record(self, event: dict[str, Any]) -> None:
        """A manual-session record (any thread): to the event log on the Qt thread."""
        self.calls.mailbox.post(self.event_log.add, dict(event))

    # -- the bench's state (Qt thread) ---------------------------------------------------------
    def on_snapshot(self, snapshot: BenchSnapshot) -> None:
        """Every indicator and panel shows the newest state of the devices."""
        previous_errors = set(self._last_errors)
        self._last_errors = dict(snapshot.errors)
        self.status.show_snapshot(snapshot)
        self.pumps_panel.show_snapshot(snapshot)
        for box in self._device_boxes():
            box.show_snapshot(snapshot)
        if snapshot.stages:
            x, y, _ = next(iter(snapshot.stages.values()))
            self.chip_map.show_camera(x, y)
        for name in sorted(set(snapshot.errors) - previous_errors):
            self.on_device_error(name, snapshot.errors[name])

    # -- run events (Qt thread) ---------------------------------------------------------------
    def _run_started(self) -> None:
        self.counts_plot.clear(self.session.started_s)
        self.current_rows = []
        self.results.clear_run()
        self.chip_map.clear_fields()
        folder = self.session.folder
        self.archive.clear(Path(folder) if folder is not None else None,
                           kept_on_disk(self.engine))
        self.browser.show_run(None)
        self._set_devices_for_run(True)
        name = self.session.protocol.name if self.session.protocol else ""
        self.status.show_run_state("running", name)

    def on_state(self, state: str, reason: str) -> None:
        """A run changed state: panel, status bar, device panels, and failures latched."""
        self.protocol_panel.set_state(state, reason)
        self.status.show_run_state(state, reason)
        if state in ("completed", "aborted", "failed"):
            self._set_devices_for_run(False)
            self.poller.poll()
            if self.prompt_dialog is not None:
                self.prompt_dialog.done(0)
            self.history.refresh()
            if self.session.folder is not None:
                self.history.mark(Path(self.session.folder), state, reason)
            self.browser.refresh_runs()
        if state == "failed":
            self.show_error("Run failed", reason)

    def on_step_started(self, index: int, total: int, label: str) -> None:
        """Say which step runs (the state stays running)."""
        if self.session.state == "running":
            where = f"step {index + 1} of {total}: {label}"
            self.status.show_run_state("running", where)
            self.protocol_panel.set_state("running", where)

    def on_counted(self, row: dict[str, Any]) -> None:
        """A frame was counted: plot, results table, chip map."""
        frame = self.archive.record_for(row)  # the frame this row counted
        if frame is not None and frame.shape is not None:
            height, width = frame.shape
            pixel = frame.pixel_size_um or self.layout_.pixel_size_um
            self.results.set_frame_geometry(pixel, width, height)
            self.chip_map.set_field_size(width * pixel, height * pixel)
            if frame.saturated:
                self.results.note_saturated(str(row.get("zone")), str(row.get("channel")))
        if frame is not None and row.get("x_um") is None:  # the position is in its metadata
            row = {**row, "x_um": frame.x_um, "y_um": frame.y_um}
        self.current_rows.append(row)
        if self.browser.run == CURRENT:
            self.counts_plot.add_row(row)
        self.results.add_row(row)
        self.chip_map.add_field(str(row.get("zone")), row.get("x_um"), row.get("y_um"))

    def on_prompt(self, message: str) -> None:
        """An operator prompt: a dialog; the run waits for OK."""
        self.status.show_run_state("waiting for the operator", message)
        self.protocol_panel.set_state("waiting for the operator", message)
        self.prompt_dialog = prompt_box(message, self, self._prompt_answered)

    def _prompt_answered(self) -> None:
        self.prompt_dialog = None
        if self.session.active:  # running, or paused if the operator paused meanwhile
            state = self.session.state
            self.status.show_run_state(state, "the operator confirmed")
            self.protocol_panel.set_state(state, "the operator confirmed")
        self.session.confirm()

    def _set_devices_for_run(self, active: bool) -> None:
        self.pumps_panel.set_run_active(active)
        for box in self._device_boxes():
            box.set_run_active(active)

    def _device_boxes(self) -> list[IlluminatorBox | StageBox | CameraBox]:
        return [*self.light_boxes, *self.stage_boxes, *self.camera_boxes]

    # -- frames ---------------------------------------------------------------------------------
    def on_frame_chosen(self, chosen: Chosen) -> None:
        """Show a frame from the browser in the live view."""
        record = chosen.record
        run = "current run" if chosen.run == "current run" else Path(chosen.run).name
        counted = "" if record.count is None else f", run counted {record.count}"
        field = "" if record.field is None else f" field {record.field}"
        self.live_view.pin(chosen.frames, f"{run}, frame {record.seq + 1}: {record.zone}{field} "
                                          f"{record.channel}{counted}")

    def show_results_of(self, run: str) -> None:
        """The results table, counts plot and chip map's fields of the run browsed (the
        current or a past one)."""
        if run == CURRENT:
            rows, started_s, title = self.current_rows, self.session.started_s, "Counts"
            self.results.show_current()
        else:
            try:
                rows, started_s = run_counts(Path(run))
            except (RunNotFound, OSError) as exc:
                self.on_device_error("results", str(exc))
                return
            title = f"Counts — {Path(run).name}"
            self.results.set_rows(rows)
        self.counts_plot.show_rows(rows, started_s)
        self.docks["Counts"].setWindowTitle(title)
        self.chip_map.clear_fields()  # the fields that run acquired
        places = [(str(r.get("zone")), r.get("x_um"), r.get("y_um")) for r in rows] if (
            run == CURRENT) else [(f.zone, f.x_um, f.y_um) for f in self.browser.records]
        for zone, x_um, y_um in places:
            self.chip_map.add_field(zone, x_um, y_um)

    def browse_run(self, folder: str) -> None:
        """Show a recorded run's frames in the frame browser."""
        self.browser.show_run(Path(folder))
        self.docks["Frames"].show()
        self.docks["Frames"].raise_()

    # -- errors and the emergency stop --------------------------------------------------------
    def on_device_error(self, source: str, message: str) -> None:
        """A device call failed: log it, latch an alarm, and tell the operator."""
        self.event_log.add_error(source, message)
        self.show_error(f"{source} failed", message)

    def show_error(self, title: str, message: str) -> None:
        """A latched alarm and one non-blocking dialog (reused while open)."""
        self.status.raise_alarm(f"{title}: {message}")
        if self.error_dialog is not None and self.error_dialog.isVisible():
            self.error_dialog.setText(f"{self.error_dialog.text()}\n\n{title}: {message}")
            return
        self.error_dialog = error_box(title, message, self)

    def on_interrupted_run(self, notice: str) -> None:
        """A run was cut off by a crash: what it did and what each syringe held."""
        self.event_log.add({"event": "interrupted_run", "notice": notice})
        self.show_error("A run was interrupted", notice)

    def emergency_stop(self) -> None:
        """Halt every pump, light and stage now (dedicated thread); stop live frames."""
        self.stopper.trigger()
        for box in self.camera_boxes:
            box.stop_live()
        self.status.raise_alarm("EMERGENCY STOP pressed: halting every pump, light and stage")

    def _emergency_stop_now(self) -> list[str]:
        return list(self.engine.emergency_stop())

    def on_emergency_stop_done(self, failures: list[str]) -> None:
        """Report the emergency stop's outcome; the indicators show the bench as read after."""
        self.event_log.add({"event": "emergency_stop", "failures": failures})
        self.poller.poll()
        if failures:
            self.show_error("Emergency stop incomplete", "; ".join(failures))
        else:
            self.status.raise_alarm("EMERGENCY STOP: the stop command reached every pump and "
                                    "light")

    # -- closing ------------------------------------------------------------------------------
    def save_settings(self) -> None:
        """Remember the layout (and, as it is opened, the last protocol)."""
        self.layout_.save(self.settings)

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
        self.poller.close()
        self.browser.timer.stop()
        for box in self.camera_boxes:
            box.stop_live()
        self.live_view.close_down()
        self.archive.close()
        self.bridge.detach()
        self.calls.shutdown()
        event.accept()
