"""Nouns in the right number everywhere in the GUI: "1 frame", "2 frames", "0 frames"."""

from __future__ import annotations

import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from gui.core import DryRun, Frame
from gui.frames import Shown
from gui.main_window import MainWindow
from gui.protocol_panel import describe_dry_run
from gui.widgets import count_of
from tests.gui_support import open_window

pytestmark = pytest.mark.timeout(60)


@pytest.fixture
def window(qtbot: Any, tmp_path: Path) -> MainWindow:
    return open_window(qtbot, tmp_path)


def test_count_of_says_one_in_the_singular() -> None:
    assert [count_of(n, "frame") for n in (0, 1, 2)] == ["0 frames", "1 frame", "2 frames"]
    assert count_of(1, "pixel") == "1 pixel" and count_of(3, "pixel") == "3 pixels"


def test_the_dry_run_says_one_step_and_one_image() -> None:
    one = describe_dry_run(DryRun(steps=[{"step": 1}], duration_s=60.0, images=1))
    assert one.startswith("1 step, about 1.0 min") and one.endswith("; 1 image")
    two = describe_dry_run(DryRun(steps=[{}, {}], images=2))
    assert two.startswith("2 steps,") and two.endswith("; 2 images")


def test_one_frame_one_field_one_pixel_in_the_window(window: MainWindow, qtbot: Any) -> None:
    window.chip_map.set_field_size(100.0, 100.0)
    window.chip_map.add_field("CD63", 5000.0, 0.0)
    assert window.chip_map.caption.text() == "1 field acquired"
    window.chip_map.add_field("CD63", 5200.0, 0.0)
    assert window.chip_map.caption.text() == "2 fields acquired"
    window.counts_plot.add_row({"zone": "CD63", "channel": "AF488", "count": 7, "t_s": 1.0})
    assert window.counts_plot.summary.full_text().startswith("1 frame counted")
    window.counts_plot.add_row({"zone": "CD63", "channel": "AF488", "count": 9, "t_s": 2.0,
                                "field": 2})
    assert window.counts_plot.summary.full_text().startswith("2 frames counted")
    image = np.full((32, 32), 100, np.uint16)
    image[3, 4] = 65535
    window.live_view.show_frame(Shown(1, Frame(image, {"channel": "AF647"}), image, saturated=1))
    assert "1 pixel saturated (" in window.live_view.saturation.full_text()
    assert window.browser.message.full_text() == "0 frames"
