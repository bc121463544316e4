"""The Micro-Manager bridge, driven through pymmcore-plus' UniMMCore with Python devices.

The bench file names a Micro-Manager configuration whose `#py pyDevice` lines load the devices
of tests/mm_devices.py, so every call goes from chipctl's roles through the core's standard
API to a device adapter, as with a vendor's C++ adapter. What the camera shows is known from
mm_devices.SCENE, which the counter never sees.
"""

from __future__ import annotations

import csv
import functools
import json
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

pytest.importorskip("pymmcore_plus")

import mm_devices as mm  # noqa: E402 - needs pymmcore_plus

from chipctl.cli.main import main  # noqa: E402
from chipctl.config.bench import load_bench  # noqa: E402
from chipctl.config.devices import MicroManagerSettings, device_settings  # noqa: E402
from chipctl.config.sourcefile import SourceError  # noqa: E402
from chipctl.devices.autofocus import autofocus  # noqa: E402
from chipctl.devices.micromanager.core import MicroManagerUnavailable, open_core  # noqa: E402
from chipctl.devices.micromanager.scope import MicroManagerScope  # noqa: E402
from chipctl.devices.registry import build_rig  # noqa: E402
from chipctl.devices.rig import Rig  # noqa: E402
from chipctl.runs.frames import read_frame  # noqa: E402
from chipctl.vision import count_frame  # noqa: E402
from drivers.errors import (  # noqa: E402
    CameraTimeout,
    DeviceError,
    OutOfRange,
    StageFault,
)

pytestmark = pytest.mark.timeout(90)
TESTS = Path(__file__).resolve().parent

PROTOCOL = """\
name: Micro-Manager imaging
steps:
  - image:
      zones: [CD63, CD81]
      fields: 2
      field_spacing: 100 um
      autofocus: true
      channels: [{channel: AF488, exposure: 50 ms, power: 80 %},
                 {channel: AF647, exposure: 50 ms, power: 80 %}]
"""
CHANNEL_FILTER = {"AF488": "GFP", "AF647": "Cy5"}


@pytest.fixture(autouse=True)
def scene() -> Iterator[mm.Scene]:
    yield mm.reset(seed=4, surface_z_um=9.3)
    if mm.SCENE.snap_hang is not None:
        mm.SCENE.snap_hang.set()


@pytest.fixture
def rig(tmp_path: Path) -> Iterator[Rig]:
    rig = build_rig(load_bench(mm.write_bench(tmp_path)))
    rig.connect()
    yield rig
    rig.close()


def close_to_truth(count: int, truth: int) -> bool:
    return abs(count - truth) <= max(2, round(0.15 * truth))


# -- the bench file ----------------------------------------------------------------------------
def test_a_micromanager_entry_serves_every_role_it_maps(tmp_path: Path) -> None:
    bench = load_bench(mm.write_bench(tmp_path))
    spec = bench.devices["scope"]
    assert spec.kinds == ("camera", "stage", "illuminator")
    for kind in ("camera", "stage", "illuminator"):
        assert list(bench.of_kind(kind)) == ["scope"]
    assert not bench.of_kind("pump")
    assert spec.channels["AF488"].filter == "GFP"
    assert device_settings("micromanager", config="x.cfg", roles={"camera": "Cam"}).kinds == (
        "camera",)


@pytest.mark.parametrize(("old", "new", "expected"), [
    ("light: LED, filter", "lamp: LED, filter", ":6: devices.scope.roles.lamp: unknown field"),
    ("    config: scope.cfg\n", "", ":3: devices.scope: missing field 'config'"),
    ("AF488: {filter: GFP, power_property: Intensity}", "AF488: {preset: FITC}",
     ":3: devices.scope: channels.AF488 names a preset: give channel_group too"),
])
def test_a_wrong_micromanager_entry_is_refused_with_its_line(
        tmp_path: Path, old: str, new: str, expected: str) -> None:
    path = mm.write_bench(tmp_path)
    path.write_text(path.read_text().replace(old, new))
    with pytest.raises(SourceError) as info:
        load_bench(path)
    assert f"{path}{expected}" in str(info.value)


