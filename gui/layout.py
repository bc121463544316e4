"""The window's panels and docks, and a layout that holds on a 1366 x 768 screen.

Every dock's panel is in a scroll area (or is a view that scrolls by itself), so its minimum
size is small: a long protocol, a wide table or many device boxes scroll inside the dock
instead of growing the window. The window starts within the screen's available area and a
restored geometry is brought back onto the screen.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from PySide6.QtCore import QByteArray, QRect, QSettings, Qt, QUrl
from PySide6.QtGui import QGuiApplication
from PySide6.QtWidgets import (
    QDockWidget,
    QMainWindow,
    QSplitter,
    QTabWidget,
    QToolBar,
    QVBoxLayout,
    QWidget,
)

from gui.chip_map import ChipMap
from gui.counts_plot import CountsPlot
from gui.estop import EmergencyStopButton
from gui.event_log import EventLog
from gui.frame_browser import FrameBrowser
from gui.live_view import LiveView
from gui.protocol_panel import ProtocolPanel
from gui.pump_panel import PumpsPanel
from gui.results import ResultsTable
from gui.run_history import RunHistory
from gui.scope_panels import CameraBox, IlluminatorBox, StageBox
from gui.widgets import scrollable

DEFAULT_SIZE = (1500, 950)
Area = Qt.DockWidgetArea


def available_screen(window: QWidget) -> QRect:
    """The screen area a window may use (without task bars)."""
    screen = window.screen() or QGuiApplication.primaryScreen()
    return screen.availableGeometry()


class WindowLayout:
    """Builds the panels of a MainWindow and sets them on it as attributes."""

    def __init__(self, window: Any, library: Path | None) -> None:
        self.window = window
        self.library = library
        self.pixel_size_um = 0.0

    def build(self, devices: Any, counter: Callable[[Any], Any],
              parameters: Callable[[Any], dict[str, str] | None],
              open_url: Callable[[QUrl], Any]) -> None:
        """Every panel, dock and the toolbar."""
        w = self.window
        bench = w.engine.bench
        lights, cameras = devices.illuminators, devices.cameras
        channels = list(next(iter(lights.values())).channels) if lights else []
        self.pixel_size_um = float(next(iter(cameras.values())).pixel_size_um) if cameras else 0.0
        w.live_view = LiveView(w.frames, channels, self.pixel_size_um, counter,
                               lambda message: w.calls.report("live view", message))
        w.setCentralWidget(w.live_view)
        w.protocol_panel = ProtocolPanel(bench, w.session, parameters, w.emergency_stop,
                                         self.library)
        w.counts_plot = CountsPlot(list(bench.chip.zones))
        w.results = ResultsTable(bench)
        w.chip_map = ChipMap(bench)
        w.event_log = EventLog()
        w.history = RunHistory(Path(w.engine.runs_dir), w.calls.submit, open_url)
        w.browser = FrameBrowser(w.archive, Path(w.engine.runs_dir))
        w.devices = self._device_panels(devices)
        self._docks()
        self._toolbar()

    def _device_panels(self, devices: Any) -> QTabWidget:
        w = self.window
        w.pumps_panel = PumpsPanel(devices.pumps, w.calls, w.manual)
        scope = QWidget()
        layout = QVBoxLayout(scope)
        zones = dict(w.engine.bench.chip.zones)
        w.light_boxes = [IlluminatorBox(n, d, w.calls, w.manual)
                         for n, d in devices.illuminators.items()]
        w.stage_boxes = [StageBox(n, d, w.calls, zones, w.manual)
                         for n, d in devices.stages.items()]
        w.camera_boxes = [CameraBox(n, d, w.calls, w.frames,
                                    lambda message: w.calls.report("camera", message), w.manual,
                                    devices.illuminators)
                          for n, d in devices.cameras.items()]
        for box in (*w.light_boxes, *w.stage_boxes, *w.camera_boxes):
            layout.addWidget(box)
        layout.addStretch(1)
        tabs = QTabWidget()
        tabs.addTab(scrollable(w.pumps_panel), "Pumps")
        tabs.addTab(scrollable(scope), "Microscope")
        return tabs

    def _counts(self) -> QSplitter:
        split = QSplitter(Qt.Orientation.Horizontal)
        split.addWidget(self.window.counts_plot)
        split.addWidget(self.window.results)
        split.setStretchFactor(0, 1)
        split.setStretchFactor(1, 1)
        split.setSizes([500, 500])  # the table's columns readable from the start (1 : 1)
        split.setChildrenCollapsible(False)
        self.window.results.widthNeeded.connect(lambda px: _give_to_table(split, px))
        return split

    def _docks(self) -> None:
        w = self.window
        w.docks = {}
        add = self._dock
        add("Protocol", w.protocol_panel, Area.LeftDockWidgetArea)  # it scrolls inside
        devices = add("Devices", w.devices, Area.RightDockWidgetArea)
        frames = add("Frames", w.browser, Area.RightDockWidgetArea)
        chip = add("Chip map", w.chip_map, Area.RightDockWidgetArea)
        counts = add("Counts", self._counts(), Area.BottomDockWidgetArea)
        log = add("Event log", w.event_log, Area.BottomDockWidgetArea)
        history = add("Run history", w.history, Area.BottomDockWidgetArea)
        w.tabifyDockWidget(devices, frames)
        w.tabifyDockWidget(frames, chip)
        devices.raise_()
        w.splitDockWidget(counts, log, Qt.Orientation.Horizontal)
        w.tabifyDockWidget(log, history)
        log.raise_()
        w.resizeDocks([counts], [260], Qt.Orientation.Vertical)
        w.resizeDocks([w.docks["Protocol"], devices], [360, 380], Qt.Orientation.Horizontal)
        w.resizeDocks([counts, log], [1000, 420], Qt.Orientation.Horizontal)
        w.browser.widthNeeded.connect(  # the live view gives way, the window never grows
            lambda px: w.resizeDocks([frames], [px], Qt.Orientation.Horizontal))

    def _dock(self, title: str, widget: QWidget, area: Qt.DockWidgetArea) -> QDockWidget:
        dock = QDockWidget(title, self.window)
        dock.setObjectName(f"dock-{title}")
        dock.setWidget(widget)
        self.window.addDockWidget(area, dock)
        self.window.docks[title] = dock
        return dock

    def _toolbar(self) -> None:
        w = self.window
        bar = QToolBar("Emergency stop", w)
        bar.setObjectName("emergencyToolbar")
        bar.setMovable(False)
        bar.setFloatable(False)
        w.estop_button = EmergencyStopButton(w.emergency_stop)
        w.estop_button.install_shortcuts(w)
        bar.addWidget(w.estop_button)
        w.addToolBar(Qt.ToolBarArea.TopToolBarArea, bar)

    # -- geometry -------------------------------------------------------------------------------
    def restore(self, settings: QSettings) -> None:
        """The saved layout, on the screen; else a default size that fits the screen."""
        w = self.window
        geometry = settings.value("geometry")
        if not (isinstance(geometry, QByteArray) and w.restoreGeometry(geometry)):
            w.resize(*DEFAULT_SIZE)
        state = settings.value("window_state")
        if isinstance(state, QByteArray):
            w.restoreState(state)
        self.fit_to_screen()
        last = settings.value("last_protocol")
        if isinstance(last, str) and Path(last).is_file():
            w.protocol_panel.open_file(last)

    def fit_to_screen(self) -> None:
        """Shrink and move the window into the screen's available area."""
        w = self.window
        area = available_screen(w)
        frame = w.frameGeometry()
        extra_w, extra_h = frame.width() - w.width(), frame.height() - w.height()
        width = min(w.width(), area.width() - extra_w)
        height = min(w.height(), area.height() - extra_h)
        if (width, height) != (w.width(), w.height()):
            w.resize(width, height)
        x = min(max(frame.x(), area.x()), area.right() - width - extra_w + 1)
        y = min(max(frame.y(), area.y()), area.bottom() - height - extra_h + 1)
        if (x, y) != (frame.x(), frame.y()):
            w.move(x, y)

    def save(self, settings: QSettings) -> None:
        """Remember the layout."""
        settings.setValue("geometry", self.window.saveGeometry())
        settings.setValue("window_state", self.window.saveState())
        settings.sync()


def minimum_fits(window: QMainWindow, width: int, height: int) -> bool:
    """True if the window's layout can shrink to width x height."""
    hint = window.minimumSizeHint()
    return hint.width() <= width and hint.height() <= height


def _give_to_table(split: QSplitter, px: int, plot_min_px: int = 200) -> None:
    """The results table takes the width its columns need from the counts plot beside it (the
    plot keeps at least ``plot_min_px``)."""
    total = sum(split.sizes())
    table = min(px, max(total - plot_min_px, 0))
    if table > split.sizes()[1]:
        split.setSizes([total - table, table])
