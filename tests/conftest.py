"""Session-wide test settings: offscreen Qt, garbage collection on the main thread only, and an
exit that skips the interpreter's final teardown. (The hard watchdog for a test stuck with the
GIL held is pytest's faulthandler_timeout, set in pyproject.toml.)"""

from __future__ import annotations

import gc
import itertools
import os
import sys
import tempfile
from collections.abc import Iterator
from typing import Any

import pytest

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
# Bench locks of this session apart from other sessions' (and from a real controller's): the
# fake benches of every test suite name the same ports.
os.environ["CHIPCTL_LOCK_DIR"] = tempfile.mkdtemp(prefix="chipctl-test-locks-")


def pytest_configure(config: pytest.Config) -> None:
    """Collect garbage only where the tests say so (see `collect_garbage_here`).

    Automatic collection runs on whichever thread happens to allocate: a device poller, a frame
    preparer or a simulator's reader thread. A cycle holding Qt objects (a closed window and the
    lambdas connected to it) is then destroyed off the Qt thread, which can deadlock PySide6
    against the GIL. The desktop app does the same through pyqtgraph's GarbageCollector.
    """
    gc.disable()


_finished_tests = itertools.count(1)


@pytest.fixture(scope="session")
def recorded_panel(tmp_path_factory: pytest.TempPathFactory) -> Any:
    """One synthetic panel run (tests/runs_synth.py, seed 1, every frame kept) recorded once
    per session, as `record_run` returns it, for the tests that read a recorded run; a test that
    changes it, or needs it entered with other parameters, reads a copy (`recorded_as`)."""
    from tests.test_runs_store import record_run  # chipctl only once the settings above hold

    return record_run(tmp_path_factory.mktemp("recorded-panel"))


@pytest.fixture(autouse=True)
def collect_garbage_here() -> Iterator[None]:
    """Collect each test's garbage on the main thread once it is over: the young generations
    after every test, everything after every 25th (a full pass walks every module's objects)."""
    yield
    gc.collect(2 if next(_finished_tests) % 25 == 0 else 1)


@pytest.hookimpl(trylast=True)
def pytest_unconfigure(config: pytest.Config) -> None:
    """Leave as soon as pytest has reported, with its exit status.

    The suite's Qt objects and daemon threads (simulators, device pollers) are torn down by the
    interpreter's final garbage collection, where PySide6 has been seen to abort intermittently
    ("none_dealloc") after every test had passed. The results are complete at this point, so
    exit without that teardown rather than let it turn a green run red.
    """
    status = getattr(config, "_chipctl_exitstatus", None)
    if status is None or os.environ.get("CHIPCTL_TEST_NORMAL_EXIT"):
        return
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(int(status))


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """Remember the exit status for pytest_unconfigure."""
    session.config._chipctl_exitstatus = exitstatus  # type: ignore[attr-defined]
