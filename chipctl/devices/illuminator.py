"""The illuminator as the engine sees it: a CoolLED pE-300 / pE-4000 with named channels."""

from __future__ import annotations

from collections.abc import Mapping

from chipctl.config.devices import CoolLedSettings
from chipctl.devices.interfaces import reported_firmware
from drivers.coolled import ChannelState, CoolLed
from drivers.errors import DeviceTimeout, OutOfRange
from drivers.transport import SerialTransport


class CoolLedIlluminator:
    """Illuminator over a CoolLED: named channels (AF488, ...) mapped to letters (A, ...)."""

    def __init__(self, name: str, driver: CoolLed, channels: Mapping[str, str]) -> None:
        self.name = name
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

    def dark(self) -> None:
        """Every channel off: sent blindly, never after a read (a read that times out must
        not keep the light on), retried; DeviceTimeout if the unit never confirmed it."""
        if not self.driver.all_off():
            raise DeviceTimeout(self.name, "every channel off was sent, but the unit never "
                                "confirmed it")

    def off(self) -> bool:
        """The safe state's off (as dark(), never raising): True once confirmed."""
        return self.driver.all_off()

    def state(self) -> dict[str, tuple[bool, float]]:
        """channel name -> (emitting, power %)."""
        reported = self.driver.state()
        return {
            name: (reported[letter].emitting, float(reported[letter].intensity))
            for name, letter in self.letters.items()
        }


def make_coolled(name: str, settings: CoolLedSettings,
                 transport: SerialTransport) -> CoolLedIlluminator:
    """A CoolLED from its bench-file entry (`channels: {AF488: A, ...}`, timeout)."""
    return CoolLedIlluminator(name, CoolLed(transport, name=name, timeout=settings.timeout),
                              settings.channels)
