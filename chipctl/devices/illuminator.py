"""The illuminator as the engine sees it: a CoolLED pE-300 / pE-4000 with named channels.

Auto-shutter: `light_exposures` lights a channel for the camera's exposures only. Where the
bench wires the camera's exposure output to the LED's TTL trigger input (bench file
`triggered_by: CAMERA`), the channel is armed (selected, off: it emits while the trigger is
high, so only during exposures, whatever the link's latency); otherwise it is switched on
around the exposures. Either way the LED's state on the wire is what was sent.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from chipctl.config.devices import CoolLedSettings
from chipctl.devices.interfaces import reported_firmware
from drivers.coolled import ChannelState, CoolLed
from drivers.errors import DeviceError, DeviceTimeout, OutOfRange
from drivers.transport import SerialTransport


class CoolLedIlluminator:
    """Illuminator over a CoolLED: named channels (AF488, ...) mapped to letters (A, ...)."""

    def __init__(self, name: str, driver: CoolLed, channels: Mapping[str, str],
                 triggered_by: str | None = None) -> None:
        self.name = name
        self.triggered_by = triggered_by
        self.driver = driver
        self.letters = {str(k): str(v).upper() for k, v in channels.items()}
        self.channels = tuple(self.letters)
        self.model: str | None = None
        self.firmware: str | None = None

    def connect(self) -> None:
        """Open the link, check every mapped letter exists, and start dark."""
        self.model = self.driver.connect()
        self.firmware = reported_firmware(lambda: "; ".join(self.driver.versions()))
        missing = [ch for ch in self.letters.values() if ch not in self.driver.channels]
        if missing:
            raise OutOfRange(self.name, f"channels {missing} not on this {self.driver.model}")
        self.dark()

    def close(self) -> None:
        """Close the link (the light is left as it is)."""
        self.driver.close()

    def _letter(self, channel: str) -> str:
        if channel not in self.letters:
            raise OutOfRange(self.name, f"unknown channel {channel!r}; known {self.channels}")
        return self.letters[channel]

    def light(self, channel: str, power_pct: float) -> None:
        """`channel` on at `power_pct` (rounded to whole %), every other channel off."""
        letter = self._letter(channel)
        current = self.driver.state()
        level = int(round(power_pct))
        wanted = {
            ch: ChannelState(ch == letter, ch == letter, level if ch == letter else s.intensity)
            for ch, s in current.items()
        }
        self.driver.set_state(wanted)

    def arm(self, channel: str, power_pct: float) -> None:
        """`channel` selected at `power_pct` but off: it lights on its TTL trigger only (the
        camera's exposures); every other channel off."""
        letter = self._letter(channel)
        current = self.driver.state()
        level = int(round(power_pct))
        wanted = {
            ch: ChannelState(ch == letter, False, level if ch == letter else s.intensity)
            for ch, s in current.items()
        }
        self.driver.set_state(wanted)

    def dark(self) -> None:
        """Every channel off: sent blindly, never after a read (a read that times out must
        not keep the light on), retried; DeviceTimeout if the unit never confirmed it. Then,
        off already, every channel deselected (an armed channel lights on its trigger)."""
        if not self.driver.all_off():
            raise DeviceTimeout(self.name, "every channel off was sent, but the unit never "
                                "confirmed it")
        self._disarm()

    def off(self) -> bool:
        """The safe state's off (as dark(), never raising): True once confirmed."""
        confirmed = self.driver.all_off()
        if confirmed:
            with contextlib.suppress(DeviceError):
                self._disarm()
        return confirmed

    def _disarm(self) -> None:
        current = self.driver.state()
        if any(s.selected for s in current.values()):
            self.driver.set_state(
                {ch: ChannelState(False, False, s.intensity) for ch, s in current.items()})

    def armed(self) -> dict[str, float]:
        """Channels armed for the camera's trigger (selected, off: lit while the camera
        exposes) -> power %; none without that wiring."""
        if not self.triggered_by:
            return {}
        reported = self.driver.state()
        return {name: float(reported[letter].intensity) for name, letter in self.letters.items()
                if reported[letter].selected and not reported[letter].emitting}

    def state(self) -> dict[str, tuple[bool, float]]:
        """channel name -> (emitting, power %)."""
        reported = self.driver.state()
        return {
            name: (reported[letter].emitting, float(reported[letter].intensity))
            for name, letter in self.letters.items()
        }


def camera_triggered(light: Any) -> bool:
    """Whether the camera's exposures trigger this light (then a channel is armed for them)."""
    return bool(getattr(light, "triggered_by", None)) and callable(getattr(light, "arm", None))


@contextlib.contextmanager
def light_exposures(light: Any, channel: str, power_pct: float) -> Iterator[None]:
    """The sample lit in `channel` for the exposures taken in the block, dark after it:
    armed for the camera's trigger where the bench has that wiring, else on for the block."""
    if camera_triggered(light):
        light.arm(channel, power_pct)
    else:
        light.light(channel, power_pct)
    try:
        yield
    finally:
        light.dark()


@dataclass(frozen=True)
class ExposureLight:
    """The light a manual exposure (snap, live) gets, for the exposure only."""

    illuminator: str
    channel: str
    power_pct: float

    def as_record(self) -> dict[str, Any]:
        """The light as an event's fields."""
        return {"illuminator": self.illuminator, "channel": self.channel,
                "power_pct": self.power_pct}


def lit_snap(camera: Any, timeout_s: float, lamp: Any, light: ExposureLight | None) -> Any:
    """One frame, lit by `light` (on `lamp`) for its exposure only, as a run's image step
    lights its frames (`light_exposures`); with the light as it is if there is none."""
    if lamp is None or light is None:
        return camera.snap(timeout_s=timeout_s)
    with light_exposures(lamp, light.channel, light.power_pct):
        return camera.snap(timeout_s=timeout_s)


class LiveExposures:
    """Live view's light: each exposure lit only. A camera-triggered channel is armed once,
    at the first frame, for the whole of live view (the camera's trigger lights it); any other
    light is switched on around each exposure (`lit_snap`). Stopped: no frame lights again."""

    def __init__(self, camera: Any, lamp: Any, light: ExposureLight | None) -> None:
        self.camera, self.lamp, self.light = camera, lamp, light
        self.stopped = False  # set without the lock by an emergency stop
        self._armed = False
        self._lock = threading.Lock()  # arming against stopping

    def frame(self, timeout_s: float) -> Any:
        """The next frame; LiveStopped once stopped."""
        if self.stopped:
            raise LiveStopped("live view is off")
        if self.light is None or not camera_triggered(self.lamp):
            return lit_snap(self.camera, timeout_s, self.lamp, self.light)
        with self._lock:
            if not self._armed:
                self.lamp.arm(self.light.channel, self.light.power_pct)
                self._armed = True
            if self.stopped:  # an emergency stop while arming: dark again
                self.lamp.dark()
                raise LiveStopped("live view is off")
        return self.camera.snap(timeout_s=timeout_s)

    def stop(self) -> bool:
        """No more frames; disarms a channel armed for them. True if it did."""
        self.stopped = True
        with self._lock:
            armed, self._armed = self._armed, False
        if armed:
            self.lamp.dark()
        return armed


class LiveStopped(Exception):
    """Live view was stopped: no frame is taken."""


def make_coolled(name: str, settings: CoolLedSettings,
                 transport: SerialTransport) -> CoolLedIlluminator:
    """A CoolLED from its bench-file entry (`channels: {AF488: A, ...}`, timeout, the camera
    that triggers it)."""
    return CoolLedIlluminator(name, CoolLed(transport, name=name, timeout=settings.timeout),
                              settings.channels, settings.triggered_by)
