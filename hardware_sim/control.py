"""The simulator's control channel: JSON lines over TCP, for tests, demos and fault drills.

Bound to 127.0.0.1 only. Every request carries the session's token (`"token": T`, a random
secret made at start and written only into the bench file the simulator writes); a request
without it is refused. Values are checked (finite, in range): a bad request is answered with
an error and the channel goes on serving.

Requests and replies are one JSON object per line:
  {"cmd": "status"}          -> {"ok": true, "time_s", "speed", "devices": {...},
                                 "reagents": {name: {vesicles_per_ml, markers, labels}}}
  {"cmd": "fault", "device": NAME, "fault": F, "value": 1}
        F: a link fault (drop_reply, garble, slow, split, lockup, unplug) or a device fault
        the device's model knows (stall, power_cycle, ...)
  {"cmd": "clear", "device": NAME}                    -> disarm link faults
  {"cmd": "speed", "value": X}                        -> change the clock's speed
  {"cmd": "chip"}                                     -> captured vesicles per zone (ground truth)
                                                          and per zone and dye the labelled ones
"""

from __future__ import annotations

import dataclasses
import hmac
import json
import math
import secrets
import socket
import socketserver
import threading
from typing import TYPE_CHECKING, Any

from hardware_sim.faults import LINK_FAULTS

if TYPE_CHECKING:
    from hardware_sim.bench import SimBench



def _snapshot(model: Any) -> dict[str, Any]:
    snap = getattr(model, "snapshot", None)
    return snap() if callable(snap) else _public_state(model)


def _public_state(model: Any) -> dict[str, Any]:
    """For a model without snapshot(): its public scalar fields (brought up to the clock first
    where the model integrates motion) and, for a light, what it emits."""
    update = getattr(model, "update", None)
    if callable(update):
        update()
    state: dict[str, Any] = {
        key: value for key, value in vars(model).items()
        if not key.startswith("_") and isinstance(value, bool | int | float | str)}
    emission = getattr(model, "emission", None)
    if callable(emission):
        state["emission"] = [list(item) for item in emission()]
    return state


MAX_SPEED = 1e5  # the fastest the simulated clock may run


def _finite(value: object, what: str, low: float, high: float) -> float:
    """`value` as a float if it is a finite number within [low, high]; ValueError if not."""
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ValueError(f"{what} must be a finite number, got {value!r}")
    if not low <= value <= high:
        raise ValueError(f"{what} must be within {low:g}..{high:g}, got {value!r}")
    return float(value)


def handle_request(bench: SimBench, request: dict[str, Any]) -> dict[str, Any]:
    """Carry out one control request."""
    cmd = request.get("cmd")
    world = bench.world
    if cmd == "status":
        world.advance()  # the chip's own lock: no device waits while it integrates
        with world.lock:
            devices = {name: _snapshot(model) for name, model in world.devices.items()}
            reagents = {name: dataclasses.asdict(r) for name, r in world.reagents.items()}
        return {"ok": True, "time_s": world.now(), "speed": world.clock.speed, "devices": devices,
                "reagents": reagents}
    if cmd == "speed":
        world.clock.speed = _finite(request.get("value"), "speed", 1e-3, MAX_SPEED)
        return {"ok": True, "speed": world.clock.speed}
    if cmd == "chip":
        world.advance()
        with world.lock:
            summary = world.chip.counts() if world.chip is not None else {}
            labelled = world.chip.labelled_counts() if world.chip is not None else {}
        return {"ok": True, "chip": summary, "labelled": labelled}
    if cmd in ("fault", "clear"):
        return _fault(bench, request)
    return {"ok": False, "error": f"unknown cmd {cmd!r}"}


def _fault(bench: SimBench, request: dict[str, Any]) -> dict[str, Any]:
    name = request.get("device", "")
    endpoint = bench.endpoint_of(name)
    if request["cmd"] == "clear":
        if endpoint is not None:
            endpoint.faults.clear()
        return {"ok": True}
    fault = request.get("fault", "")
    value = _finite(request.get("value", 1), "fault value", 0.0, 1e6)
    if fault in LINK_FAULTS:
        if endpoint is None:
            return {"ok": False, "error": f"no device {name!r}"}
        endpoint.faults.arm(fault, value)
        return {"ok": True}
    model = bench.world.devices.get(name)
    inject = getattr(model, "inject", None)
    if not callable(inject):
        return {"ok": False, "error": f"device {name!r} takes no fault {fault!r}"}
    with bench.world.lock:
        inject(fault)
    return {"ok": True}


MAX_REQUEST_BYTES = 64 * 1024


class _Handler(socketserver.StreamRequestHandler):
    def handle(self) -> None:
        server: ControlServer = self.server  # type: ignore[assignment]
        while line := self.rfile.readline(MAX_REQUEST_BYTES):
            try:
                reply = server.answer(line)
            except (ValueError, KeyError, TypeError, AttributeError) as exc:
                reply = {"ok": False, "error": str(exc)}
            self.wfile.write((json.dumps(reply, default=float) + "\n").encode())


class ControlServer(socketserver.ThreadingTCPServer):
    """Serves the control channel on 127.0.0.1."""

    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, bench: SimBench, port: int = 0) -> None:
        super().__init__(("127.0.0.1", port), _Handler)
        self.bench = bench
        self.token = secrets.token_hex(16)  # this session's; only the bench file gets it
        self.thread = threading.Thread(target=self.serve_forever, name="sim-control", daemon=True)

    @property
    def address(self) -> str:
        """host:port of the channel."""
        host, port = self.server_address[:2]
        if isinstance(host, bytes):
            host = host.decode()
        return f"{host}:{port}"

    def answer(self, line: bytes) -> dict[str, Any]:
        """The reply to one request line: refused unless it is a JSON object with the
        session's token."""
        request = json.loads(line)
        if not isinstance(request, dict):
            return {"ok": False, "error": "a request is one JSON object"}
        token = request.pop("token", "")
        if not isinstance(token, str) or not hmac.compare_digest(token, self.token):
            return {"ok": False, "error": "refused: no valid token (it is in the bench file)"}
        return handle_request(self.bench, request)

    def start(self) -> None:
        """Serve in a background thread."""
        self.thread.start()

    def stop(self) -> None:
        """Stop serving."""
        self.shutdown()
        self.server_close()


def request(address: str, payload: dict[str, Any], timeout: float = 5.0,
            token: str = "") -> dict[str, Any]:
    """Send one request (with the session's `token`) to a control channel; the reply."""
    host, port = address.rsplit(":", 1)
    with socket.create_connection((host, int(port)), timeout=timeout) as sock:
        sock.sendall((json.dumps({**payload, "token": token}) + "\n").encode())
        data = b""
        while not data.endswith(b"\n"):
            chunk = sock.recv(65536)
            if not chunk:
                break
            data += chunk
    return json.loads(data)
