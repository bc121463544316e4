"""The camera interface: the sim-camera wire protocol, frames with truth, timeouts, buffering."""

from __future__ import annotations

import json
import time
import zlib

import numpy as np
import pytest
from scope_support import ConstantFlow, ManualClock, served, serving
from wire import expected_protocol

from chipctl.config.devices import device_settings
from chipctl.devices.cameras import SimulatorCamera, make_opencv_camera, make_sim_camera
from drivers.errors import CameraTimeout, DeviceBusy, DeviceDisconnected, GarbledReply, OutOfRange
from drivers.simcamera import SimCamera
from drivers.transport import SerialTransport
from hardware_sim.camera import SimCameraEmulator
from hardware_sim.chip import default_chip
from hardware_sim.clock import VirtualClock
from hardware_sim.world import Reagent, World

INFO = b'INFO {"model": "SimCam", "width": 64, "height": 32, "pixel_size_um": 0.65, "bits": 16}\r\n'


class FixedLed:
    """An illuminator model: one channel lit."""

    def __init__(self, power: float = 50.0, wavelength: float = 470.0) -> None:
        self.power, self.wavelength = power, wavelength

    def emission(self) -> list[tuple[str, float, float]]:
        return [("A", self.wavelength, self.power)] if self.power > 0 else []


class FixedStage:
    def __init__(self, x: float = 0.0, y: float = 0.0, z: float = 0.0) -> None:
        self.x, self.y, self.z = x, y, z

    def xyz_um(self) -> tuple[float, float, float]:
        return self.x, self.y, self.z


def frame_reply(width: int, height: int, meta: dict, fill: int = 7, flip: int = -1) -> bytes:
    """A FRAME reply; `flip` >= 0 flips a bit of that payload byte after the CRC is taken."""
    body = json.dumps(meta).encode()
    payload = bytearray(body + np.full((height, width), fill, "<u2").tobytes())
    header = f"FRAME {width} {height} {len(body)} {len(payload)} {zlib.crc32(payload):08x}\r\n"
    if flip >= 0:
        payload[flip] ^= 0x04
    return header.encode() + bytes(payload)


# -- exact bytes ---------------------------------------------------------------------------------
def test_simcamera_driver_bytes() -> None:
    with expected_protocol(
        [
            (b"INFO?\r", INFO),
            (b"EXP 20\r", b"OK\r\n"),
            (b"EXP?\r", b"EXP 20\r\n"),
            (b"GAIN 2\r", b"OK\r\n"),
            (b"GAIN?\r", b"GAIN 2\r\n"),
            (b"ROI 8 4 32 16\r", b"OK\r\n"),
            (b"ROI?\r", b"ROI 8 4 32 16\r\n"),
            (b"BIN 2\r", b"OK\r\n"),
            (b"BIN?\r", b"BIN 2\r\n"),
            (b"SNAP\r", frame_reply(16, 8, {"frame": 1, "exposure_ms": 20})),
            (b"ABORT\r", b"OK\r\n"),
        ], timeout=0.2) as transport:
        camera = SimCamera(transport)
        assert camera.connect()["width"] == 64
        camera.set_exposure(20)
        assert camera.exposure() == 20
        camera.set_gain(2)
        assert camera.gain() == 2
        camera.set_roi(8, 4, 32, 16)
        assert camera.roi() == (8, 4, 32, 16)
        camera.set_binning(2)
        assert camera.binning() == 2
        image, meta = camera.snap(1.0)
        assert image.shape == (8, 16) and image.dtype == np.uint16 and int(image[0, 0]) == 7
        assert meta == {"frame": 1, "exposure_ms": 20}
        camera.abort()


def test_simcamera_driver_errors_are_typed() -> None:
    with expected_protocol(
        [
            (b"EXP 5\r", b"ERR exposure out of range 0.01..10000 ms\r\n"),
            (b"SNAP\r", b"ERR busy\r\n"),
            (b"SNAP\r", b"FRAME 2 x 9\r\n"),
            (b"RESEND\r", b"FRAME 2 x 9\r\n"),
            (b"EXP?\r", b"EXP fast\r\n"),
        ], timeout=0.2) as transport:
        camera = SimCamera(transport)
        with pytest.raises(OutOfRange):
            camera.set_exposure(5)
        with pytest.raises(DeviceBusy):
            camera.snap(0.5)
        with pytest.raises(GarbledReply):
            camera.snap(0.5)
        with pytest.raises(GarbledReply):
            camera.exposure()
        with pytest.raises(OutOfRange):
            camera.set_binning(3)  # refused before anything is sent


