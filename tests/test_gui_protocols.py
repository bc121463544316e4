"""Both protocol kinds from the app: the open dialog shows YAML files and Python scripts and
opens in the protocol library; a script's errors are listed with their line like a file's; a
scripted protocol runs from the app and is recorded as a script."""

from __future__ import annotations

import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

from pathlib import Path
from typing import Any

import pytest
from fakes import fake_engine
from PySide6.QtCore import QSettings, Qt

from gui.core import protocol_library
from gui.main_window import MainWindow

pytestmark = pytest.mark.timeout(60)
ROOT = Path(__file__).resolve().parents[1]
LIBRARY = ROOT / "protocols"

BAD_STEP = '''\
from chipctl.protocol.script import ProtocolBuilder

p = ProtocolBuilder("bad rate")
p.prime("buffer_pump", volume="10 uL", rate="50 uL/min")
p.sample("sample_pump", rate="fast", volume="10 uL")
protocol = p.build()
'''
RAISES = '''\
from chipctl.protocol.script import ProtocolBuilder

p = ProtocolBuilder("raises")
volumes = {"low": "5 uL"}
p.sample("sample_pump", rate="5 uL/min", volume=volumes["high"])
protocol = p.build()
'''
UNKNOWN_ZONE = '''\
from chipctl.protocol.script import ProtocolBuilder

p = ProtocolBuilder("unknown zone")
p.image(["CD64"], channels=[p.channel("AF647", exposure="10 ms", power="50 %")])
protocol = p.build()
'''


@pytest.fixture
def window(qtbot: Any, tmp_path: Path) -> MainWindow:
    win = MainWindow(fake_engine(tmp_path / "runs"),
                     QSettings(str(tmp_path / "gui.ini"), QSettings.Format.IniFormat),
                     parameters=lambda p: {q.name: q.default or "S-1" for q in p.parameters},
                     open_url=lambda url: None, library=LIBRARY)
    win.ask_before_close = False
    qtbot.addWidget(win)
    win.show()
    return win


def problems(window: MainWindow) -> list[str]:
    box = window.protocol_panel.problem_list
    return [box.item(i).text() for i in range(box.count())]


def test_the_open_dialog_shows_files_and_scripts_and_opens_in_the_library(
        window: MainWindow, qtbot: Any) -> None:
    dialog = window.protocol_panel.file_dialog()
    qtbot.addWidget(dialog)
    assert Path(dialog.directory().absolutePath()) == LIBRARY.resolve()
    first = dialog.nameFilters()[0]
    assert "*.yaml" in first and "*.py" in first
    assert any("Python" in f and "*.py" in f for f in dialog.nameFilters())
    names = [p.name for p in window.protocol_panel.library_protocols()]
    assert "rate_sweep.py" in names and "tetraspanin_panel.yaml" in names
    assert "README.md" not in names


def test_the_library_is_found_in_the_repository_and_by_environment(
        tmp_path: Path, monkeypatch: Any) -> None:
    monkeypatch.delenv("CHIPCTL_PROTOCOLS", raising=False)
    assert protocol_library() == LIBRARY
    monkeypatch.setenv("CHIPCTL_PROTOCOLS", str(tmp_path))
    assert protocol_library() == tmp_path


@pytest.mark.parametrize(("text", "line", "words"), [
    (BAD_STEP, 5, "rate"), (RAISES, 5, "KeyError"), ("x = (\n", 1, "syntax error"),
    (UNKNOWN_ZONE, 4, "CD64")])
def test_a_scripts_errors_are_listed_with_their_line(
        window: MainWindow, tmp_path: Path, text: str, line: int, words: str) -> None:
    path = tmp_path / "script.py"
    path.write_text(text, encoding="utf-8")
    panel = window.protocol_panel
    assert panel.open_file(str(path)) is False
    found = problems(window)
    assert any(t.startswith(f"line {line}:") and words in t for t in found), found
    assert not panel.run_button.isEnabled()
    assert "Python script" in panel.path_label.full_text()
    assert panel.source.toPlainText() == text, "the script's text is shown, to jump to a line"


def test_a_scripted_protocol_runs_from_the_app(window: MainWindow, qtbot: Any) -> None:
    panel = window.protocol_panel
    assert panel.open_file(str(LIBRARY / "rate_sweep.py")), problems(window)
    assert "valid on this bench" in panel.verdict.full_text()
    steps = panel.steps.topLevelItemCount()
    assert steps == 10 and "capture" in panel.steps.topLevelItem(1).text(1)
    qtbot.mouseClick(panel.run_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: panel.state == "completed", timeout=40000)
    assert panel.progress.value() == steps
    series = window.counts_plot.series
    assert set(series) == {("CD63", "AF647"), ("isotype", "AF647")}
    assert len(series[("CD63", "AF647")].counts) == 3  # one image step per flow rate
    folder = Path(window.session.folder)
    assert (folder / "protocol.py").read_text(encoding="utf-8") == (
        LIBRARY / "rate_sweep.py").read_text(encoding="utf-8")
    assert window.history.table.item(0, 3).text() == "completed"
