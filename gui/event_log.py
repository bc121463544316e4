"""The event log: every run event and every device error, newest last, with a filter."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

from PySide6.QtCore import Qt
from PySide6.QtGui import QColor
from PySide6.QtWidgets import (
    QComboBox,
    QHBoxLayout,
    QLineEdit,
    QListWidget,
    QListWidgetItem,
    QVBoxLayout,
    QWidget,
)

MAX_ENTRIES = 5000
ERROR_KINDS = {"error", "emergency_stop", "safe_state_incomplete", "interlock",
               "manual_refused", "manual_failed"}
SKIPPED_FIELDS = {"event", "wall"}


def format_record(event: dict[str, Any]) -> str:
    """One event as one line: kind, then its fields."""
    fields = ", ".join(f"{key}={json.dumps(value, default=str)}" for key, value in event.items()
                       if key not in SKIPPED_FIELDS)
    return f"{event.get('event', '?')}: {fields}"


def is_error(event: dict[str, Any]) -> bool:
    """Errors, alarms and failed or aborted states stand out."""
    kind = event.get("event")
    return kind in ERROR_KINDS or (kind in ("state", "run_ended")
                                   and event.get("state") in ("failed", "aborted"))


class EventLog(QWidget):
    """A filterable list of events."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.filter = QLineEdit()
        self.filter.setPlaceholderText("filter: text in the event…")
        self.filter.textChanged.connect(self.apply_filter)
        self.kind = QComboBox()
        self.kind.addItem("all events", "")
        self.kind.addItem("errors only", "error")
        self.kind.currentIndexChanged.connect(self.apply_filter)
        self.list = QListWidget()
        self.list.setUniformItemSizes(True)
        top = QHBoxLayout()
        top.addWidget(self.filter, 1)
        top.addWidget(self.kind)
        layout = QVBoxLayout(self)
        layout.addLayout(top)
        layout.addWidget(self.list, 1)

    def add(self, event: dict[str, Any]) -> None:
        """Append an event (on the Qt thread)."""
        stamp = dt.datetime.now().strftime("%H:%M:%S")
        text = f"{stamp}  {format_record(event)}"
        error = is_error(event)
        item = QListWidgetItem(text)
        item.setData(Qt.ItemDataRole.UserRole, error)
        if error:
            item.setForeground(QColor("#c62828"))
        item.setHidden(not self._matches(text, error))
        self.list.addItem(item)
        while self.list.count() > MAX_ENTRIES:
            self.list.takeItem(0)
        if not item.isHidden():
            self.list.scrollToBottom()

    def add_error(self, source: str, message: str) -> None:
        """Log a device or GUI error."""
        self.add({"event": "error", "source": source, "message": message})

    def _matches(self, text: str, error: bool) -> bool:
        if self.kind.currentData() == "error" and not error:
            return False
        needle = self.filter.text().strip().lower()
        return not needle or needle in text.lower()

    def apply_filter(self) -> None:
        """Show only the events matching the filter."""
        for row in range(self.list.count()):
            item = self.list.item(row)
            error = bool(item.data(Qt.ItemDataRole.UserRole))
            item.setHidden(not self._matches(item.text(), error))

    def visible_texts(self) -> list[str]:
        """The lines currently shown."""
        return [self.list.item(row).text() for row in range(self.list.count())
                if not self.list.item(row).isHidden()]