# -- a protocol's image step, end to end --------------------------------------------------------
def test_a_protocol_images_through_micromanager_and_counts_what_is_there(
        tmp_path: Path, scene: mm.Scene) -> None:
    """`chipctl run` in its own process: autofocus, stage moves, filter and light per channel,
    frames with Micro-Manager's pixel size; counts agree with the scene; exit code 0 (the
    process also ends cleanly once the core is unloaded)."""
    bench = mm.write_bench(tmp_path)
    protocol = tmp_path / "image.yaml"
    protocol.write_text(PROTOCOL)
    env = {**os.environ, **mm.scene_env(scene),
           "PYTHONPATH": os.pathsep.join([str(TESTS), str(TESTS.parent)])}
    done = subprocess.run([sys.executable, "-m", "chipctl", "run", str(protocol), "--bench",
                           str(bench), "--runs-dir", str(tmp_path / "runs"), "--yes"],
                          capture_output=True, text=True, env=env, timeout=80, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    folder = next((tmp_path / "runs").glob("*/run.json")).parent
    rows = list(csv.DictReader((folder / "counts.csv").open()))
    assert len(rows) == 2 * 2 * 2  # zones x fields x channels
    for row in rows:
        x, y = float(row["x_um"]), float(row["y_um"])
        truth = scene.truth(x, y, CHANNEL_FILTER[row["channel"]])
        assert truth > 5 and close_to_truth(int(row["count"]), truth), (row, truth)
    events = [json.loads(line) for line in (folder / "events.jsonl").open()]
    focus = [e["z_um"] for e in events if e["event"] == "autofocus"]
    assert len(focus) == 4 and all(abs(z - scene.surface_z_um) < 0.5 for z in focus), focus
    files = sorted((folder / "frames").glob("*.ome.tif"))
    assert len(files) == 8
    image, meta = read_frame(files[0])
    assert image.shape == mm.SENSOR and meta["pixel_size_um"] == pytest.approx(mm.PIXEL_UM)
    assert abs(meta["z_um"] - scene.surface_z_um) < 0.5
    devices = json.loads((folder / "run.json").read_text())["versions"]["devices"]["scope"]
    assert "Micro-Manager" in devices["model"] and "camera=Camera" in devices["firmware"]
    assert not scene.light_open, "the light is off after the run"


# -- autofocus and the roles one by one ---------------------------------------------------------
@pytest.mark.parametrize(("seed", "surface"), [(1, 4.0), (2, -7.5), (3, 18.2)])
def test_autofocus_finds_the_surface_through_micromanager(
        tmp_path: Path, seed: int, surface: float) -> None:
    scene = mm.reset(seed=seed, surface_z_um=surface)
    rig = build_rig(load_bench(mm.write_bench(tmp_path)))
    rig.connect()
    try:
        camera, stage, light = (rig.first(k) for k in ("camera", "stage", "illuminator"))
        stage.move_to(30.0, -20.0)
        stage.wait_idle()
        light.light("AF488", 80)
        found = autofocus(camera, stage)
        assert abs(found.z_um - surface) < 0.5 and scene.z_um == pytest.approx(found.z_um)
        frame = camera.snap()
        assert frame.metadata["stage_z_um"] == pytest.approx(found.z_um)
        assert close_to_truth(count_frame(frame.image).count, scene.truth(30, -20, "GFP"))
    finally:
        rig.close()


def test_channels_turn_the_filter_set_the_power_and_open_the_light(
        rig: Rig, scene: mm.Scene) -> None:
    light, camera, stage = (rig.first(k) for k in ("illuminator", "camera", "stage"))
    assert light.channels == ("AF488", "AF647")
    stage.focus_to(scene.surface_z_um)
    stage.wait_idle()
    light.light("AF647", 60)
    assert (mm.FILTERS[scene.filter_state], scene.power, scene.light_open) == ("Cy5", 60.0, True)
    assert light.state() == {"AF488": (False, 60.0), "AF647": (True, 60.0)}
    cy5 = count_frame(camera.snap().image).count
    light.light("AF488", 90)
    gfp = count_frame(camera.snap().image).count
    assert close_to_truth(cy5, scene.truth(0, 0, "Cy5"))
    assert close_to_truth(gfp, scene.truth(0, 0, "GFP"))
    light.dark()
    assert not scene.light_open and light.state()["AF488"] == (False, 90.0)
    assert count_frame(camera.snap().image).count == 0


def test_without_channels_each_filter_label_is_a_channel(tmp_path: Path) -> None:
    text = mm.BENCH.replace("      AF488: {{filter: GFP, power_property: Intensity}}\n"
                            "      AF647: {{filter: Cy5, power_property: Intensity}}\n", "")
    rig = build_rig(load_bench(mm.write_bench(tmp_path, bench=text.replace("    channels:\n", ""))))
    rig.connect()
    try:
        assert rig.first("illuminator").channels == ("GFP", "Cy5", "Empty")
    finally:
        rig.close()


def test_exposure_and_pixel_size_come_from_micromanager(tmp_path: Path) -> None:
    rig = build_rig(load_bench(mm.write_bench(tmp_path, pixel_um=0.325)))
    rig.connect()
    try:
        camera = rig.first("camera")
        assert camera.pixel_size_um == pytest.approx(0.325)
        camera.exposure_ms = 20
        core = rig.devices["scope"].core
        assert core.getExposure("Camera") == pytest.approx(20.0)
        frame = camera.snap()
        assert frame.metadata["exposure_ms"] == 20 and frame.image.dtype == np.uint16
        assert frame.metadata["pixel_size_um"] == pytest.approx(0.325)
    finally:
        rig.close()


def test_stage_moves_wait_for_the_drives_and_check_arrival(rig: Rig, scene: mm.Scene) -> None:
    stage = rig.first("stage")
    stage.move_to(120.0, -80.0)
    stage.focus_to(3.5)
    stage.wait_idle()
    assert stage.position() == (120.0, -80.0) and stage.focus() == 3.5
    scene.xy_shortfall_um = 5.0
    stage.move_to(10.0, 10.0)
    with pytest.raises(StageFault, match=r"scope xy 'XY': stopped at \(5, 10\) um"):
        stage.wait_idle()


# -- errors ------------------------------------------------------------------------------------
def test_device_errors_become_typed_errors_naming_the_device(rig: Rig, scene: mm.Scene) -> None:
    stage, camera, light = (rig.first(k) for k in ("stage", "camera", "illuminator"))
    with pytest.raises(OutOfRange, match=r"scope xy 'XY': move to \(9000, 0\) um: .*travel"):
        stage.move_to(9000.0, 0.0)
    with pytest.raises(OutOfRange, match="scope light 'LED': unknown channel 'DAPI'"):
        light.light("DAPI", 50)
    scene.snap_fault = "camera link lost"
    with pytest.raises(DeviceError, match="scope camera 'Camera': snap: camera link lost") as info:
        camera.snap()
    assert not isinstance(info.value, CameraTimeout)
    scene.snap_fault = None
    scene.snap_hang = threading.Event()
    with pytest.raises(CameraTimeout, match="scope camera 'Camera': no frame within 0.2 s"):
        camera.snap(timeout_s=0.2)
    scene.snap_hang.set()
    scene.snap_hang = None
    assert camera.snap().image.shape == mm.SENSOR, "the camera works again once it delivers"


def run_cli(tmp_path: Path, bench: Path) -> int:
    protocol = tmp_path / "image.yaml"
    protocol.write_text(PROTOCOL)
    return main(["run", str(protocol), "--bench", str(bench), "--runs-dir",
                 str(tmp_path / "runs"), "--yes"])


def test_a_camera_fault_during_a_run_fails_it_naming_the_device(
        tmp_path: Path, scene: mm.Scene, capsys: pytest.CaptureFixture[str]) -> None:
    scene.snap_fault = "frame grabber overrun"
    assert run_cli(tmp_path, mm.write_bench(tmp_path)) == 1
    out = capsys.readouterr().out
    assert "run failed" in out and "scope camera 'Camera': snap: frame grabber overrun" in out
    assert not scene.light_open, "the light went dark when the run failed"


def test_a_missing_device_adapter_exits_2_saying_what_to_install(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = ("Device,Camera,HamamatsuHam,HamamatsuHam_DCAM\n" + mm.CONFIG.split("\n", 1)[1])
    bench = mm.write_bench(tmp_path, config=config)
    empty = tmp_path / "Micro-Manager-2.0"
    empty.mkdir()
    bench.write_text(bench.read_text().replace("    config: scope.cfg",
                                               f"    config: {tmp_path / 'scope.cfg'}\n"
                                               f"    mm_dir: {empty}"))
    assert run_cli(tmp_path, bench) == 2
    err = capsys.readouterr().err
    assert "the Micro-Manager device adapter 'HamamatsuHam'" in err
    assert f"scope.cfg:1, device 'Camera') is not in {empty}" in err
    assert "install the Micro-Manager build that includes it" in err
    assert "Traceback" not in err


def test_no_micromanager_installation_says_how_to_get_one(tmp_path: Path) -> None:
    config = "Device,Camera,HamamatsuHam,HamamatsuHam_DCAM\n"
    settings = load_bench(mm.write_bench(tmp_path, config=config)).devices["scope"]
    assert isinstance(settings, MicroManagerSettings)
    opener = functools.partial(open_core, find=lambda: None)
    scope = MicroManagerScope("scope", settings, opener)
    with pytest.raises(MicroManagerUnavailable) as info:
        scope.connect()
    message = str(info.value)
    assert "no Micro-Manager installation found for the device adapter 'HamamatsuHam'" in message
    assert "configuration line 1" in message and "mmcore install" in message
    assert scope.core is None


def test_without_pymmcore_plus_the_run_exits_2_saying_what_to_install(
        tmp_path: Path, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    bench = mm.write_bench(tmp_path)
    monkeypatch.setitem(sys.modules, "pymmcore_plus", None)  # as if not installed
    assert run_cli(tmp_path, bench) == 2
    err = capsys.readouterr().err
    assert "scope: pymmcore-plus is not installed" in err
    assert "pip install 'chipctl[micromanager]'" in err


@pytest.mark.parametrize(("roles", "expected"), [
    ("{camera: Camera, xy: Camera, light: LED}",
     "roles.xy: 'Camera' is a CameraDevice, not a XYStageDevice"),
    ("{camera: Camera, focus: Zed, light: LED}", "roles.focus: no device 'Zed' in scope.cfg"),
])
def test_roles_that_do_not_match_the_configuration_exit_2(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], roles: str, expected: str) -> None:
    text = mm.BENCH.replace("{{camera: Camera, xy: XY, focus: Z, light: LED, filter: Turret}}",
                            roles.replace("{", "{{").replace("}", "}}"))
    text = text.replace("{{filter: GFP, power_property: Intensity}}", "{{}}")
    text = text.replace("{{filter: Cy5, power_property: Intensity}}", "{{}}")
    assert run_cli(tmp_path, mm.write_bench(tmp_path, bench=text)) == 2
    assert expected in capsys.readouterr().err


def test_no_pixel_size_anywhere_exits_2(tmp_path: Path,
                                        capsys: pytest.CaptureFixture[str]) -> None:
    config = "".join(line + "\n" for line in mm.CONFIG.splitlines() if "PixelSize" not in line)
    assert run_cli(tmp_path, mm.write_bench(tmp_path, config=config)) == 2
    assert "no pixel size calibration" in capsys.readouterr().err


def test_a_failed_connection_unloads_the_configuration(tmp_path: Path) -> None:
    config = "".join(line + "\n" for line in mm.CONFIG.splitlines() if "PixelSize" not in line)
    settings = load_bench(mm.write_bench(tmp_path, config=config)).devices["scope"]
    assert isinstance(settings, MicroManagerSettings)
    cores: list[Any] = []

    def opener(*args: Any) -> Any:
        cores.append(open_core(*args))
        return cores[-1]

    scope = MicroManagerScope("scope", settings, opener)
    with pytest.raises(OutOfRange):
        scope.connect()
    assert scope.core is None and list(cores[0].getLoadedDevices()) == ["Core"]


# -- the GUI -----------------------------------------------------------------------------------
@pytest.fixture
def window(tmp_path: Path, qtbot: Any) -> Iterator[Any]:
    from PySide6.QtCore import QSettings

    from chipctl.engine import Engine
    from gui.main_window import MainWindow

    engine = Engine(load_bench(mm.write_bench(tmp_path)), runs_dir=tmp_path / "runs")
    engine.connect()
    win = MainWindow(engine, QSettings(str(tmp_path / "gui.ini"), QSettings.Format.IniFormat),
                     open_url=lambda url: None)
    win.ask_before_close = False
    qtbot.addWidget(win)
    win.show()
    yield win
    win.close()
    engine.close()


def test_the_gui_lights_focuses_and_streams_live_through_micromanager(
        window: Any, qtbot: Any, scene: mm.Scene) -> None:
    light_box, = window.light_boxes
    stage_box, = window.stage_boxes
    camera_box, = window.camera_boxes
    assert [light_box.channel.itemText(i) for i in range(2)] == ["AF488", "AF647"]
    light_box.power.setValue(70)
    light_box.on_button.click()
    qtbot.waitUntil(lambda: scene.light_open and scene.power == 70.0, timeout=10000)
    assert mm.FILTERS[scene.filter_state] == "GFP"
    next(b for b in stage_box.controls if b.text() == "Autofocus").click()
    qtbot.waitUntil(lambda: "z 9." in stage_box.position.text(), timeout=20000)
    assert abs(scene.z_um - scene.surface_z_um) < 0.5
    shown = window.live_view.frames_shown
    camera_box.live_button.click()
    qtbot.waitUntil(lambda: window.live_view.frames_shown >= shown + 3, timeout=20000)
    camera_box.live_button.click()
    latest = window.frames.latest()
    assert latest is not None
    frame = latest[1]
    assert frame.image.shape == mm.SENSOR
    assert frame.metadata["stage_z_um"] == pytest.approx(scene.z_um)
    assert close_to_truth(count_frame(frame.image).count, scene.truth(0, 0, "GFP"))
