"""The layout holds at 1366 x 768 and 1920 x 1080: docks never grow the window, every button is
visible or scrollable, long text is elided with its whole text in a tooltip. The tetraspanin
panel runs on the simulated bench (real sockets) while the window's size is watched."""

from __future__ import annotations

import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from fakes import fake_engine
from PySide6.QtCore import QPoint, QRect, QSettings, QSize
from PySide6.QtWidgets import QAbstractButton, QScrollArea, QTableWidget, QWidget
from simbench import simulated_bench

from gui.core import Engine, Frame, load_bench
from gui.main_window import MainWindow
from gui.widgets import ElidedLabel

pytestmark = pytest.mark.timeout(120)
ROOT = Path(__file__).resolve().parents[1]
SCREENS = [QSize(1366, 768), QSize(1920, 1080)]
WIDE = [*SCREENS, QSize(1600, 900)]


def make_window(engine: Any, tmp_path: Path, qtbot: Any) -> MainWindow:
    window = MainWindow(engine, QSettings(str(tmp_path / "gui.ini"), QSettings.Format.IniFormat),
                        parameters=lambda p: {q.name: q.default or "donor 3"
                                              for q in p.parameters},
                        open_url=lambda url: None)
    window.ask_before_close = False
    qtbot.addWidget(window)
    return window


def shown_on(screen: QSize, window: MainWindow, qtbot: Any) -> MainWindow:
    """The window shown at a screen's size."""
    window.resize(screen)
    window.show()
    qtbot.waitExposed(window)
    return window


def in_scroll_area(widget: QWidget) -> bool:
    parent = widget.parentWidget()
    while parent is not None:
        if isinstance(parent, QScrollArea):
            return True
        parent = parent.parentWidget()
    return False


def cut_off_buttons(window: MainWindow) -> list[str]:
    """Buttons shown but outside the window (and not scrollable), or squeezed below the
    width their text needs."""
    bounds = QRect(QPoint(0, 0), window.size())
    bad = []
    for button in window.findChildren(QAbstractButton):
        if not button.isVisibleTo(window) or button.visibleRegion().isEmpty() and \
                not in_scroll_area(button):
            continue
        rect = QRect(button.mapTo(window, QPoint(0, 0)), button.size())
        if not in_scroll_area(button) and not bounds.contains(rect):
            bad.append(f"{button.text()!r} outside the window at {rect}")
        if button.text() and button.width() < button.minimumSizeHint().width():
            bad.append(f"{button.text()!r} squeezed to {button.width()} px")
    return bad


def columns_out_of_view(table: QTableWidget) -> list[str]:
    """Columns of a table that need a horizontal scroll to be seen."""
    table.scrollToTop()
    right = table.viewport().width()
    return [f"{table.horizontalHeaderItem(c).text()!r} ends at {table.columnViewportPosition(c)}"
            f" + {table.columnWidth(c)} of {right} px" for c in range(table.columnCount())
            if table.columnViewportPosition(c) + table.columnWidth(c) > right
            or table.horizontalScrollBar().maximum() > 0]


@pytest.fixture
def sim_window(qtbot: Any, tmp_path: Path) -> Iterator[MainWindow]:
    with simulated_bench(tmp_path, speed=2000, seed=2) as (_bench, path):
        engine = Engine(load_bench(path), runs_dir=tmp_path / "runs", keep_frames="none")
        engine.connect()
        window = make_window(engine, tmp_path, qtbot)
        try:
            yield window
        finally:
            if window.session.active:
                window.session.abort("test over")
                window.session.wait(10)
            window.close()
            engine.close()


@pytest.mark.parametrize("screen", SCREENS, ids=["1366x768", "1920x1080"])
def test_the_window_stays_within_the_screen_through_a_tetraspanin_panel_run(
        sim_window: MainWindow, qtbot: Any, screen: QSize) -> None:
    window = shown_on(screen, sim_window, qtbot)
    assert window.minimumSizeHint().width() <= screen.width()
    assert window.minimumSizeHint().height() <= screen.height()
    panel = window.protocol_panel
    assert panel.open_file(str(ROOT / "protocols" / "tetraspanin_panel.yaml")), panel.problems
    window.bridge.prompt.connect(lambda _m: qtbot.wait(50) or window.prompt_dialog.accept())
    sizes: list[QSize] = []
    window.bridge.counted.connect(lambda _row: sizes.append(window.size()))
    assert panel.start_run()
    qtbot.waitUntil(lambda: panel.state in ("completed", "failed", "aborted"), timeout=90000)
    assert panel.state == "completed", panel.state_label.full_text()
    assert window.counts_plot.rows == 48 and len(sizes) == 48  # 4 zones x 4 fields x 3 channels
    qtbot.wait(200)  # the last counts reach the summary, table and plot
    largest = QSize(max(s.width() for s in [*sizes, window.size()]),
                    max(s.height() for s in [*sizes, window.size()]))
    assert largest.width() <= screen.width() and largest.height() <= screen.height(), largest
    assert window.size() == screen
    assert window.results.rowCount() == 12  # every zone in every channel
    qtbot.waitUntil(lambda: len(window.chip_map.field_items) == 16,  # 4 zones x 4 fields
                    timeout=5000)  # the last field reaches the chip map through the Qt queue
    window.browser.show_run(Path(window.session.folder))  # the same run, as a past one
    qtbot.waitUntil(lambda: window.results.browsing, timeout=5000)
    assert window.results.rowCount() == 12 and len(window.chip_map.field_items) == 16
    window.docks["Frames"].raise_()
    qtbot.wait(50)
    assert len(window.browser.records) == 48 and columns_out_of_view(window.browser.table) == []
    window.browser.show_run(None)
    summary = window.counts_plot.summary
    assert summary.is_elided() and summary.toolTip() == summary.full_text()
    assert "CD9 AF488" in summary.toolTip()
    assert cut_off_buttons(window) == []


