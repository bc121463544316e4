"""python -m gui.screenshot OUT.png: the app mid-run on the simulated bench, for the README.

Starts the simulator, opens the window (offscreen works: QT_QPA_PLATFORM=offscreen), runs a
protocol with spots marked, and saves the window once enough frames have been counted.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from PySide6.QtCore import QCoreApplication, QSettings
from PySide6.QtWidgets import QApplication

from chipctl.config.bench import load_bench
from chipctl.engine import Engine
from chipctl.protocol.model import Protocol
from chipctl.simlaunch import SimulatedBench

DEMO = """\
name: Capture, stain and count, three rounds
description: Sample through the chip in rounds; after each, stain and count two zones.
parameters:
  sample: {description: "sample name"}
steps:
  - prime: {pump: buffer_pump, volume: 20 uL, rate: 50 uL/min}
  - repeat:
      times: 3
      steps:
        - sample: {pump: sample_pump, volume: 2 uL, rate: 2 uL/min}
        - stain: {pump: stain_pump, volume: 5 uL, rate: 5 uL/min}
        - wash: {pump: buffer_pump, volume: 20 uL, rate: 20 uL/min}
        - image:
            zones: [CD63, CD81, isotype]
            fields: 2
            channels:
              - {channel: AF555, exposure: 100 ms, power: 80 %}
              - {channel: AF647, exposure: 100 ms, power: 80 %}
"""


def demo_parameters(protocol: Protocol) -> dict[str, str]:
    """Defaults, and a demo value for every required parameter."""
    return {p.name: p.default if p.default is not None else "demo sample"
            for p in protocol.parameters}


def wait_for(app: QCoreApplication, condition: Callable[[], object], timeout_s: float) -> bool:
    """Process events until `condition()` is true or the time is up."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        app.processEvents()
        if condition():
            return True
        time.sleep(0.02)
    return False


def main(argv: list[str] | None = None) -> int:
    """Take the screenshot."""
    parser = argparse.ArgumentParser(prog="python -m gui.screenshot")
    parser.add_argument("out", type=Path)
    parser.add_argument("--protocol", help="protocol file (default: a three-round demo)")
    parser.add_argument("--counts", type=int, default=26, help="counted frames to wait for")
    parser.add_argument("--speed", type=float, default=200.0)
    args = parser.parse_args(argv)
    from gui.main_window import MainWindow

    app = QApplication.instance() or QApplication(sys.argv[:1])
    with tempfile.TemporaryDirectory() as tmp, SimulatedBench(speed=args.speed) as sim:
        engine = Engine(load_bench(sim.bench_path), runs_dir=Path(tmp) / "runs",
                        keep_frames="none")
        engine.connect()
        window = MainWindow(engine, QSettings(str(Path(tmp) / "gui.ini"),
                                              QSettings.Format.IniFormat),
                            parameters=demo_parameters)
        window.resize(1600, 1000)
        window.show()
        try:
            protocol = args.protocol or str(Path(tmp) / "demo.yaml")
            if not args.protocol:
                Path(protocol).write_text(DEMO, encoding="utf-8")
            window.protocol_panel.open_file(protocol)
            window.live_view.spots_box.setChecked(True)
            if not window.protocol_panel.start_run():
                print("the protocol cannot run", file=sys.stderr)
                return 1
            wait_for(app, lambda: window.counts_plot.rows >= args.counts, 120)
            wait_for(app, lambda: False, 1.0)  # let the newest frame and its spots land
            args.out.parent.mkdir(parents=True, exist_ok=True)
            window.grab().save(str(args.out))
            print(f"saved {args.out} ({window.counts_plot.rows} frames counted, "
                  f"run {window.session.state})")
        finally:
            window.ask_before_close = False
            window.close()
            window.deleteLater()
            app.processEvents()
            engine.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
