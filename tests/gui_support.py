"""The app's main window on a fake engine, as the GUI tests open it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from PySide6.QtCore import QSettings

from gui.main_window import MainWindow
from tests.fakes import fake_engine


def open_window(qtbot: Any, tmp_path: Path, engine: Any = None) -> MainWindow:
    """A shown main window (no close question, links not opened) on `engine`, by default a
    fake engine recording under tmp_path/runs; its settings in tmp_path/gui.ini."""
    win = MainWindow(engine if engine is not None else fake_engine(tmp_path / "runs"),
                     QSettings(str(tmp_path / "gui.ini"), QSettings.Format.IniFormat),
                     open_url=lambda url: None)
    win.ask_before_close = False
    qtbot.addWidget(win)
    win.show()
    return win
