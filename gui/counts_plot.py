"""Vesicle counts over time, one curve per capture zone and channel, growing live."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pyqtgraph as pg
from PySide6.QtWidgets import QLabel, QVBoxLayout, QWidget

CHANNEL_COLOURS = {"AF488": (60, 200, 90), "AF555": (250, 170, 40), "AF647": (230, 60, 60)}
ZONE_STYLES = ("solid", "dash", "dot", "dashdot")


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


def _pen(zone_index: int, channel: str, channel_index: int) -> Any:
    colour = CHANNEL_COLOURS.get(channel, pg.intColor(channel_index, hues=8))
    style = ZONE_STYLES[zone_index % len(ZONE_STYLES)]
    styles = {"solid": 1, "dash": 2, "dot": 3, "dashdot": 4}
    return pg.mkPen(colour, width=2, style=pg.QtCore.Qt.PenStyle(styles[style]))


class CountsPlot(QWidget):
    """The counts plot: x protocol time (min), y vesicles per field."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.plot = pg.PlotWidget()
        self.plot.setLabel("bottom", "time since the run started (min)")
        self.plot.setLabel("left", "vesicles per field")
        self.plot.showGrid(x=True, y=True, alpha=0.3)
        self.legend = self.plot.addLegend(offset=(10, 10))
        self.summary = QLabel("no counts yet")
        layout = QVBoxLayout(self)
        layout.addWidget(self.plot, 1)
        layout.addWidget(self.summary)
        self.series: dict[tuple[str, str], Series] = {}
        self.curves: dict[tuple[str, str], pg.PlotDataItem] = {}
        self.rows = 0
        self.started_s = 0.0

    def clear(self, started_s: float = 0.0) -> None:
        """Forget every curve: a new run starts at `started_s` on the engine's clock."""
        self.started_s = started_s
        for curve in self.curves.values():
            self.plot.removeItem(curve)
        self.legend.clear()
        self.series.clear()
        self.curves.clear()
        self.rows = 0
        self.summary.setText("no counts yet")

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

    def _new_curve(self, name: tuple[str, str]) -> None:
        zones = sorted({zone for zone, _ in self.series} | {name[0]})
        channels = sorted({channel for _, channel in self.series} | {name[1]})
        pen = _pen(zones.index(name[0]), name[1], channels.index(name[1]))
        self.series[name] = Series()
        self.curves[name] = self.plot.plot([], [], pen=pen, symbol="o", symbolSize=6,
                                           symbolBrush=pen.color(), name=f"{name[0]} {name[1]}")

    def latest(self, zone: str, channel: str) -> float | None:
        """The newest point of a curve, or None."""
        series = self.series.get((zone, channel))
        return series.counts[-1] if series and series.counts else None

    def _summary(self) -> str:
        parts = [f"{zone} {channel}: {series.counts[-1]:.0f}"
                 for (zone, channel), series in sorted(self.series.items())]
        frames = "1 frame" if self.rows == 1 else f"{self.rows} frames"
        return f"{frames} counted · latest " + ", ".join(parts)
