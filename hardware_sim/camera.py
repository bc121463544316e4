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
                             FRAME <width> <height> <metadata bytes>\r\n
                             <metadata: UTF-8 JSON> <pixels: width*height uint16 little-endian,
                             row-major>
    ABORT                 -> OK            (a pending SNAP is cancelled; no frame follows)
    anything wrong        -> ERR <reason>

One SNAP at a time: a SNAP while one is pending answers `ERR busy`. Frame metadata: time
(simulated s at the end of the exposure), frame (counter), exposure_ms, gain, roi [x, y, w, h],
binning, pixel_size_um (binned), stage {x, y, z} (um), led [{channel, wavelength_nm, power_pct,
dye}], channel / power_pct (the first lit channel or null), and truth {count, xy: [[x, y]...]
(frame pixels: x column, y row, (0, 0) the centre of the top-left pixel), zone (zone name under
the field centre or null), dyes, photons, captured_in_view, debris_xy, focus_offset_um}.

World interface (duck-typed, no imports): the stage model in world.devices has
`xyz_um() -> (x, y, z)`; the illuminator model has `emission() -> [(channel, wavelength_nm,
power_pct), ...]` for the channels actually emitting. While light is on, the camera's poll
bleaches the dyes in the field (hardware_sim.optics.bleach_field) and brings the chip's
capture up to the clock (world.advance()).

Device faults (`inject`): `stall` (SNAPs are accepted but no frame ever comes; the client must
time out), `clear`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import numpy as np

from hardware_sim.chip import Chip
from hardware_sim.lines import LineBuffer
from hardware_sim.optics import Optics, Renderer, View, bleach_field, dye_for_wavelength

BINNINGS = (1, 2, 4)


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
        self._last_poll = world.now()
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
            reply = self._command(line.strip())
            if reply:
                out += reply.encode("ascii") + b"\r\n"
        return out

    def poll(self) -> bytes:
        """Bleach under the light, advance the chip, and deliver a due frame."""
        now = self.world.now()
        self.world.advance()
        chip = self.world.chip
        if chip is not None:
            bleach_field(chip, self.renderer, self._view(), now - self._last_poll)
        self._last_poll = now
        if self._due is None or now < self._due or self.stalled:
            return b""
        self._due = None
        return self.frame_bytes()

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
        value = float(args[0])
        if not 0.01 <= value <= 10000:
            return "ERR exposure out of range 0.01..10000 ms"
        self.settings.exposure_ms = value
        return "OK"

    def _gain(self, args: list[str]) -> str:
        value = float(args[0])
        if not 1 <= value <= 16:
            return "ERR gain out of range 1..16"
        self.settings.gain = value
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
        return ""

    def _abort(self, args: list[str]) -> str:
        self._due = None
        return "OK"

    # -- frames -----------------------------------------------------------------------------
    def _device(self, name: str | None, attribute: str) -> Any:
        if name is not None:
            return self.world.devices.get(name)
        return next((d for d in self.world.devices.values() if hasattr(d, attribute)), None)

    def _lights(self) -> list[tuple[str, float, float]]:
        led = self._device(self.illuminator_name, "emission")
        return [] if led is None else list(led.emission())

    def _view(self) -> View:
        stage = self._device(self.stage_name, "xyz_um")
        x, y, z = stage.xyz_um() if stage is not None else (0.0, 0.0, 0.0)
        excitation = []
        for _, wavelength, power in self._lights():
            dye = dye_for_wavelength(wavelength)
            if dye is not None and power > 0:
                excitation.append((dye, power / 100.0))
        s = self.settings
        return View(x, y, z, excitation, s.exposure_ms / 1000.0, s.roi, s.binning, s.gain)

    def render(self) -> tuple[np.ndarray, dict[str, Any]]:
        """Render one frame now; returns the image and its metadata (with truth)."""
        view = self._view()
        chip = self.world.chip or self._empty_chip
        image, truth = self.renderer.render(chip, view)
        zone = chip.zone_at(view.x_um, view.y_um)
        truth["zone"] = None if zone is None else zone.name
        truth["dyes"] = [dye for dye, _ in view.excitation]
        truth["focus_offset_um"] = round(view.z_um - chip.surface_z(view.x_um, view.y_um), 3)
        self.frames += 1
        return image, self._metadata(view, truth)

    def _metadata(self, view: View, truth: dict[str, Any]) -> dict[str, Any]:
        lights = [
            {"channel": ch, "wavelength_nm": wl, "power_pct": p, "dye": dye_for_wavelength(wl)}
            for ch, wl, p in self._lights()
        ]
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
            "truth": truth,
        }

    def frame_bytes(self) -> bytes:
        """Render a frame and encode it as the SNAP reply."""
        image, metadata = self.render()
        meta = json.dumps(metadata, separators=(",", ":")).encode()
        h, w = image.shape
        header = f"FRAME {w} {h} {len(meta)}\r\n".encode("ascii")
        return header + meta + image.astype("<u2", copy=False).tobytes()
