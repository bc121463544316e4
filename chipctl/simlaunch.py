"""Start the simulated bench as a child process and wait until it is ready.

chipctl never imports the simulator (DESIGN.md): it runs `python -m hardware_sim`, which writes
a bench file and prints `ready` once every device accepts connections.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from types import TracebackType


class SimulatorError(RuntimeError):
    """The simulator could not be started; `invalid_input` when it refused what it was given
    (a sample file), exit status 2."""

    def __init__(self, message: str, invalid_input: bool = False) -> None:
        super().__init__(message)
        self.invalid_input = invalid_input


class SimulatedBench:
    """A running simulator process and the bench file it wrote."""

    def __init__(self, speed: float = 100.0, seed: int = 0, extra_args: list[str] | None = None,
                 startup_timeout_s: float = 60.0) -> None:
        self.speed = speed
        self.seed = seed
        self.extra_args = extra_args or []
        self.startup_timeout_s = startup_timeout_s
        self._tmp = tempfile.TemporaryDirectory(prefix="chipctl-sim-")
        self.bench_path = Path(self._tmp.name) / "bench.yaml"
        self.process: subprocess.Popen[str] | None = None
        self._output: list[str] = []

    def start(self) -> SimulatedBench:
        """Launch and block until `ready` (or raise SimulatorError)."""
        cmd = [sys.executable, "-m", "hardware_sim", "--bench-out", str(self.bench_path),
               "--speed", str(self.speed), "--seed", str(self.seed), "--exit-with-parent",
               *self.extra_args]
        env = dict(os.environ, PYTHONUNBUFFERED="1")
        # Its standard input is a pipe held by this process only: when we end, however we end,
        # the simulator sees it close and stops.
        self.process = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                        stdin=subprocess.PIPE, text=True, env=env)
        ready = threading.Event()
        threading.Thread(target=self._pump_output, args=(ready,), daemon=True).start()
        deadline = time.monotonic() + self.startup_timeout_s
        while not ready.wait(0.05):
            code = self.process.poll()
            if code is not None or time.monotonic() > deadline:
                self.stop()
                time.sleep(0.05)  # the output thread takes the last lines
                tail = "".join(self._output[-20:]).strip()
                if code == 2:
                    raise SimulatorError(tail, invalid_input=True)
                raise SimulatorError(f"the simulator did not start: {tail or 'no output'}")
        return self

    def _pump_output(self, ready: threading.Event) -> None:
        assert self.process is not None and self.process.stdout is not None
        for line in self.process.stdout:
            self._output.append(line)
            if line.strip() == "ready":
                ready.set()

    def stop(self) -> None:
        """Terminate the simulator (kill it if it does not stop within 5 s)."""
        if self.process is not None and self.process.stdin is not None:
            with contextlib.suppress(OSError):
                self.process.stdin.close()
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)
        with contextlib.suppress(OSError):
            self._tmp.cleanup()

    def __enter__(self) -> SimulatedBench:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()


def sample_args(sample: str | os.PathLike[str] | None) -> list[str]:
    """The simulator's arguments for a sample file (none for the default sample)."""
    return [] if sample is None else ["--sample", os.fspath(Path(sample).resolve())]


@contextlib.contextmanager
def simulated_bench_file(speed: float, seed: int, error: Callable[[str], Exception],
                         sample: str | os.PathLike[str] | None = None) -> Iterator[Path]:
    """A simulated bench, running while the block runs; yields its bench file. `sample`: a
    sample file for the simulator (hardware_sim.sample), which checks it.

    A simulator that cannot start raises `error(reason)` (the caller's own kind of error).
    """
    sim = SimulatedBench(speed=speed, seed=seed, extra_args=sample_args(sample))
    try:
        sim.start()
    except SimulatorError as exc:
        raise error(str(exc)) from exc
    try:
        yield sim.bench_path
    finally:
        sim.stop()
