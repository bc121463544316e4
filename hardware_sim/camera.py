"""The simulator camera: an sCMOS-like camera serving rendered frames over a text protocol.

Wire protocol (the `sim-camera` driver, drivers/simcamera.py, speaks it). ASCII commands end
with CR, LF or CRLF; every reply line ends with CRLF.

    INFO?                 -> INFO {"model": ..., "width": 2048, "height": 2048,
                                   "pixel_size_um": 0.65, "bits": 16}
    EXP <ms>  / EXP?      -> OK            / EXP <ms>        exposure, 0.01 .. 10000 ms
    GAIN <g>  / GAIN?     -> OK            / GAIN <g>        ADU per 0.46 e-, 1 .. 16
    ROI <x> <y> <w> <h>   -> OK                              sensor pixels (before binning)
    ROI?                  -> ROI <x> <y> <w> <h>
    BIN <n>   / BIN?      -> OK            / BIN <n>         n in 1, 2, 4
    SNAP                  -> (after the exposure, in simulated time)
                             FRAME <width> <height> <metadata bytes> <payload bytes> <crc32>\r\n
                             <payload: metadata (UTF-8 JSON) then width*height uint16
                             little-endian pixels, row-major>; crc32: 8 hex digits, the CRC-32
                             (zlib) of the payload, so a damaged transfer is noticed
    RESEND                -> the last frame again, byte for byte (no new exposure), or
                             ERR no frame
    TRUTH? <frame>        -> TRUTH <n>\r\n then n bytes of JSON: the ground truth of a
                             frame (one of the last 64): count, xy [[x, y], ...] (frame
                             pixels: x column, y row, (0, 0) the centre of the top-left
                             pixel), photons, diameter_nm,
                             markers (per vesicle, CD9/CD63/CD81 as 0/1), zone, dyes,
                             captured_in_view, debris_xy, focus_offset_um; ERR no truth else
    ABORT                 -> OK            (a pending SNAP is cancelled; no frame follows)
    anything wrong        -> ERR <reason>

One SNAP at a time: a SNAP while one is pending answers `ERR busy`. Frame metadata: time
(simulated s at the end of the exposure), frame (counter), exposure_ms, gain, roi [x, y, w, h],
binning, pixel_size_um (binned), stage {x, y, z} (um), led [{channel, wavelength_nm, power_pct,
dye, triggered}], channel / power_pct (the first lit channel or null), and a small truth
{count, captured_in_view, zone, dyes, focus_offset_um}; the rest of the truth is asked for (TRUTH?).

Exposure: the view (stage position, light) is taken when the SNAP arrives and the frame shows
the sample as it was lit during the exposure. Its light is every channel emitting plus every
channel armed for its TTL trigger (the camera's exposure output is wired to the illuminator's
trigger input): those light the field only for the exposure, and their dose (power x exposure,
simulated time) bleaches the field when the frame is delivered. Continuous light is dosed by
the illuminator itself (`take_light`, from world.illuminate).

World interface (duck-typed, no imports): the stage model in world.devices has
`xyz_um() -> (x, y, z)`; the illuminator model has `emission()` and `armed()` ->
[(channel, wavelength_nm, power_pct), ...]. The camera brings the chip's capture up to an
exposure's end (world.advance(until=...)) before its frame, outside the bench lock; the
simulated bench's integrator thread keeps it up with the clock meanwhile.

Device faults (`inject`): `stall` (SNAPs are accepted but no frame ever comes; the client must
time out), `clear`.
"""

from __future__ import annotations

import json
import time
import zlib
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

import numpy as np

from hardware_sim.chip import Chip
from hardware_sim.lines import LineBuffer
from hardware_sim.optics import Optics, Renderer, Scene, View, bleach_field, dye_for_wavelength

BINNINGS = (1, 2, 4)
TRUTHS_KEPT = 64
SMALL_TRUTH = ("count", "captured_in_view", "zone", "dyes", "focus_offset_um")


@dataclass
class _Settings:
    exposure_ms: float = 50.0
    gain: float = 1.0
    roi: tuple[int, int, int, int] = (0, 0, 2048, 2048)
    binning: int = 1


