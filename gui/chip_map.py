"""The chip map: capture zones, the fields acquired in this run, and where the camera is.

Stage coordinates in um, y down as on the stage. Zones are drawn from the bench file (centre
and size), in the zone's colour of the counts plot; each acquired field is a small square the
size of the camera's field of view; the camera's field of view now is a red outline that
follows the stage (from the bench snapshot).
"""

from __future__ import annotations

from typing import Any

import pyqtgraph as pg
from PySide6.QtCore import QRectF
from PySide6.QtGui import QBrush, QColor, QPen
from PySide6.QtWidgets import QGraphicsRectItem, QVBoxLayout, QWidget

from gui.core import Bench
from gui.counts_plot import zone_colour
from gui.widgets import ElidedLabel


def _rect(cx: float, cy: float, w: float, h: float) -> QRectF:
    return QRectF(cx - w / 2, cy - h / 2, w, h)


class ChipMap(QWidget):
    """A map of the chip in stage coordinates."""

    def __init__(self, bench: Bench, field_um: tuple[float, float] = (0.0, 0.0),
                 parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.bench = bench
        self.field_um = field_um
        self.plot = pg.PlotWidget()
        self.plot.setMinimumSize(100, 100)
        self.plot.setAspectLocked(True)
        self.plot.invertY(True)
        self.plot.setLabel("bottom", "stage x (um)")
        self.plot.setLabel("left", "stage y (um)")
        self.caption = ElidedLabel("")
        layout = QVBoxLayout(self)
        layout.addWidget(self.plot, 1)
        layout.addWidget(self.caption)
        self.zone_items: dict[str, QGraphicsRectItem] = {}
        self.field_items: dict[tuple[Any, ...], QGraphicsRectItem] = {}
        self.camera = QGraphicsRectItem()
        self.camera.setPen(QPen(QColor("#d32f2f"), 0))
        self.camera.setZValue(10)
        self.camera.hide()
        self.plot.addItem(self.camera)
        self._draw_zones()

    def _draw_zones(self) -> None:
        for index, (name, zone) in enumerate(self.bench.chip.zones.items()):
            (cx, cy), (w, h) = zone.center_um, zone.size_um
            colour = QColor(*zone_colour(index))
            item = QGraphicsRectItem(_rect(cx, cy, w, h))
            item.setPen(QPen(colour, 0))
            fill = QColor(colour)
            fill.setAlpha(40)
            item.setBrush(QBrush(fill))
            self.plot.addItem(item)
            label = pg.TextItem(f"{name}\n{zone.antibody}", color=colour, anchor=(0.5, 1.0))
            label.setPos(cx, cy - h / 2)
            self.plot.addItem(label)
            self.zone_items[name] = item
        self.plot.autoRange()

    def set_field_size(self, width_um: float, height_um: float) -> None:
        """The camera's field of view on the chip."""
        self.field_um = (width_um, height_um)

    def clear_fields(self) -> None:
        """A new run starts: no field acquired yet."""
        for item in self.field_items.values():
            self.plot.removeItem(item)
        self.field_items.clear()
        self.caption.setText("")

    def add_field(self, zone: str, x_um: float | None, y_um: float | None) -> None:
        """A frame was acquired at this stage position."""
        w, h = self.field_um
        if x_um is None or y_um is None or w <= 0:
            return
        key = (round(x_um, 1), round(y_um, 1))
        if key in self.field_items:
            return
        zones = list(self.bench.chip.zones)
        colour = QColor(*zone_colour(zones.index(zone) if zone in zones else len(zones)))
        item = QGraphicsRectItem(_rect(x_um, y_um, w, h))
        item.setPen(QPen(colour.darker(150), 0))
        colour.setAlpha(140)
        item.setBrush(QBrush(colour))
        item.setZValue(5)
        self.plot.addItem(item)
        self.field_items[key] = item
        self.caption.setText(f"{len(self.field_items)} field"
                             f"{'' if len(self.field_items) == 1 else 's'} acquired")

    def show_camera(self, x_um: float, y_um: float) -> None:
        """Where the camera looks now."""
        w, h = self.field_um
        if w <= 0:
            w = h = 100.0
        self.camera.setRect(_rect(x_um, y_um, w, h))
        self.camera.show()