@pytest.mark.parametrize("screen", SCREENS, ids=["1366x768", "1920x1080"])
def test_every_button_is_visible_or_scrollable_and_long_text_is_elided(
        qtbot: Any, tmp_path: Path, screen: QSize) -> None:
    window = shown_on(screen, make_window(fake_engine(tmp_path / "runs"), tmp_path, qtbot),
                      qtbot)
    long_reason = "the syringe of sample_pump " + "would run dry before the step ends " * 8
    window.protocol_panel.set_state("failed", long_reason)
    window.show_error("Run failed", long_reason)
    window.history.message.setText(long_reason)
    qtbot.wait(100)
    assert window.size() == screen, "long text never grows the window"
    assert cut_off_buttons(window) == []
    for label in (window.protocol_panel.state_label, window.status.alarm,
                  window.history.message):
        assert isinstance(label, ElidedLabel)
        assert label.is_elided() and long_reason.strip() in label.toolTip()


@pytest.mark.parametrize("screen", WIDE, ids=["1366x768", "1920x1080", "1600x900"])
def test_every_column_of_the_frame_browser_is_in_view_without_scrolling_sideways(
        qtbot: Any, tmp_path: Path, screen: QSize) -> None:
    window = shown_on(screen, make_window(fake_engine(tmp_path / "runs"), tmp_path, qtbot),
                      qtbot)
    for seq in range(40):  # frames of a long run: wide numbers in every column
        zone, field = ("isotype", "CD63")[seq % 2], seq // 2 + 1
        window.archive.add_frame(Frame(np.full((64, 64), 65535 * (seq % 3 == 0), np.uint16),
                                       {"zone": zone, "field": field, "channel": "AF647",
                                        "time_s": 3600.0 + 60 * seq}))
        window.archive.add_count({"zone": zone, "field": field, "channel": "AF647",
                                  "count": 10_000 + seq, "t_s": 3600.0 + 60 * seq})
    window.docks["Frames"].raise_()
    window.browser.reload()
    qtbot.wait(50)
    assert window.browser.table.rowCount() == 40
    assert columns_out_of_view(window.browser.table) == []
    assert window.size() == screen, "the browser's columns never grow the window"
    assert cut_off_buttons(window) == []


def test_a_saved_geometry_larger_than_the_screen_is_brought_back_onto_it(
        qtbot: Any, tmp_path: Path) -> None:
    first = make_window(fake_engine(tmp_path / "runs"), tmp_path, qtbot)
    first.resize(2600, 1900)
    first.move(900, 700)
    first.close()  # saves the geometry
    second = make_window(fake_engine(tmp_path / "runs"), tmp_path, qtbot)
    area = second.screen().availableGeometry()
    assert second.frameGeometry().width() <= area.width()
    assert second.frameGeometry().height() <= area.height()
    assert area.contains(second.frameGeometry().topLeft())
    second.close()


@pytest.mark.parametrize("screen", WIDE, ids=["1366x768", "1920x1080", "1600x900"])
def test_every_column_of_the_results_is_in_view_without_scrolling_sideways(
        qtbot: Any, tmp_path: Path, screen: QSize) -> None:
    window = shown_on(screen, make_window(fake_engine(tmp_path / "runs"), tmp_path, qtbot),
                      qtbot)
    window.results.set_frame_geometry(0.1625, 2048, 2048)
    for field in range(1, 4):  # one field nearly empty, one crowded: a wide CV, many flags
        for zone in ("CD63", "isotype"):
            for channel in ("AF488", "AF555", "AF647"):
                window.results.note_saturated(zone, channel)
                window.results.add_row({"zone": zone, "channel": channel, "field": field,
                                        "count": (0, 12_345, 123_456)[field - 1], "step": 3,
                                        "t_s": 3600.0 + field})
    window.docks["Counts"].raise_()
    qtbot.wait(50)
    assert window.results.rowCount() == 6
    qc = window.results.item(0, window.results.columnCount() - 1)
    assert qc is not None and "saturated" in qc.text() and "CV" in qc.text()
    assert columns_out_of_view(window.results) == []
    assert window.size() == screen, "the results' flags never grow the window"
