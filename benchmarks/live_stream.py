"""Live view under a run's frame stream: does the Qt event loop keep turning?

The main window runs a long sample flow on the simulated bench while a worker thread
publishes a real 2048 x 2048 simulator frame on the run's frame signal at 20 per second (the
way a run publishes them), with the spot overlay on. A 10 ms Qt timer records every tick.
Printed beside their references: frames received (20 fps x seconds), frames shown, and the
longest gap between timer ticks (reference: 100 ms, what an operator notices as a stall).

Run: QT_QPA_PLATFORM=offscreen python -m benchmarks.live_stream [--seconds S]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import threading
import time
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

from PySide6.QtCore import QElapsedTimer, QSettings, Qt, QTimer  # noqa: E402
from PySide6.QtWidgets import QApplication  # noqa: E402

from chipctl.config.bench import load_bench  # noqa: E402
from chipctl.engine import Engine  # noqa: E402
from chipctl.protocol import parse_protocol  # noqa: E402
from chipctl.simlaunch import SimulatedBench  # noqa: E402
from gui.main_window import MainWindow  # noqa: E402

FPS = 20.0
GAP_REFERENCE_MS = 100
LONG_SAMPLE = """\
name: long sample
steps:
  - sample: {pump: sample_pump, rate: 5 uL/min, volume: 150 uL}
"""


def wait(app: QApplication, seconds: float) -> None:
    """Turn the Qt event loop for `seconds`."""
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        app.processEvents()
        time.sleep(0.002)


def measure(app: QApplication, window: MainWindow, seconds: float) -> dict[str, float]:
    """Stream frames for `seconds` during a run; what arrived, what was shown, the gaps."""
    frame = window.engine.camera().snap()
    window.live_view.spots_box.setChecked(True)
    window.session.start(parse_protocol(LONG_SAMPLE, "long.yaml"), {})
    wait(app, 1.0)
    events = window.bridge.events
    assert events is not None
    stop = threading.Event()

    def stream() -> None:
        next_at = time.monotonic()
        while not stop.is_set():
            events.frame.emit(frame)
            next_at += 1 / FPS
            time.sleep(max(0.0, next_at - time.monotonic()))

    ticks: list[int] = []
    clock = QElapsedTimer()
    clock.start()
    timer = QTimer()
    timer.setTimerType(Qt.TimerType.PreciseTimer)
    timer.timeout.connect(lambda: ticks.append(clock.elapsed()))
    received, shown = window.frames.received, window.live_view.frames_shown
    timer.start(10)
    streamer = threading.Thread(target=stream, daemon=True)
    streamer.start()
    wait(app, seconds)
    stop.set()
    timer.stop()
    streamer.join(2)
    gaps = [b - a for a, b in zip(ticks, ticks[1:], strict=False)]
    return {"received": window.frames.received - received,
            "shown": window.live_view.frames_shown - shown,
            "longest_gap_ms": max(gaps) if gaps else float("nan"), "ticks": len(ticks)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=float, default=3.0)
    args = parser.parse_args()
    app = QApplication.instance() or QApplication([])
    with tempfile.TemporaryDirectory() as tmp, SimulatedBench(speed=100.0, seed=3) as sim:
        engine = Engine(load_bench(sim.bench_path), runs_dir=Path(tmp) / "runs")
        engine.connect()
        window = MainWindow(engine, QSettings(str(Path(tmp) / "gui.ini"),
                                              QSettings.Format.IniFormat),
                            open_url=lambda url: None)
        window.ask_before_close = False
        window.show()
        try:
            figures = measure(app, window, args.seconds)
        finally:
            window.session.abort("benchmark over")
            window.session.wait(15)
            window.close()
            engine.close()
    print(f"live view, {args.seconds:g} s of 2048 x 2048 frames at {FPS:g} fps during a run:")
    print(f"  frames received {figures['received']} (reference {FPS * args.seconds:.0f})")
    print(f"  frames shown    {figures['shown']}")
    print(f"  Qt timer ticks  {figures['ticks']} (10 ms timer), longest gap "
          f"{figures['longest_gap_ms']:.0f} ms (reference {GAP_REFERENCE_MS} ms)")


if __name__ == "__main__":
    main()
