"""Run history: the recorded runs, newest first, with the report one click away."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from PySide6.QtCore import Qt, QUrl
from PySide6.QtGui import QDesktopServices
from PySide6.QtWidgets import (
    QHBoxLayout,
    QLabel,
    QPushButton,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

COLUMNS = ("run", "protocol", "status", "started", "reason")
REPORT_NAMES = ("report.html", "report.pdf", "report.md")


def list_runs(root: Path) -> list[dict[str, Any]]:
    """Every run folder under `root` (its run.json), newest first; unreadable ones marked."""
    runs = []
    for info_path in root.glob("*/run.json"):
        try:
            info = json.loads(info_path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            info = {"run_id": info_path.parent.name, "status": "unreadable", "reason": str(exc)}
        info["folder"] = str(info_path.parent)
        runs.append(info)
    return sorted(runs, key=lambda info: str(info.get("started") or info["run_id"]), reverse=True)


def find_report(folder: Path) -> Path | None:
    """The run's report file, if one was written."""
    for name in REPORT_NAMES:
        if (folder / name).is_file():
            return folder / name
    return None


class RunHistory(QWidget):
    """A table of runs; double-click or "Report" opens the run's report."""

    def __init__(self, runs_dir: Path, make_report: Callable[[Path], Path] | None = None,
                 open_url: Callable[[QUrl], Any] = QDesktopServices.openUrl,
                 parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.runs_dir = runs_dir
        self.make_report = make_report
        self.open_url = open_url
        self.runs: list[dict[str, Any]] = []
        self.table = QTableWidget(0, len(COLUMNS))
        self.table.setHorizontalHeaderLabels(COLUMNS)
        self.table.setSelectionBehavior(QTableWidget.SelectionBehavior.SelectRows)
        self.table.setEditTriggers(QTableWidget.EditTrigger.NoEditTriggers)
        self.table.cellDoubleClicked.connect(lambda row, _col: self.open_report(row))
        self.message = QLabel(f"runs in {runs_dir}")
        self.message.setWordWrap(True)
        buttons = QHBoxLayout()
        for text, action in (("Refresh", self.refresh), ("Report", self.open_report),
                             ("Open folder", self.open_folder)):
            button = QPushButton(text)
            button.clicked.connect(lambda _=False, action=action: action())
            buttons.addWidget(button)
        buttons.addStretch(1)
        layout = QVBoxLayout(self)
        layout.addLayout(buttons)
        layout.addWidget(self.table, 1)
        layout.addWidget(self.message)
        self.refresh()

    def refresh(self) -> None:
        """Re-read the runs."""
        self.runs = list_runs(self.runs_dir) if self.runs_dir.is_dir() else []
        self.table.setRowCount(len(self.runs))
        for row, info in enumerate(self.runs):
            values = (info.get("run_id", ""), info.get("protocol", ""), info.get("status", ""),
                      info.get("started", ""), info.get("reason", ""))
            for col, value in enumerate(values):
                item = QTableWidgetItem(str(value or ""))
                item.setData(Qt.ItemDataRole.UserRole, info["folder"])
                self.table.setItem(row, col, item)
        self.table.resizeColumnsToContents()

    def mark(self, folder: Path, status: str, reason: str) -> None:
        """Show a run's end as the window heard it (its run.json may be a moment behind)."""
        for row, info in enumerate(self.runs):
            if Path(info["folder"]) == Path(folder) and info.get("status") == "running":
                info.update(status=status, reason=reason)
                self.table.item(row, 2).setText(status)
                self.table.item(row, 4).setText(reason)

    def _folder(self, row: int | None) -> Path | None:
        row = self.table.currentRow() if row is None else row
        if not 0 <= row < len(self.runs):
            self.message.setText("choose a run first")
            return None
        return Path(self.runs[row]["folder"])

    def open_report(self, row: int | None = None) -> Path | None:
        """Open the run's report (written first if missing and chipctl can write it)."""
        folder = self._folder(row)
        if folder is None:
            return None
        report = find_report(folder)
        if report is None and self.make_report is not None:
            try:
                report = self.make_report(folder)
            except Exception as exc:  # noqa: BLE001 - shown to the operator
                self.message.setText(f"no report for {folder.name}: {type(exc).__name__}: {exc}")
                return None
        target = report or folder / "run.json"
        self.message.setText(f"opened {target}")
        self.open_url(QUrl.fromLocalFile(str(target)))
        return target

    def open_folder(self, row: int | None = None) -> None:
        """Open the run's folder in the file manager."""
        folder = self._folder(row)
        if folder is not None:
            self.open_url(QUrl.fromLocalFile(str(folder)))
