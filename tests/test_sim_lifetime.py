"""A simulator started by chipctl never outlives it, even when chipctl is killed outright."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
pytestmark = [pytest.mark.timeout(90),
              pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads /proc")]

PARENT = """
import sys, time
from chipctl.simlaunch import SimulatedBench
sim = SimulatedBench(speed=50).start()
print(sim.process.pid, flush=True)
time.sleep(600)
"""


def alive(pid: int) -> bool:
    """Running, and not a zombie waiting to be reaped."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def test_the_simulator_stops_when_its_parent_is_killed() -> None:
    parent = subprocess.Popen([sys.executable, "-c", PARENT], cwd=ROOT, stdout=subprocess.PIPE,
                              stdin=subprocess.DEVNULL, text=True)
    assert parent.stdout is not None
    sim_pid = int(parent.stdout.readline())
    assert alive(sim_pid)
    os.kill(parent.pid, signal.SIGKILL)
    parent.wait(10)
    deadline = time.monotonic() + 20
    while alive(sim_pid) and time.monotonic() < deadline:
        time.sleep(0.1)
    still = alive(sim_pid)
    if still:
        os.kill(sim_pid, signal.SIGKILL)
    assert not still, "the simulator outlived the process that started it"
