"""Vesicle counts over time, one curve per capture zone and channel, growing live.

One colour per zone; channels differ by line style and symbol; a legend names each curve (a
row per zone, a column per channel) above the data: the count axis leaves it room, so no point
hides under it. A single point gets an axis of a few minutes around it, not a range of a
fraction of a second.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import pyqtgraph as pg
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QVBoxLayout, QWidget

from gui.widgets import ElidedLabel, count_of

ZONE_COLOURS = ((31, 119, 180), (255, 127, 14), (44, 160, 44), (214, 39, 40), (148, 103, 189),
                (140, 86, 75), (227, 119, 194), (127, 127, 127))
CHANNEL_STYLES = (Qt.PenStyle.SolidLine, Qt.PenStyle.DashLine, Qt.PenStyle.DotLine,
                  Qt.PenStyle.DashDotLine)
CHANNEL_SYMBOLS = ("o", "t", "s", "d")
MIN_SPAN_MIN = 2.0  # the narrowest time axis, minutes


@dataclass
class Series:
    """One zone/channel curve: a point per imaging pass, the mean over that pass's fields."""

    times_min: list[float] = field(default_factory=list)
    counts: list[float] = field(default_factory=list)
    _pass: tuple[Any, set[Any]] = field(default_factory=lambda: (None, set()))
    _sums: list[tuple[float, float, int]] = field(default_factory=list)

    def add(self, step: Any, field_index: Any, t_min: float, count: float) -> None:
        """Add a count; the fields of one pass over a zone are averaged into one point (a
        field seen again, as a monitor step images the same field, starts a new point)."""
        last_step, fields = self._pass
        if self._sums and last_step == step and field_index not in fields:
            fields.add(field_index)
            t_sum, c_sum, n = self._sums[-1]
            self._sums[-1] = (t_sum + t_min, c_sum + count, n + 1)
        else:
            self._pass = (step, {field_index})
            self._sums.append((t_min, count, 1))
            self.times_min.append(t_min)
            self.counts.append(count)
        t_sum, c_sum, n = self._sums[-1]
        self.times_min[-1], self.counts[-1] = t_sum / n, c_sum / n


def zone_colour(zone_index: int) -> tuple[int, int, int]:
    """The colour of a zone (the same in the plot, the results table and the chip map)."""
    return ZONE_COLOURS[zone_index % len(ZONE_COLOURS)]


def curve_style(zone_index: int, channel_index: int) -> dict[str, Any]:
    """Pen and symbol of one zone/channel curve."""
    colour = zone_colour(zone_index)
    pen = pg.mkPen(colour, width=2, style=CHANNEL_STYLES[channel_index % len(CHANNEL_STYLES)])
    return {"pen": pen, "symbol": CHANNEL_SYMBOLS[channel_index % len(CHANNEL_SYMBOLS)],
            "symbolSize": 8, "symbolBrush": colour, "symbolPen": colour}


def axis_range(values: list[float], min_span: float) -> tuple[float, float]:
    """A range showing every value with a margin, at least `min_span` wide."""
    low, high = min(values), max(values)
    span = max(high - low, min_span)
    middle = (low + high) / 2
    return middle - span * 0.55, middle + span * 0.55


class CountsPlot(QWidget):
    """The counts plot: x protocol time (min), y vesicles per field."""

    def __init__(self, zones: Sequence[str] = (), parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.bench_zones = list(zones)
        self.plot = pg.PlotWidget()
        self.plot.setMinimumSize(160, 120)
        self.plot.setLabel("bottom", "time since the run started (min)")
        self.plot.setLabel("left", "vesicles per field")
        self.plot.showGrid(x=True, y=True, alpha=0.3)
        self.legend = self.plot.addLegend(offset=(10, 4), brush=(0, 0, 0, 160))
        self.plot.getViewBox().sigResized.connect(lambda _view: self._fit_axes())
        self.summary = ElidedLabel("no counts yet")
        layout = QVBoxLayout(self)
        layout.addWidget(self.plot, 1)
        layout.addWidget(self.summary)
        self.series: dict[tuple[str, str], Series] = {}
        self.curves: dict[tuple[str, str], pg.PlotDataItem] = {}
        self.rows = 0
        self.started_s = 0.0
        self.zones: list[str] = list(zones)  # the bench's zones, then others: zone i, colour i
        self.channels: list[str] = []

    def clear(self, started_s: float = 0.0) -> None:
        """Forget every curve: a new run starts at `started_s` on the engine's clock."""
        self.started_s = started_s
        for curve in self.curves.values():
            self.plot.removeItem(curve)
        self.legend.clear()
        self.series.clear()
        self.curves.clear()
        self.zones[:] = self.bench_zones
        self.channels.clear()
        self.legend.setColumnCount(1)
        self.rows = 0
        self.summary.setText("no counts yet")

    def show_rows(self, rows: Sequence[dict[str, Any]], started_s: float) -> None:
        """Plot a whole counts table (a past run's, or the current run's again)."""
        self.clear(started_s)
        for row in rows:
            self.add_row(row)

    def add_row(self, row: dict[str, Any]) -> None:
        """Add one counts row (chipctl's counted event)."""
        zone, channel = str(row.get("zone", "")), str(row.get("channel", ""))
        name = (zone, channel)
        if name not in self.series:
            self._new_curve(name)
        t_min = (float(row.get("t_s") or 0.0) - self.started_s) / 60.0
        self.series[name].add(row.get("step"), row.get("field"), t_min, float(row["count"]))
        series = self.series[name]
        self.curves[name].setData(series.times_min, series.counts)
        self.rows += 1
        self.summary.setText(self._summary())
        self._fit_axes()

    def _new_curve(self, name: tuple[str, str]) -> None:
        zone, channel = name
        if zone not in self.zones:
            self.zones.append(zone)
        if channel not in self.channels:
            self.channels.append(channel)
            self.legend.setColumnCount(len(self.channels))
        style = curve_style(self.zones.index(zone), self.channels.index(channel))
        self.series[name] = Series()
        self.curves[name] = self.plot.plot([], [], name=f"{zone} {channel}", **style)

    def _fit_axes(self) -> None:
        times = [t for s in self.series.values() for t in s.times_min]
        counts = [c for s in self.series.values() for c in s.counts]
        if times:
            self.plot.setXRange(*axis_range(times, MIN_SPAN_MIN), padding=0)
            self.plot.setYRange(0.0, self.count_axis_top(max(counts)), padding=0)

    def count_axis_top(self, highest: float) -> float:
        """The top of the count axis (which starts at 0): the highest point a little below
        the legend's lower edge."""
        view_h = self.plot.getViewBox().height()
        legend_h = self.legend.boundingRect().height() + 14 if self.series else 0.0
        share = min(legend_h / view_h, 0.6) if view_h > 0 else 0.0
        return (highest * 1.08 + 1.0) / (1.0 - share)

    def latest(self, zone: str, channel: str) -> float | None:
        """The newest point of a curve, or None."""
        series = self.series.get((zone, channel))
        return series.counts[-1] if series and series.counts else None

    def _summary(self) -> str:
        parts = [f"{zone} {channel}: {series.counts[-1]:.0f}"
                 for (zone, channel), series in sorted(self.series.items())]
        return f"{count_of(self.rows, 'frame')} counted · latest " + ", ".join(parts)
