"""Driver for the simulator camera (`sim-camera`): frames and their metadata over a text link.

Wire protocol (defined by this project; the emulator is hardware_sim/camera.py). Commands are
ASCII lines ending in CR; reply lines end in CRLF.

    INFO?               -> INFO <json: model, width, height, pixel_size_um, bits>
    EXP <ms> / EXP?     -> OK / EXP <ms>
    GAIN <g> / GAIN?    -> OK / GAIN <g>
    ROI x y w h / ROI?  -> OK / ROI x y w h        (sensor pixels, before binning)
    BIN n / BIN?        -> OK / BIN n              (1, 2, 4)
    SNAP                -> FRAME <w> <h> <n>\\r\\n, n bytes of JSON metadata, then w*h
                           little-endian uint16 pixels, row-major (after the exposure)
    ABORT               -> OK                      (cancel a pending SNAP)
    errors              -> ERR <reason>

Metadata holds time, frame, exposure_ms, gain, roi, binning, pixel_size_um, stage, led,
channel, power_pct and the ground truth (count, xy in frame pixels, zone, ...).
"""

from __future__ import annotations

import contextlib
import json
import re
from typing import Any

import numpy as np

from drivers.errors import (
    CameraTimeout,
    CommandRejected,
    DeviceBusy,
    DeviceTimeout,
    GarbledReply,
    OutOfRange,
)
from drivers.transport import SerialTransport

EOL = b"\r\n"
_FRAME = re.compile(rb"^FRAME (\d{1,5}) (\d{1,5}) (\d{1,9})\r\n$")
BINNINGS = (1, 2, 4)


class SimCamera:
    """The simulator camera behind one transport."""

    def __init__(self, transport: SerialTransport, *, timeout: float = 1.0) -> None:
        self.transport = transport
        self.name = transport.name
        self.timeout = timeout
        self.info: dict[str, Any] = {}

    def connect(self) -> dict[str, Any]:
        """Open the link and read the camera's description (model, sensor size, pixel size)."""
        self.transport.open()
        reply = self._line(b"INFO?")
        if not reply.startswith("INFO "):
            raise GarbledReply(self.name, f"unexpected reply to INFO?: {reply!r}", reply.encode())
        try:
            info = json.loads(reply[5:])
            int(info["width"]), int(info["height"]), float(info["pixel_size_um"])
        except (ValueError, KeyError, TypeError) as exc:
            raise GarbledReply(self.name, f"bad INFO reply {reply!r}", reply.encode()) from exc
        self.info = info
        return info

    def close(self) -> None:
        """Close the link."""
        self.transport.close()

    # -- settings ---------------------------------------------------------------------------
    def set_exposure(self, ms: float) -> None:
        """Exposure time in ms (0.01 .. 10000)."""
        if not 0.01 <= ms <= 10000:
            raise OutOfRange(self.name, f"exposure {ms} ms outside 0.01..10000")
        self._ok(f"EXP {ms:g}".encode())

    def exposure(self) -> float:
        """Exposure time in ms, as the camera has it."""
        return float(self._query(b"EXP?", "EXP")[0])

    def set_gain(self, gain: float) -> None:
        """Gain (ADU per 0.46 e-), 1 .. 16."""
        if not 1 <= gain <= 16:
            raise OutOfRange(self.name, f"gain {gain} outside 1..16")
        self._ok(f"GAIN {gain:g}".encode())

    def gain(self) -> float:
        """Gain as the camera has it."""
        return float(self._query(b"GAIN?", "GAIN")[0])

    def set_roi(self, x: int, y: int, width: int, height: int) -> None:
        """Region of interest in sensor pixels (before binning)."""
        self._ok(f"ROI {int(x)} {int(y)} {int(width)} {int(height)}".encode())

    def roi(self) -> tuple[int, int, int, int]:
        """(x, y, width, height) in sensor pixels."""
        x, y, w, h = (int(v) for v in self._query(b"ROI?", "ROI", 4))
        return x, y, w, h

    def set_binning(self, n: int) -> None:
        """Symmetric binning 1, 2 or 4."""
        if n not in BINNINGS:
            raise OutOfRange(self.name, f"binning {n} not in {BINNINGS}")
        self._ok(f"BIN {n}".encode())

    def binning(self) -> int:
        """Binning as the camera has it."""
        return int(self._query(b"BIN?", "BIN")[0])

    # -- frames -----------------------------------------------------------------------------
    def snap(self, timeout: float) -> tuple[np.ndarray, dict[str, Any]]:
        """Expose one frame; CameraTimeout if none arrives within `timeout` seconds."""
        with self.transport.lock:
            try:
                header = self.transport.request(b"SNAP\r", EOL, timeout)
            except DeviceTimeout as exc:
                self._abort_quietly()
                raise CameraTimeout(self.name, f"no frame within {timeout:g} s") from exc
            if header.startswith(b"ERR"):
                raise self._error(header.decode("ascii", "replace").strip())
            match = _FRAME.match(header)
            if match is None:
                raise GarbledReply(self.name, f"bad frame header {header!r}", header)
            width, height, meta_len = (int(g) for g in match.groups())
            try:
                payload = self.transport.read_exact(meta_len + 2 * width * height, timeout)
            except DeviceTimeout as exc:
                raise CameraTimeout(self.name, "frame arrived incomplete") from exc
        return _decode(self.name, payload, width, height, meta_len)

    def abort(self) -> None:
        """Cancel a pending exposure."""
        self._ok(b"ABORT")

    def _abort_quietly(self) -> None:
        with contextlib.suppress(DeviceTimeout):
            self.transport.request(b"ABORT\r", EOL, self.timeout)

    # -- helpers ----------------------------------------------------------------------------
    def _line(self, command: bytes) -> str:
        reply = self.transport.request(command + b"\r", EOL, self.timeout)
        text = reply.decode("ascii", "replace").strip()
        if text.startswith("ERR"):
            raise self._error(text)
        return text

    def _ok(self, command: bytes) -> None:
        reply = self._line(command)
        if reply != "OK":
            raise GarbledReply(self.name, f"expected OK to {command!r}, got {reply!r}")

    def _query(self, command: bytes, key: str, fields: int = 1) -> list[str]:
        words = self._line(command).split()
        if len(words) != fields + 1 or words[0] != key:
            raise GarbledReply(self.name, f"unexpected reply to {command!r}: {words!r}")
        try:
            [float(w) for w in words[1:]]
        except ValueError as exc:
            raise GarbledReply(self.name, f"non-numeric reply to {command!r}") from exc
        return words[1:]

    def _error(self, text: str) -> CommandRejected:
        reason = text[3:].strip()
        if "busy" in reason:
            return DeviceBusy(self.name, reason)
        if "range" in reason or "outside" in reason or "must be" in reason:
            return OutOfRange(self.name, reason)
        return CommandRejected(self.name, reason)


def _decode(
    name: str, payload: bytes, width: int, height: int, meta_len: int
) -> tuple[np.ndarray, dict[str, Any]]:
    try:
        metadata = json.loads(payload[:meta_len])
    except ValueError as exc:
        raise GarbledReply(name, "frame metadata is not JSON", payload[:200]) from exc
    if not isinstance(metadata, dict):
        raise GarbledReply(name, "frame metadata is not an object", payload[:200])
    image = np.frombuffer(payload, dtype="<u2", offset=meta_len).reshape(height, width)
    return image.astype(np.uint16), metadata
