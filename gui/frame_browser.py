"""The frame browser: every frame of the current run or of any recorded run, by field, zone,
channel and time, with what the run counted in it. Choosing one shows it in the live view
with the run's own detections (the counted frame's result, or a past run's spots.csv); the
live view's "back to live" returns to the stream.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PySide6.QtCore import Qt, QTimer, Signal
from PySide6.QtGui import QShowEvent
from PySide6.QtWidgets import (
    QComboBox,
    QHeaderView,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from gui.core import (
    SPOTS_NAME,
    CountedFrame,
    CountResult,
    Frame,
    RunIndex,
    RunNotFound,
    read_detections,
)
from gui.frame_archive import FrameRecord, FrameUnreadable, RunArchive, load_kept, past_run
from gui.widgets import ElidedLabel

CURRENT = "current run"
COLUMNS = ("#", "min", "zone", "field", "channel", "count", "sat. px", "image")


@dataclass(frozen=True)
class Chosen:
    """Frames to show: the chosen one last, with the other channels of its field before it."""

    frames: list[Frame]
    record: FrameRecord
    run: str


def _cell(text: str, sort_value: float | None = None) -> QTableWidgetItem:
    item = QTableWidgetItem(text)
    if sort_value is not None:
        item.setData(Qt.ItemDataRole.UserRole, sort_value)
    item.setFlags(item.flags() & ~Qt.ItemFlag.ItemIsEditable)
    return item


class FrameBrowser(QWidget):
    """A run chooser and a table of its frames."""

    chosen = Signal(object)  # Chosen
    failed = Signal(str, str)  # source, message
    runChosen = Signal(str)  # noqa: N815 - Qt's style; CURRENT or a past run's folder
    widthNeeded = Signal(int)  # noqa: N815 - the width (px) every column needs to be in view

    def __init__(self, archive: RunArchive, runs_dir: Path, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.archive = archive
        self.index = RunIndex(runs_dir)
        self.records: list[FrameRecord] = []
        self._browsed = CURRENT
        self.detections: dict[int, CountResult] = {}  # a past run's, from its spots.csv
        self.run_box = QComboBox()
        self.run_box.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon)
        self.run_box.setMinimumContentsLength(6)
        self.run_box.currentIndexChanged.connect(self.reload)
        self.table = QTableWidget(0, len(COLUMNS))
        self.table.setHorizontalHeaderLabels(COLUMNS)
        self.table.setSelectionBehavior(QTableWidget.SelectionBehavior.SelectRows)
        self.table.setSelectionMode(QTableWidget.SelectionMode.SingleSelection)
        self.table.verticalHeader().hide()
        self.table.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        self.table.itemSelectionChanged.connect(self._selected)
        self.message = ElidedLabel("")
        layout = QVBoxLayout(self)
        layout.addWidget(self.run_box)
        layout.addWidget(self.table, 1)
        layout.addWidget(self.message)
        self.timer = QTimer(self)
        self.timer.setInterval(1000)
        self.timer.timeout.connect(self._follow_current)
        self.timer.start()
        self.refresh_runs()

    # -- which run --------------------------------------------------------------------------
    def refresh_runs(self) -> None:
        """List the current run and every recorded run (newest first)."""
        keep = self.run_box.currentData()
        self.run_box.blockSignals(True)
        self.run_box.clear()
        self.run_box.addItem(CURRENT, CURRENT)
        for info in reversed(self.index.list()):
            folder = str(info.get("folder", ""))
            self.run_box.addItem(f"{info.get('run_id')} ({info.get('status')})", folder)
        found = self.run_box.findData(keep) if keep is not None else 0
        self.run_box.setCurrentIndex(max(found, 0))
        self.run_box.blockSignals(False)
        self.reload()

    def show_run(self, folder: Path | None) -> None:
        """Browse a recorded run (None: the current one)."""
        self.refresh_runs()
        found = self.run_box.findData(str(folder)) if folder is not None else 0
        self.run_box.setCurrentIndex(max(found, 0))
        self.reload()

    @property
    def run(self) -> str:
        """CURRENT or the folder of the run browsed."""
        return str(self.run_box.currentData() or CURRENT)

    # -- the table --------------------------------------------------------------------------
    def reload(self) -> None:
        """Read the frames of the run chosen."""
        self.detections = {}
        if self.run == CURRENT:
            records = self.archive.records()
        else:
            try:
                records = past_run(Path(self.run))
                self.detections = read_detections(Path(self.run) / SPOTS_NAME)
            except (RunNotFound, OSError) as exc:
                self.failed.emit("frame browser", str(exc))
                records = []
        self._fill(records)
        if self.run != self._browsed:
            self._browsed = self.run
            self.runChosen.emit(self.run)

    def _follow_current(self) -> None:
        if self.run == CURRENT and len(self.archive.records()) != len(self.records):
            self.reload()

    def _fill(self, records: list[FrameRecord]) -> None:
        selected = self.table.currentRow()
        self.records = records
        self.table.blockSignals(True)
        self.table.setRowCount(len(records))
        start = next((r.t_s for r in records if r.t_s is not None), 0.0) or 0.0
        in_memory = set(self.archive.in_memory()) if self.run == CURRENT else set()
        cached = set(self.archive.spilled()) if self.run == CURRENT else set()
        for row, rec in enumerate(records):
            minutes = (rec.t_s - start) / 60 if rec.t_s is not None else None
            kept = ("file" if rec.file else "not kept") if self.run != CURRENT else (
                "memory" if rec.seq in in_memory else "cache" if rec.seq in cached else "file")
            cells = (str(rec.seq + 1), "" if minutes is None else f"{minutes:.2f}", rec.zone,
                     "" if rec.field is None else str(rec.field), rec.channel,
                     "" if rec.count is None else str(rec.count),
                     "" if rec.saturated is None else str(rec.saturated), kept)
            for col, text in enumerate(cells):
                self.table.setItem(row, col, _cell(text))
        if 0 <= selected < len(records):
            self.table.selectRow(selected)
        self.table.blockSignals(False)
        self._fit_columns()
        self.message.setText(f"{len(records)} frame{'' if len(records) == 1 else 's'}"
                             + ("" if self.run == CURRENT else f" in {Path(self.run).name}"))

    def _fit_columns(self) -> None:
        """Every column in view without a horizontal scroll where the screen allows: asks
        (widthNeeded) for the width the table's columns take; the window widens the dock
        from the live view's side (on a screen too small the table scrolls)."""
        table = self.table
        table.resizeColumnsToContents()
        bar = table.verticalScrollBar()
        width = (table.horizontalHeader().length() + 2 * table.frameWidth()
                 + max(bar.sizeHint().width(), bar.width() if bar.isVisible() else 0)
                 + self.width() - table.width())
        if width > self.width():
            self.widthNeeded.emit(width)

    def showEvent(self, event: QShowEvent) -> None:  # noqa: N802 - Qt's name
        """Brought to the front (its dock's tab): the columns in view."""
        super().showEvent(event)
        self._fit_columns()

    def choose(self, row: int) -> None:
        """Show the frame of a table row."""
        self.table.setCurrentCell(row, 0)

    def _selected(self) -> None:
        row = self.table.currentRow()
        if not 0 <= row < len(self.records):
            return
        record = self.records[row]
        same_field = [r for r in self.records if r.place == record.place and r.seq != record.seq
                      and r.channel != record.channel]
        image = self._image(record)
        if image is None:
            self.message.setText(f"frame {record.seq + 1}: the run did not keep its image")
            return
        others = [f for f in (self._image(r) for r in same_field) if f is not None]
        self.chosen.emit(Chosen([*others, image], record, self.run))

    def _image(self, record: FrameRecord) -> Frame | None:
        try:
            if self.run == CURRENT:
                frame = self.archive.frame(record.seq)
            else:
                frame = load_kept(record.file) if record.file is not None else None
        except FrameUnreadable as exc:
            self.failed.emit("frame browser", str(exc))
            return None
        if frame is None:
            return None
        meta = {**frame.metadata, "zone": record.zone, "channel": record.channel,
                "field": record.field}
        result = self._detections(record, frame)
        return CountedFrame(frame.image, meta, result) if result is not None else Frame(
            frame.image, meta)

    def _detections(self, record: FrameRecord, frame: Frame) -> CountResult | None:
        """What the run found in the frame: its own count, never a recount."""
        if isinstance(frame, CountedFrame):
            return frame.result
        found = self.detections.get(record.seq)
        if found is None and record.count == 0:  # spots.csv has no row for an empty frame
            found = CountResult.from_xy(np.zeros((0, 2)), shape=np.asarray(frame.image).shape)
        return found
