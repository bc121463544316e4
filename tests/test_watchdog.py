"""The suite's hard watchdog: a test that deadlocks with the GIL held (so pytest-timeout's own
thread can never run) ends the session with every thread's stack, instead of hanging CI."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

STUCK = '''
import ctypes
import pytest

@pytest.mark.timeout(1)
def test_stuck_holding_the_gil():
    ctypes.PyDLL(None).sleep(60)  # a C call that keeps the GIL, like a Qt/GIL deadlock
'''


@pytest.mark.timeout(60)
@pytest.mark.skipif(sys.platform == "win32", reason="libc sleep through ctypes")
def test_a_test_stuck_with_the_gil_held_ends_the_session(tmp_path: Path) -> None:
    """The project's own pytest settings, with only the watchdog's delay shortened."""
    (tmp_path / "test_stuck.py").write_text(STUCK)
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
         "-c", str(ROOT / "pyproject.toml"), "--rootdir", str(tmp_path),
         "-o", "faulthandler_timeout=3", str(tmp_path / "test_stuck.py")],
        capture_output=True, text=True, timeout=50, cwd=tmp_path, stdin=subprocess.DEVNULL)
    assert result.returncode != 0
    assert "Timeout (0:00:03)!" in result.stderr  # faulthandler's header, then the stacks:
    assert "test_stuck_holding_the_gil" in result.stderr
