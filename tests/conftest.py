"""Session-wide test settings."""

from __future__ import annotations

import os
import sys

import pytest

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")


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
