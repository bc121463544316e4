"""Results at a glance: per zone and channel, what the run detected, the density and QC flags.

Numbers come from chipctl's own zone table (the report's): the final pass over each zone,
mean and spread across its fields, density per mm² of zone imaged and, for antibody zones,
minus the isotype control. "Detected" means counted spots, not corrected for detection
efficiency or crowding: the report gives the estimates with their intervals.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from PySide6.QtCore import Signal
from PySide6.QtGui import QColor
from PySide6.QtWidgets import QHeaderView, QTableWidget, QTableWidgetItem, QWidget

from gui.core import Bench, Geometry, RunFolder, ZoneChannel, number, zone_table
from gui.counts_plot import zone_colour
from gui.widgets import count_of

COLUMNS = ("zone", "channel", "fields", "per field", "total", "per mm²", "− isotype", "QC")
CV_FLAG = 0.3  # a spread across fields above 30 % is flagged
QC_ROOM_PX = 140  # the flags' column at least: two or three words a line


def qc_flags(item: ZoneChannel, saturated_frames: int) -> list[str]:
    """The QC flags of one zone/channel that can be told from the counts and frames."""
    flags = []
    if item.is_control:
        flags.append("isotype control")
    if item.fields < 2:
        flags.append("1 field: no spread")
    elif item.cv is not None and item.cv > CV_FLAG:
        flags.append(f"CV {100 * item.cv:.0f} % across fields")
    if item.mean_count == 0:
        flags.append("nothing detected")
    if saturated_frames:
        flags.append(f"saturated pixels in {count_of(saturated_frames, 'frame')}")
    if item.density_per_mm2 is None:
        flags.append("no density: frame size unknown")
    return flags


def run_counts(folder: Path) -> tuple[list[dict[str, Any]], float]:
    """A recorded run's counts rows and its start on the run clock (s), for the results table
    and the counts plot of a past run (RunNotFound if the folder is not a run's)."""
    run = RunFolder.open(folder)
    started = next((e.get("t_s") for e in run.events if e.get("event") == "run_started"), None)
    rows = [dict(r) for r in run.counts]
    if started is None:
        started = min((float(r["t_s"]) for r in rows if r.get("t_s") is not None), default=0.0)
    return rows, float(started or 0.0)


class ResultsTable(QTableWidget):
    """One row per zone and channel, refreshed as counts arrive; shows the current run's or,
    while one is browsed, a past run's."""

    widthNeeded = Signal(int)  # noqa: N815 - the width (px) every column needs to be in view

    def __init__(self, bench: Bench, parent: QWidget | None = None) -> None:
        super().__init__(0, len(COLUMNS), parent)
        self.bench = bench
        self.zones = list(bench.chip.zones)
        self.rows: list[dict[str, Any]] = []  # the rows shown
        self.live_rows: list[dict[str, Any]] = []  # the current run's
        self.browsing = False  # a past run's rows are shown
        self.table: list[ZoneChannel] = []
        self.field_geometry: Geometry | None = None
        self.saturated: dict[tuple[str, str], int] = {}
        self.setHorizontalHeaderLabels(COLUMNS)
        self.verticalHeader().hide()
        self.setEditTriggers(QTableWidget.EditTrigger.NoEditTriggers)
        header = self.horizontalHeader()
        header.setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        header.setSectionResizeMode(len(COLUMNS) - 1, QHeaderView.ResizeMode.Stretch)
        self.setWordWrap(True)  # the flags wrap in the room left: no sideways scroll
        self.verticalHeader().setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        self.setMinimumSize(160, 80)
        for col, tip in ((3, "detected per field: mean ± SD of counted spots (not corrected)"),
                         (4, "detected in every field of the zone together"),
                         (5, "detected per mm² of zone imaged, mean ± SD across fields"),
                         (6, "density minus the isotype control zone's, same channel"),
                         (7, "quality flags")):
            item = self.horizontalHeaderItem(col)
            if item is not None:
                item.setToolTip(tip)

    def clear_run(self) -> None:
        """A new run starts."""
        self.rows, self.live_rows, self.browsing = [], [], False
        self.saturated.clear()
        self.field_geometry = None
        self.table = []
        self.setRowCount(0)

    def set_frame_geometry(self, pixel_size_um: float, width_px: int, height_px: int) -> None:
        """The imaged field's size (from the frames), for densities."""
        if pixel_size_um > 0 and width_px > 0 and height_px > 0:
            self.field_geometry = Geometry(pixel_size_um, width_px, height_px)

    def note_saturated(self, zone: str, channel: str) -> None:
        """A frame of this zone and channel had saturated pixels."""
        key = (zone, channel)
        self.saturated[key] = self.saturated.get(key, 0) + 1

    def add_row(self, row: dict[str, Any]) -> None:
        """A counts row of the current run (chipctl's counted event)."""
        self.live_rows.append(dict(row))
        if not self.browsing:
            self.rows = self.live_rows
            self.update_table()

    def set_rows(self, rows: Sequence[dict[str, Any]]) -> None:
        """Show a past run's whole counts table (until show_current)."""
        self.browsing = True
        self.rows = [dict(r) for r in rows]
        self.update_table()

    def show_current(self) -> None:
        """Show the current run's rows again."""
        self.browsing = False
        self.rows = self.live_rows
        self.update_table()

    def update_table(self) -> None:
        """Recompute the zone table and show it."""
        self.table = zone_table(self.rows, self.field_geometry, self.bench) if self.rows else []
        self.setRowCount(len(self.table))
        for row, item in enumerate(self.table):
            cells = self._cells(item)
            for col, text in enumerate(cells):
                cell = QTableWidgetItem(text)
                cell.setToolTip(text)
                self.setItem(row, col, cell)
            zone_cell = self.item(row, 0)
            if zone_cell is not None:
                index = self.zones.index(item.zone) if item.zone in self.zones else len(self.zones)
                zone_cell.setForeground(QColor(*zone_colour(index)))
        self._fit_columns()

    def _fit_columns(self) -> None:
        """Every column in view without a sideways scroll: asks (widthNeeded) for the numbers'
        columns plus room for the flags, which wrap; the counts plot beside gives way."""
        header = self.horizontalHeader()
        numbers = sum(header.sectionSize(c) for c in range(len(COLUMNS) - 1))
        bar = self.verticalScrollBar()
        width = (numbers + QC_ROOM_PX + 2 * self.frameWidth()
                 + max(bar.sizeHint().width(), bar.width() if bar.isVisible() else 0))
        if width > self.width():
            self.widthNeeded.emit(width)

    def _cells(self, item: ZoneChannel) -> tuple[str, ...]:
        density = ("" if item.density_per_mm2 is None else
                   f"{_short(item.density_per_mm2, 0)} ± {_short(item.density_sd_per_mm2 or 0, 0)}")
        minus = ("" if item.subtracted_density_per_mm2 is None
                 else f"{item.subtracted_density_per_mm2:.0f}")
        saturated = 0 if self.browsing else self.saturated.get((item.zone, item.channel), 0)
        flags = qc_flags(item, saturated)
        return (item.zone, item.channel, str(item.fields),
                f"{_short(item.mean_count)} ± {_short(item.sd_count)}", str(item.total_count),
                density, minus, "; ".join(flags))


def _short(value: float, decimals: int = 1) -> str:
    """A count for the table: as it is while small, three significant digits from 1,000 on
    (45,300 rather than 45267.0: the columns stay narrow enough to be seen at once)."""
    return f"{value:.{decimals}f}" if abs(value) < 1000 else number(float(value))
