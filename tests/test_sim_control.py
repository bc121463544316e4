"""The simulator's control channel answers over its socket with the simulator's own state."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from hardware_sim.bench import SimBench
from hardware_sim.control import request


@pytest.fixture
def sim() -> Iterator[SimBench]:
    bench = SimBench(speed=10.0, seed=1).start()
    try:
        yield bench
    finally:
        bench.stop()


def test_chip_reports_captured_vesicles_per_zone(sim: SimBench) -> None:
    with sim.world.lock:
        sim.world.chip.deposit("CD81", 250)
    reply = request(sim.control.address, {"cmd": "chip"}, token=sim.control.token)
    assert reply["ok"] is True
    assert reply["chip"]["CD81"] == 250
    assert set(reply["chip"]) == {"CD9", "CD63", "CD81", "isotype"}


def test_unknown_command_and_unknown_device_are_refused(sim: SimBench) -> None:
    assert request(sim.control.address, {"cmd": "dance"}, token=sim.control.token) == {
        "ok": False, "error": "unknown cmd 'dance'"}
    reply = request(sim.control.address,
                    {"cmd": "fault", "device": "nope", "fault": "drop_reply"},
                    token=sim.control.token)
    assert reply["ok"] is False and "nope" in reply["error"]


def test_the_channel_is_local_and_refuses_requests_without_the_token(sim: SimBench) -> None:
    assert sim.control.server_address[0] == "127.0.0.1"
    for token in ("", "0" * 32, 5):
        reply = request(sim.control.address, {"cmd": "speed", "value": 1000},
                        token=token)  # type: ignore[arg-type]
        assert reply == {"ok": False, "error": "refused: no valid token (it is in the bench file)"}
    assert sim.world.clock.speed == 10.0
    assert sim.bench_document()["simulator"]["token"] == sim.control.token


def test_the_token_is_written_only_to_the_owners_bench_file(sim: SimBench, tmp_path) -> None:
    path = sim.write_bench_file(tmp_path / "bench.yaml")
    assert sim.control.token in path.read_text()
    assert path.stat().st_mode & 0o077 == 0


@pytest.mark.parametrize("value", [float("nan"), float("inf"), -1.0, 0.0, 1e300, "fast", None])
def test_a_bad_speed_is_refused_and_the_channel_survives(sim: SimBench, value: object) -> None:
    reply = request(sim.control.address, {"cmd": "speed", "value": value},
                    token=sim.control.token)
    assert reply["ok"] is False and "speed" in reply["error"]
    assert sim.world.clock.speed == 10.0
    reply = request(sim.control.address, {"cmd": "speed", "value": 20}, token=sim.control.token)
    assert reply == {"ok": True, "speed": 20.0}


def test_a_request_that_is_not_an_object_is_refused(sim: SimBench) -> None:
    import json
    import socket

    host, port = sim.control.address.rsplit(":", 1)
    with socket.create_connection((host, int(port)), timeout=5) as sock:
        sock.sendall(b"[1, 2]\nnot json\n")
        reader = sock.makefile()
        replies = reader.readline(), reader.readline()
    assert [json.loads(r)["ok"] for r in replies] == [False, False]
