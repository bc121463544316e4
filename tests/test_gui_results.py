"""Results at a glance: the per-zone results table beside the counts plot, one colour per zone
with channels by line style and symbol, a sensible axis for a single point, and a chip map of
zones, acquired fields and the camera's position."""

from __future__ import annotations

import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import statistics
from pathlib import Path
from typing import Any

import pytest
from fakes import GUI_BENCH
from PySide6.QtCore import QPointF

from gui.chip_map import ChipMap
from gui.core import Bench
from gui.counts_plot import CountsPlot, axis_range
from gui.main_window import MainWindow
from tests.gui_support import open_window

pytestmark = pytest.mark.timeout(60)

RUN = """\
name: two zones, two channels
steps:
  - image:
      zones: [CD63, isotype]
      fields: 2
      channels:
        - {channel: AF488, exposure: 10 ms}
        - {channel: AF647, exposure: 10 ms}
"""


@pytest.fixture
def window(qtbot: Any, tmp_path: Path) -> MainWindow:
    return open_window(qtbot, tmp_path)


def cell(window: MainWindow, zone: str, channel: str, column: int) -> str:
    table = window.results
    for row in range(table.rowCount()):
        if table.item(row, 0).text() == zone and table.item(row, 1).text() == channel:
            return table.item(row, column).text()
    raise AssertionError(f"no row for {zone} {channel}")


def test_results_table_gives_detected_density_and_flags_per_zone(
        window: MainWindow, qtbot: Any, tmp_path: Path) -> None:
    path = tmp_path / "run.yaml"
    path.write_text(RUN, encoding="utf-8")
    assert window.protocol_panel.open_file(str(path))
    rows: list[dict[str, Any]] = []
    window.bridge.counted.connect(rows.append)
    assert window.protocol_panel.start_run()
    qtbot.waitUntil(lambda: window.protocol_panel.state == "completed", timeout=20000)
    assert window.results.rowCount() == 4
    area_mm2 = (256 * 0.65e-3) ** 2  # a fake frame is 256 x 256 px of 0.65 um
    densities = {}
    for zone in ("CD63", "isotype"):
        for channel in ("AF488", "AF647"):
            counts = [r["count"] for r in rows if (r["zone"], r["channel"]) == (zone, channel)]
            mean, sd = statistics.fmean(counts), statistics.stdev(counts)
            assert cell(window, zone, channel, 2) == "2"
            assert cell(window, zone, channel, 3) == f"{mean:.1f} ± {sd:.1f}"
            assert cell(window, zone, channel, 4) == str(sum(counts))
            densities[zone, channel] = mean / area_mm2
            assert cell(window, zone, channel, 5).startswith(f"{mean / area_mm2:,.0f} ±")
    expected = densities["CD63", "AF647"] - densities["isotype", "AF647"]
    assert cell(window, "CD63", "AF647", 6) == f"{expected:.0f}"
    assert "isotype control" in cell(window, "isotype", "AF647", 7)
    assert cell(window, "isotype", "AF647", 6) == ""
    plot = window.counts_plot
    assert plot.parentWidget() is window.results.parentWidget(), "side by side"


def test_one_colour_per_zone_channels_by_style_and_symbol(qtbot: Any) -> None:
    plot = CountsPlot(["CD63", "isotype"])
    qtbot.addWidget(plot)
    for zone in ("isotype", "CD63"):
        for channel in ("AF488", "AF647"):
            plot.add_row({"zone": zone, "channel": channel, "field": 0, "step": 1,
                          "t_s": 60.0, "count": 10})
    pens = {name: curve.opts["pen"] for name, curve in plot.curves.items()}
    symbols = {name: curve.opts["symbol"] for name, curve in plot.curves.items()}
    assert pens["CD63", "AF488"].color() == pens["CD63", "AF647"].color()
    assert pens["CD63", "AF488"].color() != pens["isotype", "AF488"].color()
    assert pens["CD63", "AF488"].style() != pens["CD63", "AF647"].style()
    assert symbols["CD63", "AF488"] != symbols["CD63", "AF647"]
    assert pens["isotype", "AF488"].style() == pens["CD63", "AF488"].style()
    names = sorted(item.text for _sample, item in plot.legend.items)
    assert names == ["CD63 AF488", "CD63 AF647", "isotype AF488", "isotype AF647"]


def test_a_single_point_gets_a_sensible_axis(qtbot: Any) -> None:
    plot = CountsPlot(["CD63"])
    qtbot.addWidget(plot)
    plot.clear(started_s=1000.0)
    plot.add_row({"zone": "CD63", "channel": "AF647", "field": 0, "step": 3,
                  "t_s": 1000.0 + 5117.0 * 60, "count": 42})
    (x0, x1), (y0, y1) = plot.plot.getViewBox().viewRange()
    assert x0 < 5117.0 < x1 and x1 - x0 >= 2.0, (x0, x1)
    assert y0 == 0.0 and y1 > 42