def test_damaged_frame_is_asked_for_again_once() -> None:
    meta = {"frame": 3}
    with expected_protocol(
        [
            (b"SNAP\r", frame_reply(4, 2, meta, flip=20)),  # a bit flipped in the pixels
            (b"RESEND\r", frame_reply(4, 2, meta)),
            (b"SNAP\r", frame_reply(4, 2, meta, flip=3)),  # in the metadata, twice
            (b"RESEND\r", frame_reply(4, 2, meta, flip=3)),
            (b"SNAP\r", b"FRAME 4 2 11 99 00000000\r\n"),  # a length that is not its size
            (b"RESEND\r", b"FRAME 4 2 11 99 00000000\r\n"),
        ], timeout=0.2) as transport:
        camera = SimCamera(transport, timeout=0.2)
        camera.name = "camera"
        image, got = camera.snap(1.0)
        assert got == meta and int(image[1, 3]) == 7
        with pytest.raises(GarbledReply, match="camera: frame damaged in transfer"):
            camera.snap(1.0)
        with pytest.raises(GarbledReply, match="payload length"):
            camera.snap(1.0)


def test_snap_without_frame_times_out_and_aborts() -> None:
    pairs = [(b"SNAP\r", b""), (b"ABORT\r", b"OK\r\n")]
    with expected_protocol(pairs, timeout=0.2) as transport, \
            pytest.raises(CameraTimeout, match="within 0.3 s"):
        SimCamera(transport).snap(0.3)


# -- against the emulator ------------------------------------------------------------------------
@pytest.fixture
def bench():
    world = World(VirtualClock(speed=20.0), seed=5)
    world.chip = default_chip(seed=5)
    # Vesicles already on the zone, so every field has some whatever the machine's speed (flow
    # adds more as the virtual clock runs).
    world.chip.deposit("CD9", 20000, ("AF488",))
    world.reagents["sample"] = Reagent("sample", 3e8, {"CD9": 0.9}, ("AF488",))
    world.pumps["p"] = ConstantFlow("sample", 5.0)
    world.devices["led"] = FixedLed()
    world.devices["stage"] = FixedStage()
    emulator = SimCameraEmulator(world, "camera")
    with serving(emulator, world.lock) as endpoint:
        emulator.faults = endpoint.faults  # link faults armed from the test
        settings = device_settings("sim-camera", exposure="40 ms", pixel_size_um=0.65)
        camera = make_sim_camera("camera", settings, SerialTransport(endpoint.url, name="camera"))
        camera.connect()
        yield world, emulator, camera
        camera.close()


def test_frames_arrive_at_requested_exposure_roi_with_truth(bench) -> None:
    world, emulator, camera = bench
    assert isinstance(camera, SimulatorCamera)
    full = camera.snap(5.0)
    assert full.image.shape == (2048, 2048) and full.image.dtype == np.uint16
    assert full.metadata["exposure_ms"] == 40.0
    camera.exposure_ms = 80
    camera.roi = (1000, 900, 200, 100)
    camera.binning = 2
    sent = world.now()
    frame = camera.snap(5.0)
    meta = frame.metadata
    assert frame.image.shape == (50, 100)
    assert meta["roi"] == [1000, 900, 200, 100] and meta["binning"] == 2
    assert meta["exposure_ms"] == 80.0
    assert meta["time"] - sent >= 0.08  # the frame took its exposure of simulated time
    assert meta["frame"] == full.metadata["frame"] + 1
    assert meta["stage"] == {"x": 0.0, "y": 0.0, "z": 0.0}
    assert meta["channel"] == "A" and meta["power_pct"] == 50.0
    assert meta["truth"]["zone"] == "CD9" and "xy" not in meta["truth"]  # a small truth only
    truth = camera.driver.truth(meta["frame"])  # the rest on request
    assert truth["count"] == meta["truth"]["count"] == len(truth["xy"]) > 0
    assert len(truth["diameter_nm"]) == len(truth["markers"]) == truth["count"]
    xy = np.array(truth["xy"])
    assert (xy[:, 0] >= -0.5).all() and (xy[:, 0] < 99.5).all() and (xy[:, 1] < 49.5).all()


