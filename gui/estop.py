"""The emergency stop: a big red toolbar button and keyboard shortcuts, always available.

F12 works application-wide; Esc works in the main window (in a dialog, Esc keeps closing the
dialog). Pressing either halts every pump and light on a dedicated thread
(bridge.EmergencyStopper), whatever a run or a device call is doing. The window's dialogs are
non-modal so the button stays clickable; the few that must be modal (choosing a file, the run's
parameters) get F12 themselves through `guard`.
"""

from __future__ import annotations

from collections.abc import Callable

from PySide6.QtCore import Qt
from PySide6.QtGui import QKeySequence, QShortcut
from PySide6.QtWidgets import QPushButton, QSizePolicy, QWidget

STYLE = """
QPushButton { background: #d32f2f; color: white; font-weight: bold; font-size: 16px;
              border: 3px solid #7f0000; border-radius: 8px; padding: 8px 18px; }
QPushButton:pressed { background: #7f0000; }
"""
APP_KEYS = ("F12",)
WINDOW_KEYS = ("Esc",)


def guard(dialog: QWidget, on_press: Callable[[], None]) -> QShortcut:
    """Give a modal dialog the emergency-stop key (a modal dialog blocks the window's)."""
    shortcut = QShortcut(QKeySequence(APP_KEYS[0]), dialog)
    shortcut.setContext(Qt.ShortcutContext.WindowShortcut)
    shortcut.setAutoRepeat(False)
    shortcut.activated.connect(on_press)
    return shortcut


class EmergencyStopButton(QPushButton):
    """The red button; `install_shortcuts` binds the keys on a window."""

    def __init__(self, on_press: Callable[[], None], parent: QWidget | None = None) -> None:
        super().__init__("EMERGENCY STOP  (Esc / F12)", parent)
        self.setObjectName("emergencyStop")
        self.setStyleSheet(STYLE)
        self.setMinimumHeight(48)
        self.setSizePolicy(QSizePolicy.Policy.Preferred, QSizePolicy.Policy.Fixed)
        self.setToolTip("Halts every pump and turns every light off at once; aborts the run.")
        self.setFocusPolicy(Qt.FocusPolicy.NoFocus)
        self.clicked.connect(on_press)
        self._on_press = on_press
        self.shortcuts: list[QShortcut] = []

    def install_shortcuts(self, window: QWidget) -> None:
        """F12 anywhere in the application, Esc in `window`."""
        for keys, context in ((APP_KEYS, Qt.ShortcutContext.ApplicationShortcut),
                              (WINDOW_KEYS, Qt.ShortcutContext.WindowShortcut)):
            for key in keys:
                shortcut = QShortcut(QKeySequence(key), window)
                shortcut.setContext(context)
                shortcut.setAutoRepeat(False)
                shortcut.activated.connect(self._on_press)
                self.shortcuts.append(shortcut)
