"""Driver for the simulator camera (`sim-camera`): frames and their metadata over a text link.

Wire protocol (defined by this project; the emulator is hardware_sim/camera.py). Commands are
ASCII lines ending in CR; reply lines end in CRLF.

    INFO?               -> INFO <json: model, width, height, pixel_size_um, bits>
    EXP <ms> / EXP?     -> OK / EXP <ms>
    GAIN <g> / GAIN?    -> OK / GAIN <g>
    ROI x y w h / ROI?  -> OK / ROI x y w h        (sensor pixels, before binning)
    BIN n / BIN?        -> OK / BIN n              (1, 2, 4)
    SNAP                -> FRAME <w> <h> <m> <n> <crc>\\r\\n, then n payload bytes: m bytes
                           of JSON metadata, then w*h little-endian uint16 pixels, row-major
                           (after the exposure); crc: CRC-32 of the payload, 8 hex digits
    RESEND              -> the last frame again (no new exposure)
    TRUTH? <frame>      -> TRUTH <n>\\r\\n, then n bytes of JSON: the simulator's truth of a frame
    ABORT               -> OK                      (cancel a pending SNAP)
    errors              -> ERR <reason>

Metadata holds time, frame, exposure_ms, gain, roi, binning, pixel_size_um, stage, led,
channel, power_pct and a small truth (count, captured_in_view, zone, focus_offset_um).
A frame whose length or CRC does not check out is asked for again once (RESEND), then raised
as GarbledReply naming the camera.
"""

from __future__ import annotations

import contextlib
import json
import re
import zlib
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
_FRAME = re.compile(rb"^FRAME (\d{1,5}) (\d{1,5}) (\d{1,9}) (\d{1,10}) ([0-9a-f]{8})\r\n$")
FRAME_TRIES = 2  # a damaged frame is asked for once more
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
        self._set("EXP", ms, "exposure", " ms", 0.01, 10000)

    def exposure(self) -> float:
        """Exposure time in ms, as the camera has it."""
        return float(self._query(b"EXP?", "EXP")[0])

    def set_gain(self, gain: float) -> None:
        """Gain (ADU per 0.46 e-), 1 .. 16."""
        self._set("GAIN", gain, "gain", "", 1, 16)

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
        """Expose one frame; CameraTimeout if none arrives within `timeout` seconds, and
        GarbledReply if it arrives damaged twice (the second time as a RESEND)."""
        with self.transport.lock:
            command = b"SNAP\r"
            for attempt in range(FRAME_TRIES):
                try:
                    return self._frame(command, timeout)
                except GarbledReply:
                    if attempt + 1 == FRAME_TRIES:
                        raise
                    self.transport.flush_input()
                    command = b"RESEND\r"
        raise AssertionError("unreachable")  # pragma: no cover

    def _frame(self, command: bytes, timeout: float) -> tuple[np.ndarray, dict[str, Any]]:
        try:
            header = self.transport.request(command, EOL, timeout)
        except DeviceTimeout as exc:
            self._abort_quietly()
            raise CameraTimeout(self.name, f"no frame within {timeout:g} s") from exc
        if header.startswith(b"ERR"):
            raise self._error(header.decode("ascii", "replace").strip())
        match = _FRAME.match(header)
        if match is None:
            raise GarbledReply(self.name, f"bad frame header {header[:80]!r}", header)
        width, height, meta_len, size = (int(g) for g in match.groups()[:4])
        if size != meta_len + 2 * width * height:
            raise GarbledReply(self.name, f"frame header {header!r}: the payload length does "
                               "not match its size", header)
        try:
            payload = self.transport.read_exact(size, timeout)
        except DeviceTimeout as exc:
            raise CameraTimeout(self.name, "frame arrived incomplete") from exc
        if zlib.crc32(payload) != int(match.group(5), 16):
            raise GarbledReply(self.name, "frame damaged in transfer (CRC-32 mismatch)",
                               payload[:200])
        return _decode(self.name, payload, width, height, meta_len)

    def truth(self, frame: int) -> dict[str, Any]:
        """The simulator's ground truth of frame number `frame` (one of the last few)."""
        with self.transport.lock:
            reply = self._line(f"TRUTH? {int(frame)}".encode())
            words = reply.split()
            if len(words) != 2 or words[0] != "TRUTH" or not words[1].isdigit():
                raise GarbledReply(self.name, f"unexpected reply to TRUTH?: {reply[:80]!r}")
            body = self.transport.read_exact(int(words[1]), self.timeout * 5)
        try:
            truth = json.loads(body)
        except ValueError as exc:
            raise GarbledReply(self.name, "truth is not JSON") from exc
        if not isinstance(truth, dict):
            raise GarbledReply(self.name, "truth is not an object")
        return truth

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

    def _set(self, command: str, value: float, what: str, unit: str, low: float,
             high: float) -> None:
        """A number setting, refused before it is sent when outside low..high."""
        if not low <= value <= high:
            raise OutOfRange(self.name, f"{what} {value}{unit} outside {low:g}..{high:g}")
        self._ok(f"{command} {value:g}".encode())

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
