"""Simulated devices are separate instruments: a slow frame never holds up a pump's reply.

A 2048 x 2048 frame takes a few hundred ms to paint, over a second on a loaded machine; painted
under the bench lock, it kept every pump's reply waiting past the driver's 1 s timeout, and a
run failed with "device lost (sample_pump: no complete reply within 1 s)".
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from typing import Any

import pytest

from hardware_sim.bench import SimBench


def _connect(bench: SimBench, device: str) -> socket.socket:
    endpoint = bench.endpoint_of(device)
    assert endpoint is not None
    host, port = endpoint.url.removeprefix("socket://").rsplit(":", 1)
    return socket.create_connection((host, int(port)), timeout=10)


def _read_until(sock: socket.socket, end: bytes) -> bytes:
    data = b""
    while end not in data:
        chunk = sock.recv(65536)
        if not chunk:
            break
        data += chunk
    return data


def _ask_pump(pump: socket.socket, tries: int = 50) -> bytes:
    """VER until the pump answers (what a host sends before the endpoint took the connection
    is dropped as stale input, as on a freshly opened port)."""
    pump.settimeout(0.2)
    try:
        for _ in range(tries):
            pump.sendall(b"0VER\r")
            try:
                return _read_until(pump, b"\x03")
            except TimeoutError:
                continue
        raise AssertionError("the pump never answered")
    finally:
        pump.settimeout(10)


@pytest.fixture
def slow_camera() -> Iterator[tuple[SimBench, threading.Event, threading.Event]]:
    """A bench whose camera paints only once released (the injected, slow renderer)."""
    bench = SimBench(speed=1.0, seed=1)
    renderer = bench.emulators["camera"].renderer
    painting, release = threading.Event(), threading.Event()
    paint = renderer.paint

    def slow_paint(scene: Any) -> Any:
        painting.set()
        release.wait(30)
        return paint(scene)

    renderer.paint = slow_paint
    bench.start()
    try:
        yield bench, painting, release
    finally:
        release.set()
        bench.stop()


def test_a_pump_answers_while_the_camera_paints_a_frame(
        slow_camera: tuple[SimBench, threading.Event, threading.Event]) -> None:
    bench, painting, release = slow_camera
    with _connect(bench, "camera") as camera, _connect(bench, "buffer_pump") as pump:
        _ask_pump(pump)
        camera.sendall(b"EXP 1\rSNAP\r")
        assert painting.wait(10), "the camera never started painting"
        pump.sendall(b"0VER\r")
        reply = _read_until(pump, b"\x03")  # the pump's reply, the frame still being painted
        assert not release.is_set()
        release.set()
        assert reply.startswith(b"\x02") and b"NE" in reply
        assert b"FRAME" in _read_until(camera, b"FRAME")
