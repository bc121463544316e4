"""Small widgets that keep the layout within the screen: an elided label and a scroll wrapper.

A plain QLabel asks for the width of its whole text, so one long message (a counts summary, a
problem, a run's reason) widens the dock and then the window. `ElidedLabel` asks for almost
nothing, shows what fits with an ellipsis and the whole text in its tooltip; `scrollable`
wraps a panel so that its dock can be narrower than the panel (it scrolls instead of growing).
"""

from __future__ import annotations

import re

from PySide6.QtCore import QSize, Qt
from PySide6.QtGui import QPainter, QPaintEvent
from PySide6.QtWidgets import QFrame, QLabel, QScrollArea, QSizePolicy, QWidget

_TAGS = re.compile(r"<[^>]+>")


def count_of(n: int, noun: str, plural: str = "") -> str:
    """A number with its noun in the right number: '1 frame', '2 frames', '0 frames'."""
    return f"{n} {noun if n == 1 else plural or noun + 's'}"


def plain(text: str) -> str:
    """Rich text without its tags (what a tooltip or a test reads)."""
    return _TAGS.sub("", text)


class ElidedLabel(QLabel):
    """One line of text elided at the right to the width it is given; full text as tooltip.

    Rich text (a colour, bold) is kept for the colour of the line; the text itself is drawn
    plain so it can be elided.
    """

    def __init__(self, text: str = "", parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._full = ""
        self.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)
        self.setText(text)

    def setText(self, text: str) -> None:  # noqa: N802 - Qt's name
        """Set the text (rich text allowed: its colour and weight are kept)."""
        self._full = text
        colour = re.search(r"color:\s*(#[0-9a-fA-F]{3,6}|[a-z]+)", text)
        bold = "<b" in text
        style = (f"color: {colour.group(1)};" if colour else "") + (
            "font-weight: bold;" if bold else "")
        self.setStyleSheet(f"QLabel {{{style}}}" if style else "")
        self.setToolTip(plain(text) if text else "")
        super().setText(plain(text))
        self.update()

    def full_text(self) -> str:
        """The whole text, without markup."""
        return plain(self._full)

    def minimumSizeHint(self) -> QSize:  # noqa: N802 - Qt's name
        """As high as a line, as narrow as a few characters."""
        metrics = self.fontMetrics()
        return QSize(metrics.horizontalAdvance("…") * 4, metrics.height())

    def sizeHint(self) -> QSize:  # noqa: N802 - Qt's name
        """The whole line if there is room (never demanded: see minimumSizeHint)."""
        metrics = self.fontMetrics()
        return QSize(min(metrics.horizontalAdvance(self.text()) + 8, 600), metrics.height())

    def is_elided(self) -> bool:
        """True when the text does not fit and shows an ellipsis."""
        return self.fontMetrics().horizontalAdvance(self.text()) > self.contentsRect().width()

    def paintEvent(self, event: QPaintEvent) -> None:  # noqa: N802 - Qt's name
        """Draw the text elided to the width."""
        painter = QPainter(self)
        rect = self.contentsRect()
        text = self.fontMetrics().elidedText(self.text(), Qt.TextElideMode.ElideRight,
                                            rect.width())
        painter.setPen(self.palette().color(self.foregroundRole()))
        painter.drawText(rect, int(Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignVCenter),
                         text)
        painter.end()


def scrollable(widget: QWidget) -> QScrollArea:
    """`widget` in a frameless scroll area that resizes it (scrolls when space runs out)."""
    area = QScrollArea()
    area.setWidgetResizable(True)
    area.setFrameShape(QFrame.Shape.NoFrame)
    area.setWidget(widget)
    area.setMinimumSize(120, 80)
    return area
