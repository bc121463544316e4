"""Run history from the run index, newest first, with the report one click away.

Refreshing the index also finds runs cut off by a crash; the operator is told about them and
what each syringe held (chipctl.runs.describe_interruption). Reports are written off the Qt
thread (the `submit` callable, DeviceCalls.submit in the window).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from PySide6.QtCore import QUrl, Signal
from PySide6.QtGui import QDesktopServices
from PySide6.QtWidgets import (
    QGridLayout,
    QPushButton,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from gui.core import RunIndex, describe_interruption, write_run_report
from gui.widgets import ElidedLabel

COLUMNS = ("run", "protocol", "sample", "status", "started", "reason")
KEYS = ("run_id", "protocol", "sample", "status", "started", "reason")
Submit = Callable[[str, Callable[[], Any], Callable[[Any], None]], None]


def write_report(folder: Path) -> Path:
    """The run's HTML report, written if it is not there yet."""
    existing = folder / "report.html"
    return existing if existing.is_file() else write_run_report(folder)


def _run_now(label: str, action: Callable[[], Any], done: Callable[[Any], None]) -> None:
    done(action())


class RunHistory(QWidget):
    """A table of runs; double-click or "Report" opens the run's report."""

    interrupted = Signal(str)  # what the operator must know about a run cut off by a crash
    browse = Signal(str)  # the folder of a run whose frames the operator wants to see

    def __init__(self, runs_dir: Path, submit: Submit = _run_now,
                 open_url: Callable[[QUrl], Any] = QDesktopServices.openUrl,
                 parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.index = RunIndex(runs_dir)
        self.submit, self.open_url = submit, open_url
        self.runs: list[dict[str, Any]] = []
        self.table = QTableWidget(0, len(COLUMNS))
        self.table.setHorizontalHeaderLabels(COLUMNS)
        self.table.setSelectionBehavior(QTableWidget.SelectionBehavior.SelectRows)
        self.table.setEditTriggers(QTableWidget.EditTrigger.NoEditTriggers)
        self.table.cellDoubleClicked.connect(lambda row, _col: self.open_report(row))
        self.message = ElidedLabel(f"runs in {runs_dir}")
        buttons = QGridLayout()  # two rows: the dock can be narrow
        for index, (text, action) in enumerate((
                ("Refresh", self.refresh), ("Report", self.open_report),
                ("Frames", self.browse_frames), ("Open folder", self.open_folder))):
            button = QPushButton(text)
            button.clicked.connect(lambda _=False, action=action: action())
            buttons.addWidget(button, index // 2, index % 2)
        buttons.setColumnStretch(2, 1)
        layout = QVBoxLayout(self)
        layout.addLayout(buttons)
        layout.addWidget(self.table, 1)
        layout.addWidget(self.message)

    def refresh(self) -> list[str]:
        """Bring the index up to date and show it; returns notices of interrupted runs."""
        notices = [describe_interruption(info) for info in self.index.refresh()]
        for notice in notices:
            self.interrupted.emit(notice)
        self.runs = list(reversed(self.index.list()))
        self.table.setRowCount(len(self.runs))
        for row, info in enumerate(self.runs):
            for col, key in enumerate(KEYS):
                item = QTableWidgetItem(str(info.get(key) or ""))
                item.setToolTip(item.text())
                self.table.setItem(row, col, item)
        self.table.resizeColumnsToContents()
        return notices

    def mark(self, folder: Path, status: str, reason: str) -> None:
        """Show a run's end as the window heard it (its run.json may be a moment behind)."""
        for row, info in enumerate(self.runs):
            if Path(info["folder"]) == Path(folder) and info.get("status") == "running":
                info.update(status=status, reason=reason)
                for key, text in (("status", status), ("reason", reason)):
                    item = self.table.item(row, KEYS.index(key))
                    if item is not None:
                        item.setText(text)

    def _folder(self, row: int | None) -> Path | None:
        row = self.table.currentRow() if row is None else row
        if not 0 <= row < len(self.runs):
            self.message.setText("choose a run first")
            return None
        return Path(self.runs[row]["folder"])

    def open_report(self, row: int | None = None) -> None:
        """Open the run's report, writing it first (off the Qt thread) if needed."""
        folder = self._folder(row)
        if folder is None:
            return
        self.message.setText(f"preparing the report of {folder.name}…")
        self.submit(f"report of {folder.name}", lambda: write_report(folder), self._show_report)

    def _show_report(self, path: Path) -> None:
        self.message.setText(f"report: {path}")
        self.open_url(QUrl.fromLocalFile(str(path)))

    def browse_frames(self, row: int | None = None) -> None:
        """Show the run's frames in the frame browser."""
        folder = self._folder(row)
        if folder is not None:
            self.browse.emit(str(folder))

    def open_folder(self, row: int | None = None) -> None:
        """Open the run's folder in the file manager."""
        folder = self._folder(row)
        if folder is not None:
            self.open_url(QUrl.fromLocalFile(str(folder)))
