"""The live image: levels and histogram, channel choice, spot overlay, labels and a scale bar.

A QTimer pulls the newest prepared frame at display rate (latest frame wins); the binning to
screen size and, with "mark spots" on, the counting of every detected vesicle happen on the
FramePreparer's thread, so the Qt thread only paints.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import Qt, QTimer
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from chipctl.devices.interfaces import Frame
from gui.frames import ANY_CHANNEL, FramePreparer, FrameSlot, Shown, frame_channel

DISPLAY_INTERVAL_MS = 40  # 25 Hz: above the 20 fps a camera streams at
NICE_LENGTHS_UM = (1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000)


def scale_bar_um(field_width_um: float) -> float:
    """A round scale-bar length of about a fifth of the field width."""
    target = field_width_um / 5
    fitting = [length for length in NICE_LENGTHS_UM if length <= target]
    return float(fitting[-1] if fitting else NICE_LENGTHS_UM[0])


def describe_frame(frame: Frame) -> str:
    """Zone, field, channel and exposure of a frame, for its caption."""
    meta = frame.metadata
    raw_truth = meta.get("truth")
    truth: dict[str, Any] = raw_truth if isinstance(raw_truth, dict) else {}
    zone = meta.get("zone") or truth.get("zone") or "no zone"
    parts = [f"zone {zone}"]
    if meta.get("field") is not None:
        parts.append(f"field {int(meta['field']) + 1}")
    parts.append(frame_channel(frame) or "no channel")
    if meta.get("exposure_ms") is not None:
        parts.append(f"{float(meta['exposure_ms']):g} ms")
    raw_stage = meta.get("stage")
    stage: dict[str, Any] = raw_stage if isinstance(raw_stage, dict) else {}
    x, y = meta.get("stage_x_um", stage.get("x")), meta.get("stage_y_um", stage.get("y"))
    if x is not None and y is not None:
        parts.append(f"stage ({float(x):.0f}, {float(y):.0f}) um")
    return " · ".join(parts)


class LiveView(QWidget):
    """The live image panel."""

    def __init__(self, slot: FrameSlot, channels: Sequence[str], pixel_size_um: float,
                 counter: Callable[[Any], Any] | None = None,
                 on_error: Callable[[str], None] | None = None,
                 parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.slot = slot
        self.pixel_size_um = pixel_size_um
        self.preparer = FramePreparer(slot, counter, on_error)
        self.shown: Shown | None = None
        self.frames_shown = 0
        self._times: list[float] = []
        self._auto_levels = True
        self._bar_px = 0.0
        self._build(channels)
        self.timer = QTimer(self)
        self.timer.setTimerType(Qt.TimerType.PreciseTimer)
        self.timer.setInterval(DISPLAY_INTERVAL_MS)
        self.timer.timeout.connect(self.refresh)
        self.timer.start()

    # -- construction -----------------------------------------------------------------------
    def _build(self, channels: Sequence[str]) -> None:
        self.channel_box = QComboBox()
        self.channel_box.addItem("all channels", ANY_CHANNEL)
        for channel in channels:
            self.channel_box.addItem(channel, channel)
        self.channel_box.currentIndexChanged.connect(self._channel_chosen)
        self.spots_box = QCheckBox("mark spots")
        self.spots_box.toggled.connect(self._spots_toggled)
        self.levels_button = QPushButton("auto levels")
        self.levels_button.clicked.connect(self.auto_levels)
        self.caption = QLabel("no frame yet")
        self.caption.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        controls = QHBoxLayout()
        for widget in (QLabel("channel"), self.channel_box, self.spots_box, self.levels_button):
            controls.addWidget(widget)
        controls.addStretch(1)
        layout = QVBoxLayout(self)
        layout.addLayout(controls)
        layout.addWidget(self._graphics(), 1)
        layout.addWidget(self.caption)

    def _graphics(self) -> pg.GraphicsLayoutWidget:
        self.graphics = pg.GraphicsLayoutWidget()
        self.view = self.graphics.addViewBox(lockAspect=True, invertY=True)
        self.image = pg.ImageItem(axisOrder="row-major")
        self.view.addItem(self.image)
        self.spots = pg.ScatterPlotItem(size=9, pen=pg.mkPen("y", width=1), brush=None,
                                        symbol="o", pxMode=True)
        self.view.addItem(self.spots)
        self.histogram = pg.HistogramLUTItem(image=self.image)
        self.histogram.sigLevelsChanged.connect(self._levels_changed)
        self.graphics.addItem(self.histogram)
        self.scale_bar = pg.ScaleBar(size=10, width=6, brush="w", suffix="px", offset=(-20, -20))
        self.scale_bar.setParentItem(self.view)
        self.scale_bar.hide()
        return self.graphics

    # -- controls ---------------------------------------------------------------------------
    @property
    def channel(self) -> str:
        """The channel shown ('' = whichever came last)."""
        return str(self.channel_box.currentData())

    def _channel_chosen(self) -> None:
        self.preparer.channel = self.channel
        self.shown = None

    def _spots_toggled(self, on: bool) -> None:
        if on:
            self.preparer.count_spots.set()
        else:
            self.preparer.count_spots.clear()
            self.spots.clear()
        self.shown = None

    def auto_levels(self) -> None:
        """Fit the display levels to the next frame."""
        self._auto_levels = True
        self.shown = None

    def _levels_changed(self) -> None:
        self._auto_levels = False

    # -- display ----------------------------------------------------------------------------
    def refresh(self) -> None:
        """Show the newest prepared frame if it is new (called by the display timer)."""
        shown = self.preparer.result()
        if shown is None or shown.seq == getattr(self.shown, "seq", -1):
            return
        self.show_frame(shown)

    def show_frame(self, shown: Shown) -> None:
        """Display one frame, its spots, caption and scale bar."""
        image = shown.display
        auto = self._auto_levels
        self.image.setImage(image, autoLevels=auto)
        height, width = image.shape[0] * shown.bin, image.shape[1] * shown.bin
        self.image.setRect(0, 0, width, height)  # view coordinates stay sensor pixels
        if auto:
            self.histogram.setLevels(*shown.levels)
            self._auto_levels = False
        self._show_spots(shown)
        self._update_scale_bar(shown.frame, width)
        self.shown = shown
        self.frames_shown += 1
        self._times = [t for t in self._times if t > time.monotonic() - 2.0] + [time.monotonic()]
        self.caption.setText(self._caption(shown))

    def _show_spots(self, shown: Shown) -> None:
        result = shown.spots
        if result is None or not getattr(result, "count", 0):
            self.spots.clear()
            return
        spots = result.spots  # pixel centres; pixel (0, 0) covers [0, 1) in the view
        self.spots.setData(x=np.asarray(spots["x"]) + 0.5, y=np.asarray(spots["y"]) + 0.5)

    def _update_scale_bar(self, frame: Frame, width_px: int) -> None:
        pixel = self.pixel_size_um * float(frame.metadata.get("binning", 1) or 1)
        if pixel <= 0 or not math.isfinite(pixel):
            self.scale_bar.hide()
            return
        length_um = scale_bar_um(width_px * pixel)
        bar_px = length_um / pixel
        if bar_px != self._bar_px:
            self.scale_bar.size = bar_px
            self.scale_bar.text.setText(f"{length_um:g} µm")
            self.scale_bar.updateBar()
            self._bar_px = bar_px
        self.scale_bar.show()

    def _caption(self, shown: Shown) -> str:
        fps = len(self._times) / 2.0
        spots = shown.spots
        count = f" · {spots.count} spots marked" if spots is not None else ""
        return f"{describe_frame(shown.frame)}{count} · {fps:.0f} frames/s shown"

    def close_down(self) -> None:
        """Stop the display timer and the overlay counter."""
        self.timer.stop()
        self.preparer.stop()
