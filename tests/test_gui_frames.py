"""The live view shows what is on screen and what was acquired: overlay and channel act on the
displayed frame, a frame browser for the current and any past run (with detections), the pixel
value under the cursor, per-channel colour maps and a composite, a saturation warning, fit and
1:1 zoom."""

from __future__ import annotations

import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

from pathlib import Path
from typing import Any

import numpy as np
import pytest
from fakes import fake_engine, spots_image
from PySide6.QtCore import QPointF, QSettings

from gui.core import Frame, make_counter, read_frame
from gui.frame_archive import RunArchive, past_run
from gui.frames import COMPOSITE, Shown, channel_rgb
from gui.live_view import colour_map, pixel_text
from gui.main_window import MainWindow

pytestmark = pytest.mark.timeout(60)

RUN = """\
name: two channels
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
    win = MainWindow(fake_engine(tmp_path / "runs"),
                     QSettings(str(tmp_path / "gui.ini"), QSettings.Format.IniFormat),
                     open_url=lambda url: None)
    win.ask_before_close = False
    qtbot.addWidget(win)
    win.resize(1366, 768)
    win.show()
    return win


def run_protocol(window: MainWindow, qtbot: Any, tmp_path: Path, keep: str = "none") -> None:
    window.engine.keep_frames = keep
    path = tmp_path / "two.yaml"
    path.write_text(RUN, encoding="utf-8")
    assert window.protocol_panel.open_file(str(path)), window.protocol_panel.problems
    assert window.protocol_panel.start_run()
    qtbot.waitUntil(lambda: window.protocol_panel.state == "completed", timeout=20000)


def frame(channel: str, n: int, seed: int, **meta: Any) -> Frame:
    return Frame(spots_image(n, size=128, seed=seed), {"channel": channel, **meta})


def test_overlay_and_channel_act_on_the_frame_on_screen(window: MainWindow, qtbot: Any) -> None:
    view = window.live_view
    window.frames.put(frame("AF488", 8, 1, zone="CD63", field=0))
    window.frames.put(frame("AF647", 15, 2, zone="CD63", field=0))
    qtbot.waitUntil(lambda: view.shown is not None and "AF647" in view.caption.full_text(),
                    timeout=5000)
    assert view.shown.spots is None
    view.spots_box.setChecked(True)  # no new frame arrives: the frame on screen is counted
    qtbot.waitUntil(lambda: view.shown.spots is not None, timeout=5000)
    assert view.shown.spots.count == window.live_view.preparer._counter(
        view.shown.frame.image).count >= 12
    view.channel_box.setCurrentIndex(view.channel_box.findData("AF488"))
    qtbot.waitUntil(lambda: "AF488" in view.caption.full_text(), timeout=5000)
    assert view.shown.spots is not None and view.shown.spots.count < 12
    view.spots_box.setChecked(False)
    qtbot.waitUntil(lambda: view.shown.spots is None, timeout=5000)
    assert len(view.spots.data) == 0


def test_composite_and_per_channel_colour_maps(window: MainWindow, qtbot: Any) -> None:
    view = window.live_view
    window.frames.put(frame("AF488", 8, 1))
    window.frames.put(frame("AF647", 15, 2))
    qtbot.waitUntil(lambda: view.shown is not None, timeout=5000)
    top = view.histogram.gradient.colorMap().getColors()[-1][:3]
    assert tuple(int(c) for c in top) == tuple(int(255 * c) for c in channel_rgb("AF647"))
    view.grey_box.setChecked(True)
    assert tuple(view.histogram.gradient.colorMap().getColors()[-1][:3]) == (255, 255, 255)
    view.channel_box.setCurrentIndex(view.channel_box.findData(COMPOSITE))
    qtbot.waitUntil(lambda: view.shown.layers != (), timeout=5000)
    assert [channel for channel, _ in view.shown.layers] == ["AF488", "AF647"]
    assert view.shown.display.ndim == 3 and view.shown.display.shape[2] == 3
    assert "composite AF488 + AF647" in view.caption.full_text()
    assert not view.histogram.isVisible()
    assert np.all(colour_map("AF555", False).getColors()[0][:3] == 0)


def test_the_composite_marks_each_channels_detections_in_its_colour(window: MainWindow,
                                                                   qtbot: Any) -> None:
    view = window.live_view
    window.frames.put(frame("AF488", 6, 1))
    window.frames.put(frame("AF647", 14, 2))
    view.channel_box.setCurrentIndex(view.channel_box.findData(COMPOSITE))
    view.spots_box.setChecked(True)
    qtbot.waitUntil(lambda: view.shown is not None and len(view.shown.layer_spots) == 2,
                    timeout=5000)
    counter = view.preparer._counter
    expected = {channel: counter(f.image).count for channel, f in view.shown.layers}
    assert expected["AF647"] > expected["AF488"] > 0
    colours: dict[tuple[int, int, int], int] = {}
    for pen in view.spots.data["pen"]:
        rgb = pen.color().getRgb()[:3]
        colours[rgb] = colours.get(rgb, 0) + 1
    assert colours == {tuple(int(255 * c) for c in channel_rgb(channel)): n
                       for channel, n in expected.items()}
    assert (f"{expected['AF488']} spots in AF488, {expected['AF647']} spots in AF647 marked"
            in view.caption.full_text())
    view.spots_box.setChecked(False)
    qtbot.waitUntil(lambda: view.shown.layer_spots == (), timeout=5000)
    assert len(view.spots.data) == 0


def test_pixel_value_under_the_cursor_is_the_sensor_value(window: MainWindow,
                                                          qtbot: Any) -> None:
    image = np.full((64, 80), 100, np.uint16)
    image[10, 20] = 4321
    image[11, 21] = 65535
    shown = Shown(1, Frame(image, {"channel": "AF647"}), image)
    assert pixel_text(shown, 20.5, 10.2) == "pixel x 20, y 10: AF647 4321 ADU"
    assert "(saturated)" in pixel_text(shown, 21.9, 11.0)
    assert pixel_text(shown, 80.5, 10) == ""  # outside the frame
    view = window.live_view
    window.frames.put(Frame(image, {"channel": "AF647"}))
    qtbot.waitUntil(lambda: view.shown is not None, timeout=5000)
    view.zoom_fit()
    view._mouse_moved(view.view.mapViewToScene(QPointF(20.5, 10.5)))
    assert view.pixel.full_text() == "pixel x 20, y 10: AF647 4321 ADU"


def test_saturation_is_warned(window: MainWindow, qtbot: Any) -> None:
    image = spots_image(5, size=128, seed=4)
    image[:2, :3] = 65535
    window.frames.put(Frame(image, {"channel": "AF555"}))
    view = window.live_view
    qtbot.waitUntil(lambda: view.shown is not None, timeout=5000)
    assert view.shown.saturated == 6
    assert "6 pixels saturated" in view.saturation.full_text()
    window.frames.put(Frame(spots_image(5, size=128, seed=5), {"channel": "AF555"}))
    qtbot.waitUntil(lambda: view.shown.saturated == 0, timeout=5000)
    assert view.saturation.full_text() == ""


def test_fit_and_one_to_one_zoom(window: MainWindow, qtbot: Any) -> None:
    view = window.live_view
    window.frames.put(Frame(spots_image(5, size=256, seed=4), {"channel": "AF555"}))
    qtbot.waitUntil(lambda: view.shown is not None, timeout=5000)
    view.zoom_one_to_one()
    assert view.pixels_per_sensor_pixel() == pytest.approx(1.0, rel=0.02)
    view.zoom_fit()
    (x0, x1), (y0, y1) = view.view.viewRange()
    assert x0 <= 0.5 and x1 >= 255.5 and y0 <= 0.5 and y1 >= 255.5


def test_frame_browser_shows_the_current_runs_frames_with_their_detections(
        window: MainWindow, qtbot: Any, tmp_path: Path) -> None:
    run_protocol(window, qtbot, tmp_path)
    browser = window.browser
    qtbot.waitUntil(lambda: browser.table.rowCount() == 8, timeout=5000)  # 2 zones x 2 x 2
    records = browser.records
    assert [(r.zone, r.field, r.channel) for r in records[:4]] == [
        ("CD63", 1, "AF488"), ("CD63", 1, "AF647"), ("CD63", 2, "AF488"), ("CD63", 2, "AF647")]
    assert all(r.count is not None for r in records)
    row = 3
    browser.choose(row)
    view = window.live_view
    qtbot.waitUntil(lambda: view.shown is not None and view.shown.pinned
                    and view.shown.spots is not None, timeout=5000)
    assert view.shown.spots.count == records[row].count, "the run's own detections"
    assert "field 2" in view.caption.full_text() and "AF647" in view.caption.full_text()
    assert "frame 4" in view.banner.full_text() and view.live_button.isVisible()
    window.frames.put(frame("AF647", 3, 9))  # a live frame does not replace a browsed one
    qtbot.wait(300)
    assert view.shown.pinned
    view.live_button.click()
    qtbot.waitUntil(lambda: not view.shown.pinned, timeout=5000)


def test_frame_browser_reads_a_past_runs_frames_from_its_folder(
        window: MainWindow, qtbot: Any, tmp_path: Path) -> None:
    run_protocol(window, qtbot, tmp_path, keep="all")
    folder = Path(window.session.folder)
    window.history.refresh()
    window.history.browse_frames(0)
    browser = window.browser
    assert browser.run == str(folder)
    qtbot.waitUntil(lambda: browser.table.rowCount() == 8, timeout=5000)
    assert all(r.file is not None and r.file.is_file() for r in browser.records)
    assert browser.table.item(0, 7).text() == "file"
    assert [r.count for r in browser.records] == [r.count for r in past_run(folder)]
    browser.choose(5)
    view = window.live_view
    qtbot.waitUntil(lambda: view.shown is not None and view.shown.pinned
                    and view.shown.spots is not None, timeout=5000)
    record = browser.records[5]
    image, _meta = read_frame(record.file)
    assert np.array_equal(view.shown.frame.image, image)
    counter = make_counter(window.engine.count_params)
    assert view.shown.spots.count == counter(image).count == record.count
    assert folder.name in view.banner.full_text()


def test_run_archive_keeps_images_within_its_budget() -> None:
    archive = RunArchive(budget_bytes=3 * 128 * 128 * 2)
    for seq in range(5):
        archive.add_frame(frame("AF647", 3, seq, zone="CD63", field=seq + 1))
        archive.add_count({"zone": "CD63", "field": seq + 1, "channel": "AF647", "count": seq,
                           "step": 0})
    assert [r.count for r in archive.records()] == [0, 1, 2, 3, 4]
    assert [r.field for r in archive.records()] == [1, 2, 3, 4, 5]  # 1-based for people
    assert archive.in_memory() == [2, 3, 4] and archive.spilled() == [0, 1]
    first = archive.frame(0)  # no folder kept it: from the disk cache, as it was
    assert first is not None and np.array_equal(first.image,
                                                frame("AF647", 3, 0).image)
    assert first.metadata["field"] == 1
    cache = archive._spilled[0][0]
    archive.clear()
    assert archive.records() == [] and archive.spilled() == [] and not cache.exists()
    archive.close()


def test_the_disk_cache_is_bounded_oldest_frames_out_first() -> None:
    size = 128 * 128 * 2
    archive = RunArchive(budget_bytes=size, spill_bytes=int(2.5 * size))
    for seq in range(6):
        archive.add_frame(frame("AF647", 3, seq, zone="CD63", field=seq + 1))
    assert archive.in_memory() == [5] and archive.spilled() == [3, 4]
    assert archive.frame(0) is None and archive.frame(3) is not None
    archive.close()
    assert archive.spilled() == [] and archive.frame(3) is None


def test_frames_the_run_keeps_on_disk_are_not_held_in_memory(
        window: MainWindow, qtbot: Any, tmp_path: Path) -> None:
    run_protocol(window, qtbot, tmp_path, keep="all")
    archive = window.archive
    assert archive.in_memory() == [6, 7]  # only the newest, until the folder had them
    browser = window.browser
    qtbot.waitUntil(lambda: browser.table.rowCount() == 8, timeout=5000)
    assert browser.table.item(0, 7).text() == "file"
    first = archive.frame(0)  # read back from the run folder's OME-TIFF
    assert first is not None and first.image.shape == (256, 256)
    assert archive.records()[0].zone == "CD63" and archive.records()[0].channel == "AF488"
