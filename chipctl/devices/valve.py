"""The selector valve as the engine sees it: the VICI driver already speaks in ports (1-based,
SO..SO+NP-1), so the device is the driver itself, built from its bench-file entry."""

from __future__ import annotations

from chipctl.config.devices import ViciSettings
from drivers.transport import SerialTransport
from drivers.vici import ViciValve


def make_vici(name: str, settings: ViciSettings, transport: SerialTransport) -> ViciValve:
    """A VICI universal actuator on a multiposition selector valve."""
    return ViciValve(transport, name, device_id=settings.device_id, positions=settings.positions,
                     timeout=settings.timeout, move_timeout=settings.move_timeout)
