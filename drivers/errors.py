"""Typed device errors: every fault a device reports, or the link shows, is one of these."""

from __future__ import annotations

from typing import Self


class DeviceError(Exception):
    """Base of every error raised by a driver; `device` names the device (its bench-file name
    where the driver was given one)."""

    def __init__(self, device: str, message: str) -> None:
        super().__init__(f"{device}: {message}")
        self.device = device
        self.message = message

    def renamed(self, device: str) -> Self:
        """The same error told about `device` (a port's error, seen by a device on it)."""
        other = type(self).__new__(type(self))
        other.__dict__.update(self.__dict__)
        other.device = device
        other.args = (f"{device}: {self.message}",)
        return other


class DeviceTimeout(DeviceError):
    """The device did not finish its reply within the timeout."""

    def __init__(self, device: str, message: str, partial: bytes = b"") -> None:
        super().__init__(device, message)
        self.partial = partial


class DeviceDisconnected(DeviceError):
    """The port could not be opened, or it went away (unplugged, closed by the peer)."""


class GarbledReply(DeviceError):
    """A reply arrived but does not follow the device's grammar (wrong frame, field, checksum)."""

    def __init__(self, device: str, message: str, raw: bytes = b"") -> None:
        super().__init__(device, message)
        self.raw = raw


class SetpointMismatch(DeviceError):
    """A setting read back from the device differs from what was sent, after every retry."""


class CommandRejected(DeviceError):
    """The device refused a command (unknown, not applicable now, malformed)."""


class DeviceBusy(CommandRejected):
    """The device refused a command because it is busy; retrying later may succeed."""


class OutOfRange(CommandRejected):
    """A parameter is outside the range the device accepts."""


class DeviceAlarm(DeviceError):
    """The device raised an alarm; it must be acknowledged and the device re-armed."""


class PumpStalled(DeviceAlarm):
    """The pump motor stalled (occlusion, over-pressure, or the syringe end of travel)."""


class PumpReset(DeviceAlarm):
    """The pump lost power or was reset; its running state (and maybe settings) was lost."""


class PumpInterrupted(DeviceAlarm):
    """The pump stopped before its run ended, without an alarm of its own (its front panel)."""


class CommunicationTimeoutAlarm(DeviceAlarm):
    """A pump in safe mode saw no valid packet within its timeout and stopped itself."""


class ProgramAlarm(DeviceAlarm):
    """The pump's pumping program is in error (program error, phase out of range)."""


class StageFault(DeviceError):
    """The stage or focus drive reported a fault (limit, not idle, lost position)."""


class StageReset(StageFault):
    """The stage controller was reset (power cycle): its origin, and so every position, is
    lost."""


class ValveFault(DeviceError):
    """A selector valve did not reach the port it was sent to, or cannot select ports at all
    (jammed or stalled rotor, wrong actuator mode, a valve head other than the bench's)."""


class CameraTimeout(DeviceTimeout):
    """The camera delivered no frame in time."""
