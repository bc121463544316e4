"""The live image: levels and histogram, channel and colour map, a composite of the channels,
spot overlay, pixel value under the cursor, saturation warning, fit and 1:1 zoom, scale bar.

A QTimer pulls the newest prepared frame at display rate (latest frame wins); the binning to
screen size and, with "mark spots" on, the counting of every detected vesicle happen on the
FramePreparer's thread, so the Qt thread only paints. The controls act on the frame on screen:
changing the channel or the overlay prepares it again. A frame chosen in the frame browser is
shown the same way (pinned) until "Back to live".
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
    QGridLayout,
    QLabel,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from gui.core import Frame
from gui.frames import (
    ANY_CHANNEL,
    COMPOSITE,
    FramePreparer,
    FrameSlot,
    Shown,
    channel_rgb,
    frame_channel,
    full_scale,
)
from gui.widgets import ElidedLabel, count_of

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
    if meta.get("field") is not None:  # numbered from 1 in the run's records, as people count
        parts.append(f"field {int(meta['field'])}")
    parts.append(frame_channel(frame) or "no channel")
    if meta.get("exposure_ms") is not None:
        parts.append(f"{float(meta['exposure_ms']):g} ms")
    raw_stage = meta.get("stage")
    stage: dict[str, Any] = raw_stage if isinstance(raw_stage, dict) else {}
    x = meta.get("stage_x_um", meta.get("x_um", stage.get("x")))
    y = meta.get("stage_y_um", meta.get("y_um", stage.get("y")))
    if x is not None and y is not None:
        parts.append(f"stage ({float(x):.0f}, {float(y):.0f}) um")
    return " · ".join(parts)


def spots_text(count: int) -> str:
    """'1 spot', '2 spots'."""
    return count_of(count, "spot")


def colour_map(channel: str, grey: bool) -> pg.ColorMap:
    """Black to the channel's colour (or to white)."""
    top = (1.0, 1.0, 1.0) if grey or not channel else channel_rgb(channel)
    return pg.ColorMap([0.0, 1.0], [(0, 0, 0), tuple(int(255 * c) for c in top)])


def pixel_text(shown: Shown, x: float, y: float) -> str:
    """The sensor pixel under (x, y) in view coordinates and its value in every layer."""
    col, row = int(math.floor(x)), int(math.floor(y))
    layers = shown.layers or ((frame_channel(shown.frame), shown.frame),)
    values = []
    for channel, frame in layers:
        image = np.asarray(frame.image)
        if not (0 <= row < image.shape[0] and 0 <= col < image.shape[1]):
            return ""
        value = float(image[row, col])
        values.append(f"{channel + ' ' if channel else ''}{value:g}"
                      + (" (saturated)" if value >= full_scale(frame) else ""))
    return f"pixel x {col}, y {row}: " + ", ".join(values) + " ADU"