def test_no_point_hides_under_the_legend(qtbot: Any) -> None:
    plot = CountsPlot(["CD9", "CD63", "CD81", "isotype"])
    qtbot.addWidget(plot)
    plot.resize(700, 260)
    plot.show()
    qtbot.waitExposed(plot)
    for minute, zone in enumerate(("CD9", "CD63", "CD81", "isotype")):
        for channel, count in (("AF488", 900), ("AF555", 1500), ("AF647", 1200)):
            plot.add_row({"zone": zone, "channel": channel, "field": 1, "step": minute,
                          "t_s": 60.0 * minute, "count": count})
    qtbot.wait(50)
    assert plot.legend.columnCount == 3  # a row per zone, a column per channel
    view = plot.plot.getViewBox()
    legend = plot.legend.mapRectToScene(plot.legend.boundingRect())
    for curve in plot.curves.values():
        xs, ys = curve.getData()
        for x, y in zip(xs, ys, strict=True):
            point = view.mapViewToScene(QPointF(float(x), float(y)))
            assert not legend.contains(point), (x, y)
            assert point.y() > legend.bottom()
    assert axis_range([3.0, 3.0], 2.0) == pytest.approx((1.9, 4.1))
    assert axis_range([1.0, 4.0], 2.0) == pytest.approx((0.85, 4.15))


def test_chip_map_shows_zones_fields_and_the_camera(qtbot: Any) -> None:
    bench = Bench.model_validate(GUI_BENCH)
    chip = ChipMap(bench)
    qtbot.addWidget(chip)
    assert set(chip.zone_items) == {"CD63", "isotype"}
    cd63 = chip.zone_items["CD63"].rect()
    assert (cd63.center().x(), cd63.center().y()) == (5000.0, 0.0)
    assert (cd63.width(), cd63.height()) == (1000.0, 1000.0)
    chip.set_field_size(166.4, 166.4)
    chip.add_field("CD63", 5000.0, 0.0)
    chip.add_field("CD63", 5250.0, 0.0)
    chip.add_field("CD63", 5250.0, 0.0)  # the same field in another channel
    assert len(chip.field_items) == 2 and chip.caption.full_text() == "2 fields acquired"
    chip.show_camera(5250.0, 10.0)
    camera = chip.camera.rect()
    assert chip.camera.isVisible()
    assert (camera.center().x(), camera.center().y()) == pytest.approx((5250.0, 10.0))
    assert camera.width() == pytest.approx(166.4)
    chip.clear_fields()
    assert chip.field_items == {}


def test_the_chip_map_follows_the_stage(window: MainWindow, qtbot: Any) -> None:
    window.engine.stages()["stage"].move_to(8000.0, 50.0)
    qtbot.waitUntil(lambda: window.chip_map.camera.isVisible()
                    and window.chip_map.camera.rect().center().x() == 8000.0, timeout=5000)


ONE_ZONE = """\
name: one zone
steps:
  - image:
      zones: [isotype]
      fields: 1
      channels:
        - {channel: AF488, exposure: 10 ms}
"""


def run_file(window: MainWindow, qtbot: Any, path: Path, text: str) -> list[dict[str, Any]]:
    path.write_text(text, encoding="utf-8")
    assert window.protocol_panel.open_file(str(path))
    rows: list[dict[str, Any]] = []
    window.bridge.counted.connect(rows.append)
    assert window.protocol_panel.start_run()
    qtbot.waitUntil(lambda: window.protocol_panel.state == "completed", timeout=20000)
    qtbot.waitUntil(lambda: len(rows) == len(window.current_rows) > 0, timeout=5000)
    window.bridge.counted.disconnect(rows.append)
    return rows


def test_a_past_run_chosen_in_the_browser_shows_its_results_and_counts(
        window: MainWindow, qtbot: Any, tmp_path: Path) -> None:
    first = run_file(window, qtbot, tmp_path / "first.yaml", RUN)
    first_folder = Path(window.session.folder)
    second = run_file(window, qtbot, tmp_path / "second.yaml", ONE_ZONE)
    assert len(second) == 1
    qtbot.waitUntil(lambda: window.results.rowCount() == 1, timeout=5000)
    assert window.counts_plot.rows == 1
    window.browser.show_run(first_folder)
    qtbot.waitUntil(lambda: window.results.rowCount() == 4, timeout=5000)
    assert window.counts_plot.rows == len(first) == 8
    for zone in ("CD63", "isotype"):
        for channel in ("AF488", "AF647"):
            counts = [r["count"] for r in first if (r["zone"], r["channel"]) == (zone, channel)]
            assert cell(window, zone, channel, 4) == str(sum(counts))
            assert window.counts_plot.latest(zone, channel) == statistics.fmean(counts)
    assert window.docks["Counts"].windowTitle() == f"Counts — {first_folder.name}"
    window.browser.show_run(None)  # back to the current run
    qtbot.waitUntil(lambda: window.results.rowCount() == 1, timeout=5000)
    assert cell(window, "isotype", "AF488", 4) == str(second[0]["count"])
    assert window.counts_plot.rows == 1 and window.docks["Counts"].windowTitle() == "Counts"
