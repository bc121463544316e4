"""chipctl-gui's command line: startup problems are told plainly (exit 2, no traceback), and
--sim starts the simulated bench and opens the window on it."""

from __future__ import annotations

import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import gc
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from PySide6.QtCore import QSettings, QTimer
from PySide6.QtWidgets import QApplication

from gui import app
from gui.main_window import MainWindow

pytestmark = pytest.mark.timeout(60)
ROOT = Path(__file__).resolve().parents[1]


def run_gui(*args: str, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, QT_QPA_PLATFORM="offscreen", XDG_CONFIG_HOME=str(tmp_path / "cfg"))
    return subprocess.run([sys.executable, "-m", "gui", *args], capture_output=True, text=True,
                          timeout=60, cwd=ROOT, env=env, stdin=subprocess.DEVNULL)


def test_a_bench_file_with_errors_is_named_with_its_line(tmp_path: Path) -> None:
    bench = tmp_path / "bench.yaml"
    bench.write_text("name: broken\ndevices:\n  pump: {driver: nosuch, url: COM3}\n")
    result = run_gui("--bench", str(bench), tmp_path=tmp_path)
    assert result.returncode == 2
    assert f"{bench}:3:" in result.stderr and "nosuch" in result.stderr
    assert "Traceback" not in result.stderr


def test_a_bench_that_does_not_answer_is_named_by_its_port(tmp_path: Path) -> None:
    bench = tmp_path / "bench.yaml"
    bench.write_text("name: unplugged\ndevices:\n"
                     "  stage: {driver: prior, url: 'socket://127.0.0.1:9', timeout_s: 0.3}\n")
    result = run_gui("--bench", str(bench), tmp_path=tmp_path)
    assert result.returncode == 2
    assert "cannot connect to the bench" in result.stderr
    assert "socket://127.0.0.1:9" in result.stderr
    assert "Traceback" not in result.stderr


def test_without_a_bench_it_says_how_to_give_one(tmp_path: Path) -> None:
    result = run_gui(tmp_path=tmp_path)
    assert result.returncode == 2
    assert "--bench FILE" in result.stderr and "--sim" in result.stderr
    assert "Traceback" not in result.stderr


def test_sim_opens_the_window_on_a_simulated_bench(qapp: QApplication, tmp_path: Path,
                                                   monkeypatch: Any) -> None:
    QSettings.setPath(QSettings.Format.NativeFormat, QSettings.Scope.UserScope,
                      str(tmp_path / "cfg"))
    seen: dict[str, Any] = {}
    collected_on: set[int] = set()
    shown_at: list[float] = []

    def on_collection(phase: str, info: dict[str, int]) -> None:
        if phase == "start" and shown_at:  # from the moment the window is up
            collected_on.add(threading.get_ident())

    def close_when_shown() -> None:
        windows = [w for w in qapp.topLevelWidgets()
                   if isinstance(w, MainWindow) and w.isVisible()]
        if not windows:
            QTimer.singleShot(50, close_when_shown)
            return
        if not shown_at:
            shown_at.append(time.monotonic())
        if time.monotonic() - shown_at[0] < 2.5:  # the app's collector has had its turns
            QTimer.singleShot(100, close_when_shown)
            return
        window = windows[0]
        seen["pumps"] = sorted(window.pumps_panel.boxes)
        seen["valid"] = window.protocol_panel.runnable
        seen["automatic gc"] = gc.isenabled()
        window.close()

    QTimer.singleShot(50, close_when_shown)
    gc.enable()  # as in a fresh interpreter (the test session itself runs with it off)
    gc.callbacks.append(on_collection)
    try:
        code = app.main(["--sim", "--speed", "100", "--runs-dir", str(tmp_path / "runs"),
                         "--protocol", str(ROOT / "protocols" / "quickstart.yaml")])
    finally:
        gc.callbacks.remove(on_collection)
        gc.disable()
    assert code == 0
    assert seen == {"pumps": ["buffer_pump", "sample_pump", "stain_pump"], "valid": True,
                    "automatic gc": False}
    # Garbage is collected, and only on the Qt thread: never destroys Qt objects elsewhere.
    assert collected_on == {threading.main_thread().ident}
