"""The Qt binding must not corrupt reference counts while the app paints.

PySide6-Essentials 6.12.0 on Python 3.11 lowers None's reference count by one for every
QPainter.drawRect / drawLine / drawImage / drawPath call made from Python (None is not immortal
before Python 3.12), so any pyqtgraph widget kills the process with "none_dealloc" after a few
tens of thousands of paints: the desktop app died after about 35 s of Live. pyproject.toml pins
a release without the bug; this test fails on the bug itself.

The painting runs in a child process: with the bug, enough paints abort the interpreter, which
must fail this test rather than end the whole session.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import pytest

pytestmark = pytest.mark.timeout(120)

PAINTS = 2000

CHILD = textwrap.dedent(
    """
    import json, os, sys
    os.environ["QT_QPA_PLATFORM"] = "offscreen"
    import numpy as np
    import pyqtgraph as pg
    from PySide6.QtCore import QRectF
    from PySide6.QtGui import QImage, QPainter, QPainterPath
    from PySide6.QtWidgets import QApplication

    from chipctl.devices.interfaces import Frame
    from gui.counts_plot import CountsPlot
    from gui.frames import FrameSlot
    from gui.live_view import LiveView

    app = QApplication([])
    paints = int(sys.argv[1])

    def drift(paint, n):
        before = sys.getrefcount(None)
        for _ in range(n):
            paint()
        return sys.getrefcount(None) - before

    # The QPainter calls pyqtgraph makes, one by one.
    image = QImage(64, 64, QImage.Format.Format_ARGB32)
    path = QPainterPath()
    path.addEllipse(1, 1, 10, 10)
    painter = QPainter(image)
    calls = {
        "drawRect": lambda: painter.drawRect(QRectF(1, 1, 5, 5)),
        "drawPath": lambda: painter.drawPath(path),
        "drawImage": lambda: painter.drawImage(QRectF(0, 0, 10, 10), image),
        "drawLine": lambda: painter.drawLine(1, 1, 5, 5),
    }
    result = {name: drift(call, 200) for name, call in calls.items()}
    painter.end()

    # The widgets the app paints: the live view with its overlay, levels and histogram, and
    # the counts plot; each grab() paints the whole widget.
    rng = np.random.default_rng(0)
    frame = Frame(rng.poisson(200, (256, 256)).astype(np.uint16),
                  {"channel": "AF647", "zone": "CD63", "field": 0})
    slot = FrameSlot()
    live = LiveView(slot, ["AF647"], 0.65)
    live.resize(640, 480)
    live.timer.stop()
    live.spots.setData(x=rng.uniform(0, 256, 200), y=rng.uniform(0, 256, 200))
    live.image.setImage(frame.image)
    live.scale_bar.show()
    plot = CountsPlot()
    plot.resize(640, 360)
    for t in range(20):
        plot.plot.plot([0, t], [t, 2 * t], pen=pg.mkPen("r"))
    widgets = {"live_view": live, "counts_plot": plot}
    for name, widget in widgets.items():
        widget.show()
        drift(widget.grab, 20)  # first paints fill caches (and may free a few Nones)
        result[name] = drift(widget.grab, paints // 10)
    print(json.dumps(result), flush=True)
    os._exit(0)  # the verdict is printed; with the bug, the interpreter's teardown would abort
    """
)


def test_painting_never_lowers_the_refcount_of_none() -> None:
    env = {**os.environ, "QT_QPA_PLATFORM": "offscreen"}
    child = subprocess.run([sys.executable, "-c", CHILD, str(PAINTS)], capture_output=True,
                           text=True, timeout=100, env=env)
    lines = child.stdout.strip().splitlines()
    assert child.returncode == 0 and lines, f"the painting process died:\n{child.stderr[-2000:]}"
    drift = json.loads(lines[-1])
    # Growth is harmless (caches); a fall of even a few per call is the binding bug, which ends
    # in "deallocating None". Every draw call above runs 200 times, every widget paints 200 times.
    falling = {name: value for name, value in drift.items() if value < -20}
    assert not falling, f"None's reference count fell while painting: {drift}"