class SimCameraEmulator:
    """A simulated camera registered as `world.devices[name]`."""

    def __init__(
        self,
        world: Any,
        name: str = "camera",
        *,
        optics: Optics | None = None,
        stage: str | None = None,
        illuminator: str | None = None,
        model: str = "SimCam sCMOS 2048",
        seed: int | None = None,
    ) -> None:
        self.world = world
        self.name = name
        self.model = model
        self.renderer = Renderer(optics, seed=world.seed + 7 if seed is None else seed)
        w, h = self.renderer.optics.sensor
        self.settings = _Settings(roi=(0, 0, w, h))
        self.stage_name = stage
        self.illuminator_name = illuminator
        self.frames = 0
        self.stalled = False
        self._lines = LineBuffer()
        self._due: float | None = None
        self._pending: tuple[View, list[dict[str, Any]]] | None = None
        self._taken: tuple[View, list[dict[str, Any]], float] | None = None  # not yet sent
        self._last_frame = b""
        self._truths: OrderedDict[int, dict[str, Any]] = OrderedDict()
        self._empty_chip = Chip([], debris_per_mm2=0.0)
        world.devices[name] = self

    # -- emulator face ----------------------------------------------------------------------
    def connected(self) -> bytes:
        """No greeting."""
        self._lines.clear()
        return b""

    def receive(self, data: bytes) -> bytes:
        """Handle command lines; a SNAP's frame comes later from poll()."""
        out = b""
        for line in self._lines.feed(data):
            if line.strip().upper() == "RESEND" and self._last_frame:
                out += self._last_frame
                continue
            truth = self._truth_reply(line.strip())
            if truth:
                out += truth
                continue
            reply = self._command(line.strip())
            if reply:
                out += reply.encode("ascii") + b"\r\n"
        return out

    def poll(self) -> bytes:
        """Take a due exposure: its view and light, as they were (finish() delivers it)."""
        now = self.world.now()
        if self._due is None or now < self._due or self.stalled:
            return b""
        self._taken = (*(self._pending or self._exposure_start()), self._due)
        self._due = self._pending = None
        return b""

    def finish(self) -> bytes:
        """A taken exposure's frame: the chip brought up to the exposure's end, the frame
        painted and encoded. The endpoint calls this without the bench lock (the chip has its
        own, and the bench's integrator keeps it up with the clock): integrating a dense
        sample's capture or painting a frame never holds up another device's reply."""
        taken, self._taken = self._taken, None
        if taken is None:
            return b""
        view, lights, end = taken
        while not self.world.advance(until=end, max_cells=1):
            time.sleep(0)  # a cell per turn of the chip's lock: the light's dose waits for one
        return self._encode(*self._frame(view, lights))

    def take_light(self, lights: list[tuple[float, float]], seconds: float) -> None:
        """Continuous light (wavelength nm, power fraction) for `seconds`: bleach the field."""
        chip = self.world.chip
        excitation = _excitation(lights)
        if chip is None or not excitation:
            return
        stage = self._device(self.stage_name, "xyz_um")
        x, y, z = stage.xyz_um() if stage is not None else (0.0, 0.0, 0.0)
        bleach_field(chip, self.renderer, View(x, y, z, excitation, seconds), seconds)

    def inject(self, fault: str, active: bool = True) -> None:
        """Device faults: `stall` (no frames) or `clear`."""
        if fault == "stall":
            self.stalled = active
        elif fault == "clear":
            self.stalled = False
        else:
            raise ValueError(f"unknown camera fault {fault!r}; known: stall, clear")

    # -- commands ---------------------------------------------------------------------------
    def _command(self, line: str) -> str:
        words = line.split()
        if not words:
            return ""
        verb, args = words[0].upper(), words[1:]
        handler = {
            "INFO?": self._info,
            "EXP": self._exposure,
            "EXP?": lambda a: f"EXP {self.settings.exposure_ms:g}",
            "GAIN": self._gain,
            "GAIN?": lambda a: f"GAIN {self.settings.gain:g}",
            "ROI": self._roi,
            "ROI?": lambda a: "ROI " + " ".join(str(v) for v in self.settings.roi),
            "BIN": self._binning,
            "BIN?": lambda a: f"BIN {self.settings.binning}",
            "SNAP": self._snap,
            "RESEND": self._resend,
            "TRUTH?": self._truth,
            "ABORT": self._abort,
        }.get(verb)
        if handler is None:
            return f"ERR unknown command {verb}"
        try:
            return handler(args)
        except (ValueError, IndexError):
            return f"ERR bad arguments to {verb}"

    def _info(self, args: list[str]) -> str:
        w, h = self.renderer.optics.sensor
        info = {
            "model": self.model,
            "width": w,
            "height": h,
            "pixel_size_um": self.renderer.optics.pixel_size_um,
            "bits": 16,
        }
        return "INFO " + json.dumps(info)

    def _exposure(self, args: list[str]) -> str:
        return self._setting(args, "exposure_ms", "exposure", 0.01, 10000, " ms")

    def _gain(self, args: list[str]) -> str:
        return self._setting(args, "gain", "gain", 1, 16, "")

    def _setting(self, args: list[str], attribute: str, what: str, low: float, high: float,
                 unit: str) -> str:
        """A bounded number setting: `what` out of range, or set and OK."""
        value = float(args[0])
        if not low <= value <= high:
            return f"ERR {what} out of range {low:g}..{high:g}{unit}"
        setattr(self.settings, attribute, value)
        return "OK"

    def _roi(self, args: list[str]) -> str:
        x, y, w, h = (int(a) for a in args[:4])
        sw, sh = self.renderer.optics.sensor
        if x < 0 or y < 0 or w < 4 or h < 4 or x + w > sw or y + h > sh:
            return f"ERR roi outside the {sw}x{sh} sensor"
        self.settings.roi = (x, y, w, h)
        return "OK"

    def _binning(self, args: list[str]) -> str:
        value = int(args[0])
        if value not in BINNINGS:
            return "ERR binning must be 1, 2 or 4"
        self.settings.binning = value
        return "OK"

    def _snap(self, args: list[str]) -> str:
        if self._due is not None:
            return "ERR busy"
        self._due = self.world.now() + self.settings.exposure_ms / 1000.0
        self._pending = self._exposure_start()
        return ""

    def _resend(self, args: list[str]) -> str:
        return "ERR no frame"  # receive() answers a RESEND with the last frame when there is one

    def _truth(self, args: list[str]) -> str:
        return f"ERR no truth for frame {args[0]} (the last {TRUTHS_KEPT} are kept)"

    def _truth_reply(self, line: str) -> bytes:
        """TRUTH <n> and n bytes of JSON for a kept frame (else b"": _truth answers)."""
        words = line.split()
        if len(words) != 2 or words[0].upper() != "TRUTH?" or not words[1].isdigit():
            return b""
        truth = self._truths.get(int(words[1]))
        if truth is None:
            return b""
        body = json.dumps(truth, separators=(",", ":")).encode()
        return f"TRUTH {len(body)}\r\n".encode("ascii") + body
    def _abort(self, args: list[str]) -> str:
        self._due = None
        self._pending = None
        return "OK"

    # -- frames -----------------------------------------------------------------------------
    def _device(self, name: str | None, attribute: str) -> Any:
        if name is not None:
            return self.world.devices.get(name)
        return next((d for d in self.world.devices.values() if hasattr(d, attribute)), None)

    def _lights(self) -> list[dict[str, Any]]:
        """The light of an exposure: channels emitting, and channels armed for the trigger."""
        led = self._device(self.illuminator_name, "emission")
        if led is None:
            return []
        armed = getattr(led, "armed", None)
        lit = [(item, False) for item in led.emission()]
        lit += [(item, True) for item in (armed() if callable(armed) else [])]
        return [{"channel": ch, "wavelength_nm": wl, "power_pct": p,
                 "dye": dye_for_wavelength(wl), "triggered": triggered}
                for (ch, wl, p), triggered in lit]

    def _exposure_start(self) -> tuple[View, list[dict[str, Any]]]:
        """What an exposure starting now sees: the stage position, light and settings."""
        stage = self._device(self.stage_name, "xyz_um")
        x, y, z = stage.xyz_um() if stage is not None else (0.0, 0.0, 0.0)
        lights = self._lights()
        excitation = _excitation([(li["wavelength_nm"], li["power_pct"] / 100) for li in lights])
        s = self.settings
        view = View(x, y, z, excitation, s.exposure_ms / 1000.0, s.roi, s.binning, s.gain)
        return view, lights

    def render(self) -> tuple[np.ndarray, dict[str, Any]]:
        """Render the pending exposure (or one now) of the chip as it stands; returns the image
        and its metadata, and bleaches the field by the exposure's triggered light."""
        view, lights = self._pending or self._exposure_start()
        self._pending = None
        return self._frame(view, lights)

    def _frame(self, view: View, lights: list[dict[str, Any]]) -> tuple[np.ndarray,
                                                                        dict[str, Any]]:
        scene, metadata = self._expose(view, lights)
        return self.renderer.paint(scene), metadata

    def _expose(self, view: View, lights: list[dict[str, Any]]
                ) -> tuple[Scene, dict[str, Any]]:
        """What the exposure sees and its metadata; the field is bleached by the exposure's
        triggered light (under the chip's lock)."""
        chip = self.world.chip or self._empty_chip
        with chip.lock:
            scene = self.renderer.scene(chip, view)
            truth = scene.truth
            zone = chip.zone_at(view.x_um, view.y_um)
            truth["zone"] = None if zone is None else zone.name
            truth["dyes"] = [dye for dye, _ in view.excitation]
            truth["focus_offset_um"] = round(view.z_um - chip.surface_z(view.x_um, view.y_um), 3)
            triggered = _excitation([(li["wavelength_nm"], li["power_pct"] / 100)
                                     for li in lights if li["triggered"]])
            if triggered and self.world.chip is not None:
                flash = View(view.x_um, view.y_um, view.z_um, triggered, view.exposure_s)
                bleach_field(chip, self.renderer, flash, view.exposure_s)
        self.frames += 1
        self._truths[self.frames] = truth
        while len(self._truths) > TRUTHS_KEPT:
            self._truths.popitem(last=False)
        return scene, self._metadata(view, lights, truth)

    def _metadata(self, view: View, lights: list[dict[str, Any]],
                  truth: dict[str, Any]) -> dict[str, Any]:
        s = self.settings
        return {
            "time": round(self.world.now(), 6),
            "frame": self.frames,
            "exposure_ms": s.exposure_ms,
            "gain": s.gain,
            "roi": list(s.roi),
            "binning": s.binning,
            "pixel_size_um": self.renderer.optics.pixel_size_um * s.binning,
            "stage": {"x": view.x_um, "y": view.y_um, "z": view.z_um},
            "led": lights,
            "channel": lights[0]["channel"] if lights else None,
            "power_pct": lights[0]["power_pct"] if lights else None,
            "truth": {key: truth.get(key) for key in SMALL_TRUTH},
        }

    def _encode(self, image: np.ndarray, metadata: dict[str, Any]) -> bytes:
        """A frame as the SNAP reply (kept for RESEND)."""
        meta = json.dumps(metadata, separators=(",", ":")).encode()
        h, w = image.shape
        payload = meta + image.astype("<u2", copy=False).tobytes()
        crc = zlib.crc32(payload)
        header = f"FRAME {w} {h} {len(meta)} {len(payload)} {crc:08x}\r\n".encode("ascii")
        self._last_frame = header + payload
        return self._last_frame


def _excitation(lights: list[tuple[float, float]]) -> list[tuple[str, float]]:
    """(dye, power fraction) excited by lights of (wavelength nm, power fraction)."""
    excitation = []
    for wavelength, power in lights:
        dye = dye_for_wavelength(wavelength)
        if dye is not None and power > 0:
            excitation.append((dye, power))
    return excitation