class LiveView(QWidget):
    """The live image panel."""

    def __init__(self, slot: FrameSlot, channels: Sequence[str], pixel_size_um: float,
                 counter: Callable[[Any], Any] | None = None,
                 on_error: Callable[[str], None] | None = None,
                 parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.slot = slot
        self.pixel_size_um = pixel_size_um
        self.preparer = FramePreparer(slot, counter, on_error, tuple(channels))
        self.shown: Shown | None = None
        self.frames_shown = 0
        self._times: list[float] = []
        self._auto_levels = True
        self._bar_px = 0.0
        self._cmap_key: tuple[str, bool] | None = None
        self.pinned_label = ""
        self._pens: dict[str, Any] = {}  # the overlay's pen per channel ('' = one channel)
        self._build(channels)
        self.timer = QTimer(self)
        self.timer.setTimerType(Qt.TimerType.PreciseTimer)
        self.timer.setInterval(DISPLAY_INTERVAL_MS)
        self.timer.timeout.connect(self.refresh)
        self.timer.start()

    # -- construction -----------------------------------------------------------------------
    def _build(self, channels: Sequence[str]) -> None:
        self.channel_box = QComboBox()
        self.channel_box.setSizeAdjustPolicy(
            QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon)
        self.channel_box.setMinimumContentsLength(8)
        self.channel_box.addItem("newest frame", ANY_CHANNEL)
        for channel in channels:
            self.channel_box.addItem(channel, channel)
        if len(channels) > 1:
            self.channel_box.addItem("composite", COMPOSITE)
        self.channel_box.currentIndexChanged.connect(self._channel_chosen)
        self.grey_box = QCheckBox("grey")
        self.grey_box.setToolTip("grey levels instead of the channel's colour")
        self.grey_box.toggled.connect(lambda _on: self._redraw())
        self.spots_box = QCheckBox("mark spots")
        self.spots_box.toggled.connect(self._spots_toggled)
        self.levels_button = QPushButton("auto levels")
        self.levels_button.clicked.connect(self.auto_levels)
        self.fit_button = QPushButton("fit")
        self.fit_button.clicked.connect(self.zoom_fit)
        self.one_button = QPushButton("1:1")
        self.one_button.setToolTip("one sensor pixel per screen pixel")
        self.one_button.clicked.connect(self.zoom_one_to_one)
        self.live_button = QPushButton("back to live")
        self.live_button.clicked.connect(self.back_to_live)
        self.live_button.hide()
        self.banner = ElidedLabel("")
        self.caption = ElidedLabel("no frame yet")
        self.pixel = ElidedLabel("")
        self.saturation = ElidedLabel("")
        controls = QGridLayout()  # two rows, so a narrow window still shows every control
        rows = ((QLabel("channel"), self.channel_box, self.grey_box, self.spots_box),
                (self.levels_button, self.fit_button, self.one_button, self.live_button))
        for row, widgets in enumerate(rows):
            for col, widget in enumerate(widgets):
                controls.addWidget(widget, row, col)
        controls.setColumnStretch(4, 1)
        layout = QVBoxLayout(self)
        layout.addLayout(controls)
        layout.addWidget(self.banner)
        layout.addWidget(self._graphics(), 1)
        layout.addWidget(self.caption)
        layout.addWidget(self.pixel)
        layout.addWidget(self.saturation)

    def _graphics(self) -> pg.GraphicsLayoutWidget:
        self.graphics = pg.GraphicsLayoutWidget()
        self.graphics.setMinimumSize(160, 120)
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
        self.graphics.scene().sigMouseMoved.connect(self._mouse_moved)
        return self.graphics

    # -- controls ---------------------------------------------------------------------------
    @property
    def channel(self) -> str:
        """The channel shown ('' = whichever came last, 'composite' = every channel)."""
        return str(self.channel_box.currentData())

    def _channel_chosen(self) -> None:
        self.preparer.channel = self.channel
        self._auto_levels = True
        self.preparer.redo()

    def _spots_toggled(self, on: bool) -> None:
        if on:
            self.preparer.count_spots.set()
        else:
            self.preparer.count_spots.clear()
            self.spots.clear()
        self.preparer.redo()

    def auto_levels(self) -> None:
        """Fit the display levels to the frame on screen."""
        self._auto_levels = True
        if self.shown is not None:
            self.show_frame(self.shown)

    def _levels_changed(self) -> None:
        self._auto_levels = False

    def _redraw(self) -> None:
        if self.shown is not None:
            self.show_frame(self.shown)

    def zoom_fit(self) -> None:
        """The whole frame in view."""
        self.view.autoRange(padding=0.0)

    def zoom_one_to_one(self) -> None:
        """One sensor pixel per screen pixel, about the centre of the view."""
        (x0, x1), (y0, y1) = self.view.viewRange()
        size = self.view.size()
        cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
        w, h = size.width(), size.height()
        self.view.setRange(xRange=(cx - w / 2, cx + w / 2), yRange=(cy - h / 2, cy + h / 2),
                           padding=0.0)

    def pixels_per_sensor_pixel(self) -> float:
        """Screen pixels per sensor pixel at the current zoom."""
        (x0, x1), _ = self.view.viewRange()
        return float(self.view.size().width()) / max(x1 - x0, 1e-9)

    def pin(self, frames: list[Frame], label: str) -> None:
        """Show frames from the frame browser (with their detections) until back_to_live."""
        self.pinned_label = label
        self.banner.setText(f"<b style='color:#1565c0'>browsing: {label}</b>")
        self.live_button.show()
        if not self.spots_box.isChecked():
            self.spots_box.setChecked(True)
        self._auto_levels = True
        self.preparer.pin(frames)

    def back_to_live(self) -> None:
        """Show the live stream again."""
        self.pinned_label = ""
        self.banner.setText("")
        self.live_button.hide()
        self._auto_levels = True
        self.preparer.unpin()

    # -- display ----------------------------------------------------------------------------
    def refresh(self) -> None:
        """Show the newest prepared frame if it is new (called by the display timer)."""
        shown = self.preparer.result()
        if shown is None or shown.seq == getattr(self.shown, "seq", -1):
            return
        self.show_frame(shown)

    def show_frame(self, shown: Shown) -> None:
        """Display one frame (or composite), its spots, caption, warnings and scale bar."""
        image = shown.display
        composite = image.ndim == 3
        self.histogram.setVisible(not composite)
        if composite:
            self.image.setImage(image, autoLevels=False, levels=(0.0, 1.0))
        else:
            self._set_colour_map(frame_channel(shown.frame))
            auto = self._auto_levels
            self.image.setImage(image, autoLevels=auto)
            if auto:
                self.histogram.setLevels(*shown.levels)
                self._auto_levels = False
        height, width = image.shape[0] * shown.bin, image.shape[1] * shown.bin
        self.image.setRect(0, 0, width, height)  # view coordinates stay sensor pixels
        self._show_spots(shown)
        self._update_scale_bar(shown.frame, width)
        self.shown = shown
        self.frames_shown += 1
        self._times = [t for t in self._times if t > time.monotonic() - 2.0] + [time.monotonic()]
        self.caption.setText(self._caption(shown))
        self._show_saturation(shown)

    def _set_colour_map(self, channel: str) -> None:
        key = (channel, self.grey_box.isChecked())
        if key != self._cmap_key:
            self.histogram.gradient.setColorMap(colour_map(*key))
            self._cmap_key = key

    def _show_saturation(self, shown: Shown) -> None:
        if not shown.saturated:
            self.saturation.setText("")
            return
        pixels = sum(np.asarray(f.image).size for _, f in shown.layers) or shown.frame.image.size
        share = 100 * shown.saturated / pixels
        self.saturation.setText(f"<b style='color:#c62828'>{count_of(shown.saturated, 'pixel')} "
                                "saturated "
                                f"({share:.2g} %): counts there are unreliable; lower the "
                                "exposure or the LED power</b>")

    def _mouse_moved(self, pos: Any) -> None:
        if self.shown is None or not self.view.sceneBoundingRect().contains(pos):
            return
        point = self.view.mapSceneToView(pos)
        self.pixel.setText(pixel_text(self.shown, point.x(), point.y()))

    def _show_spots(self, shown: Shown) -> None:
        """Mark the detections: one colour, or each channel's in its colour on a composite."""
        marked = [(c, r) for c, r in shown.layer_spots if getattr(r, "count", 0)] or (
            [("", shown.spots)] if getattr(shown.spots, "count", 0) else [])
        if not marked:
            self.spots.clear()
            return
        xs, ys, pens = [], [], []
        for index, (channel, result) in enumerate(marked):
            spots = result.spots  # pixel centres; pixel (0, 0) covers [0, 1) in the view
            xs.append(np.asarray(spots["x"], float) + 0.5)
            ys.append(np.asarray(spots["y"], float) + 0.5)
            pens += [self._spot_pen(channel, index)] * len(xs[-1])
        self.spots.setData(x=np.concatenate(xs), y=np.concatenate(ys), pen=pens)

    def _spot_pen(self, channel: str, index: int) -> Any:
        if channel not in self._pens:
            colour = channel_rgb(channel, index) if channel else (1.0, 1.0, 0.0)
            self._pens[channel] = pg.mkPen(tuple(int(255 * c) for c in colour), width=1)
        return self._pens[channel]

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
        if shown.layers:
            channels = " + ".join(channel for channel, _ in shown.layers)
            marked = ", ".join(f"{spots_text(r.count)} in {c}" for c, r in shown.layer_spots)
            return (f"composite {channels} · {describe_frame(shown.frame)}"
                    + (f" · {marked} marked" if marked else ""))
        spots = shown.spots
        count = f" · {spots_text(spots.count)} marked" if spots is not None else ""
        rate = "" if shown.pinned else f" · {len(self._times) / 2.0:.0f} frames/s shown"
        return f"{describe_frame(shown.frame)}{count}{rate}"

    def close_down(self) -> None:
        """Stop the display timer and the overlay counter."""
        self.timer.stop()
        self.preparer.stop()