def test_truth_positions_sit_on_bright_spots(bench) -> None:
    world, emulator, camera = bench
    time.sleep(0.3)
    frame = camera.snap(5.0)
    truth = camera.driver.truth(frame.metadata["frame"])
    xy = np.rint(np.array(truth["xy"])).astype(int)
    image = frame.image.astype(float)
    at_truth = image[xy[:, 1], xy[:, 0]]
    random = image[np.random.default_rng(0).integers(0, 2048, (2, 500))]
    assert np.median(at_truth) > np.median(random) + 20


def test_exposure_scales_the_signal(bench) -> None:
    world, emulator, camera = bench
    camera.roi = (0, 0, 256, 256)
    camera.exposure_ms = 20
    short = camera.snap(5.0).image.astype(float)
    camera.exposure_ms = 80
    long = camera.snap(5.0).image.astype(float)
    ratio = (np.median(long) - 100) / (np.median(short) - 100)
    assert ratio == pytest.approx(4.0, rel=0.15)


def test_stalled_camera_raises_camera_timeout_then_recovers(bench) -> None:
    world, emulator, camera = bench
    emulator.inject("stall")
    with pytest.raises(CameraTimeout, match="within 0.5 s"):
        camera.snap(0.5)
    emulator.inject("clear")
    assert camera.snap(5.0).image.shape == (2048, 2048)


def test_continuous_acquisition_is_bounded_and_times_out(bench) -> None:
    world, emulator, camera = bench
    camera.roi = (0, 0, 128, 128)
    camera.exposure_ms = 10
    camera.start(buffer_frames=3, frame_timeout_s=1.0)
    time.sleep(0.6)
    frames = [camera.read_frame(2.0) for _ in range(3)]
    counters = [f.metadata["frame"] for f in frames]
    assert counters == sorted(counters) and len(set(counters)) == 3
    assert camera.frames_dropped > 0  # nobody read for a while: oldest frames dropped
    emulator.inject("stall")
    time.sleep(0.2)
    with pytest.raises(CameraTimeout):
        while True:
            camera.read_frame(0.6)
    camera.stop()
    emulator.inject("clear")
    assert not camera.acquiring


def test_frame_garbled_on_the_wire_is_resent_intact(bench) -> None:
    world, emulator, camera = bench
    camera.roi = (0, 0, 64, 64)
    clean = camera.snap(5.0)
    endpoint_faults = emulator.faults
    endpoint_faults.arm("garble", 1)  # one bit flipped in the next reply: the frame
    frame = camera.snap(5.0)
    assert frame.metadata["frame"] == clean.metadata["frame"] + 1  # resent, not re-exposed
    endpoint_faults.arm("garble", 2)  # the frame and its resend
    with pytest.raises(GarbledReply, match="camera"):
        camera.snap(5.0)
    assert camera.snap(5.0).image.shape == (64, 64)


def test_opencv_backend_reports_missing_device_cleanly() -> None:
    camera = make_opencv_camera("uvc", device_settings("opencv", "/dev/no-such-camera-xyz",
                                                       pixel_size_um=1.0))
    with pytest.raises(DeviceDisconnected, match="no camera"):
        camera.connect()
    with pytest.raises(DeviceDisconnected):
        camera.snap(0.2)


