"""Interlocks: the conditions that stop a run safely, and the reason recorded for each.

Device faults arrive as typed driver exceptions (drivers.errors); `reason_for` turns one into the
sentence the operator sees and the run record keeps. Conditions the engine detects itself (the
estimated chip pressure over its limit, a syringe at the end of its travel, a pump that stopped
short of its volume) raise Interlock directly.
"""

from __future__ import annotations

from drivers.errors import (
    CameraTimeout,
    CommunicationTimeoutAlarm,
    DeviceAlarm,
    DeviceDisconnected,
    DeviceError,
    DeviceTimeout,
    GarbledReply,
    PumpReset,
    PumpStalled,
    StageFault,
)


class Interlock(Exception):
    """A safety condition stopped the run; str() is the reason."""


def reason_for(exc: BaseException) -> str:
    """The run's end reason for an exception raised while running a step."""
    if isinstance(exc, Interlock):
        return f"interlock: {exc}"
    if isinstance(exc, PumpStalled):
        return f"interlock: pump stall alarm, an occlusion or the syringe's end ({exc})"
    if isinstance(exc, PumpReset):
        return f"interlock: pump reset alarm, the pump lost power ({exc})"
    if isinstance(exc, CommunicationTimeoutAlarm):
        return f"interlock: pump stopped itself, it lost contact with the controller ({exc})"
    if isinstance(exc, DeviceAlarm):
        return f"interlock: device alarm ({exc})"
    if isinstance(exc, CameraTimeout):
        return f"interlock: camera timeout, no frame arrived ({exc})"
    if isinstance(exc, DeviceDisconnected | DeviceTimeout | GarbledReply):
        return f"interlock: device lost ({exc})"
    if isinstance(exc, StageFault):
        return f"interlock: stage fault ({exc})"
    if isinstance(exc, DeviceError):
        return f"device error: {exc}"
    return str(exc)


def over_pressure(pump: str, rate_ul_min: float, pressure_kpa: float,
                  limit_kpa: float) -> Interlock:
    """The interlock for a flow whose estimated chip pressure is over the limit."""
    return Interlock(f"over-pressure: {pump} at {rate_ul_min:g} uL/min would drive an estimated "
                     f"{pressure_kpa:.0f} kPa through the chip (limit {limit_kpa:g} kPa)")


def end_of_travel(pump: str, direction: str, delivered_ul: float, target_ul: float) -> Interlock:
    """The interlock for a syringe that emptied (infusing) or filled (withdrawing) mid-step."""
    state = "empty" if direction == "infuse" else "full"
    return Interlock(f"end of travel: the syringe on {pump} is {state} after {delivered_ul:.1f} "
                     f"of {target_ul:g} uL")


def stopped_short(pump: str, delivered_ul: float, target_ul: float) -> Interlock:
    """The interlock for a pump that stopped before its volume without an alarm."""
    return Interlock(f"pump stall: {pump} stopped after {delivered_ul:.1f} of {target_ul:g} uL")
