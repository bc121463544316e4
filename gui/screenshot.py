"""python -m gui.screenshot [--out-dir DIR]: the README's screenshots of the app on the simulated
bench: the window mid-run (DIR/screenshot.png) and the frame browser showing an acquired frame
with its detections (DIR/frame_browser.png).

In a real X session (tools/screenshots.sh starts one under Xvfb) the screen is captured by
ImageMagick's `import -window root`, so the picture is what the X server shows; without X
(QT_QPA_PLATFORM=offscreen) the window is rendered with QWidget.grab().
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from PySide6.QtCore import QCoreApplication, QSettings
from PySide6.QtGui import QGuiApplication
from PySide6.QtWidgets import QApplication

from gui.core import Engine, Protocol, SimulatedBench, load_bench

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


def capture(window: Any, out: Path) -> str:
    """Save what is on screen: the X screen if there is one, else the window rendered."""
    out.parent.mkdir(parents=True, exist_ok=True)
    if os.environ.get("DISPLAY") and QGuiApplication.platformName() == "xcb" \
            and shutil.which("import"):
        subprocess.run(["import", "-window", "root", str(out)], check=True, timeout=30)
        return "X screen (import -window root)"
    window.grab().save(str(out))
    return "window rendered offscreen (QWidget.grab)"


def browse_a_frame(app: QCoreApplication, window: Any, zone: str, channel: str) -> str:
    """Open the frame browser on the current run and show a frame of `zone` in `channel`."""
    window.docks["Frames"].show()
    window.docks["Frames"].raise_()
    window.browser.show_run(None)
    rows = [i for i, r in enumerate(window.browser.records)
            if r.zone == zone and r.channel == channel]
    row = rows[-1] if rows else len(window.browser.records) - 1
    window.browser.choose(row)
    wait_for(app, lambda: window.live_view.shown is not None and window.live_view.shown.pinned
             and window.live_view.shown.spots is not None, 30)
    wait_for(app, lambda: False, 0.5)
    return window.live_view.banner.full_text()


def main(argv: list[str] | None = None) -> int:
    """Take the screenshots."""
    parser = argparse.ArgumentParser(prog="python -m gui.screenshot")
    parser.add_argument("--out-dir", type=Path, default=Path("docs"))
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
        screen = window.screen().availableGeometry()
        window.resize(min(1600, screen.width()), min(1000, screen.height()))
        window.move(screen.topLeft())
        window.show()
        try:
            return take(app, window, args, Path(tmp))
        finally:
            window.ask_before_close = False
            window.close()
            window.deleteLater()
            app.processEvents()
            engine.close()


def take(app: QCoreApplication, window: Any, args: argparse.Namespace, tmp: Path) -> int:
    """Run the protocol; shoot mid-run, then the frame browser."""
    protocol = args.protocol or str(tmp / "demo.yaml")
    if not args.protocol:
        Path(protocol).write_text(DEMO, encoding="utf-8")
    window.protocol_panel.open_file(protocol)
    window.live_view.spots_box.setChecked(True)
    if not window.protocol_panel.start_run():
        print("the protocol cannot run", file=sys.stderr)
        return 1
    wait_for(app, lambda: window.counts_plot.rows >= args.counts, 180)
    wait_for(app, lambda: False, 1.0)  # the newest frame, its spots and the status land
    how = capture(window, args.out_dir / "screenshot.png")
    print(f"saved {args.out_dir / 'screenshot.png'} ({window.counts_plot.rows} frames "
          f"counted, run {window.session.state}; {how})")
    wait_for(app, lambda: not window.session.active, 180)
    banner = browse_a_frame(app, window, "CD63", "AF647")
    how = capture(window, args.out_dir / "frame_browser.png")
    print(f"saved {args.out_dir / 'frame_browser.png'} ({banner}; {how})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