# -- the count in view follows the flow -----------------------------------------------------------
def test_count_in_view_grows_with_flow_only_on_matching_zone() -> None:
    world = World(clock=ManualClock(), seed=9)  # type: ignore[arg-type]
    world.chip = default_chip(seed=9)
    world.reagents["sample"] = Reagent("sample", 2e8, {"CD63": 0.8}, ("AF555",))
    world.pumps["p"] = ConstantFlow("sample", 3.0)
    stage = FixedStage(x=1500.0)
    world.devices["led"] = FixedLed(power=100.0, wavelength=550.0)
    world.devices["stage"] = stage
    camera = SimCameraEmulator(world, "camera")  # the whole sensor: off-zone counts of a few
    world.advance()  # vesicles would make the 5 % below a coin toss (expected ~3 %)
    counts = []
    for _ in range(4):
        world.clock.t += 20  # type: ignore[attr-defined]
        world.advance()
        counts.append(camera.render()[1]["truth"]["count"])
    assert counts[0] > 0 and counts == sorted(counts) and counts[-1] > 2.5 * counts[0]
    stage.x = 4500.0  # isotype zone
    _, meta = camera.render()
    assert meta["truth"]["zone"] == "isotype"
    assert meta["truth"]["count"] < 0.05 * counts[-1]
    stage.x = 0.0  # CD9 zone: CD63-only sample
    assert camera.render()[1]["truth"]["count"] < 0.05 * counts[-1]


def test_count_in_view_grows_through_the_camera_interface(bench) -> None:
    world, emulator, camera = bench
    camera.roi = (512, 512, 1024, 1024)
    first = camera.snap(5.0).metadata
    time.sleep(0.4)  # 8 simulated seconds of flow
    second = camera.snap(5.0).metadata
    assert second["time"] > first["time"] + 5
    assert second["truth"]["count"] > first["truth"]["count"] + 50


def test_opencv_backend_reads_a_video_with_roi_and_binning(tmp_path) -> None:
    import cv2

    path = str(tmp_path / "clip.avi")
    writer = cv2.VideoWriter(path, cv2.VideoWriter_fourcc(*"MJPG"), 10, (64, 48), True)
    for level in (40, 80, 120):
        writer.write(np.full((48, 64, 3), level, np.uint8))
    writer.release()
    camera = make_opencv_camera("uvc", device_settings("opencv", path, roi=[8, 4, 32, 16],
                                                       binning=2))
    camera.connect()
    try:
        frame = camera.snap(2.0)
        assert frame.image.dtype == np.uint16 and frame.image.shape == (8, 16)
        assert frame.metadata["roi"] == [8, 4, 32, 16] and frame.metadata["binning"] == 2
        assert abs(int(np.median(frame.image)) - 4 * 40) < 4 * 6  # 2x2 sums of ~40
        camera.binning = 1
        camera.roi = None
        assert camera.snap(2.0).image.shape == (48, 64)
        camera.snap(2.0)
        with pytest.raises(CameraTimeout):  # end of the clip: no frame
            camera.snap(1.0)
    finally:
        camera.close()


def test_count_in_view_grows_faster_at_higher_concentration() -> None:
    def count_after(conc: float) -> int:
        world = World(clock=ManualClock(), seed=4)  # type: ignore[arg-type]
        world.chip = default_chip(seed=4)
        world.reagents["sample"] = Reagent("sample", conc, {"CD81": 0.7}, ("AF647",))
        world.pumps["p"] = ConstantFlow("sample", 2.0)
        world.devices["led"] = FixedLed(power=60.0, wavelength=635.0)
        world.devices["stage"] = FixedStage(x=3000.0)
        camera = SimCameraEmulator(world, "camera")
        camera.settings.roi = (512, 512, 1024, 1024)
        world.advance()
        world.clock.t = 200.0  # type: ignore[attr-defined]
        world.advance()
        return camera.render()[1]["truth"]["count"]

    low, high = count_after(5e7), count_after(2e8)
    assert low > 20
    assert high / low == pytest.approx(4.0, rel=0.3)


def test_frames_over_a_pseudo_terminal() -> None:
    world = World(VirtualClock(speed=10.0), seed=2)
    world.chip = default_chip(seed=2)
    world.chip.deposit("CD9", 3000, labels=("AF488",))
    world.devices.update(led=FixedLed(), stage=FixedStage())
    emulator = SimCameraEmulator(world, "camera")
    with served(emulator, world.lock, "pty") as url:
        settings = device_settings("sim-camera", roi=[0, 0, 2048, 2048])
        camera = make_sim_camera("camera", settings, SerialTransport(url))
        camera.connect()
        try:
            frame = camera.snap(5.0)
            assert frame.image.shape == (2048, 2048)  # 8 MB through the tty layer intact
            assert frame.metadata["truth"]["count"] > 400
        finally:
            camera.close()
