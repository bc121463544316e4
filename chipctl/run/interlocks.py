"""Interlocks: the conditions that stop a run safely, how each is detected, and the reason
recorded for it.

Device faults arrive as typed driver exceptions (drivers.errors: the pumps' stall and reset
alarms, a camera timeout, a lost device); `reason_for` turns one into the sentence the
operator sees and the run record keeps. The conditions the engine detects itself are checked
here: the estimated chip pressure over its limit (`check_pressure`), a syringe at the end of
its travel (`stall_or_end_of_travel`, `check_delivered`), a pump that stopped short of its
volume (`check_delivered`) or never finished it (`check_in_time`).
"""

from __future__ import annotations

from chipctl.config.bench import ChipSpec
from chipctl.devices.interfaces import Syringe
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
    StageReset,
)


class Interlock(Exception):
    """A safety condition stopped the run; str() is the reason."""


REASONS: list[tuple[type[BaseException] | tuple[type[BaseException], ...], str]] = [
    (Interlock, "interlock: {exc}"),
    (PumpStalled, "interlock: pump stall alarm, an occlusion or the syringe's end ({exc})"),
    (PumpReset, "interlock: pump reset alarm, the pump lost power ({exc})"),
    (CommunicationTimeoutAlarm,
     "interlock: pump stopped itself, it lost contact with the controller ({exc})"),
    (DeviceAlarm, "interlock: device alarm ({exc})"),
    (CameraTimeout, "interlock: camera timeout, no frame arrived ({exc})"),
    ((DeviceDisconnected, DeviceTimeout, GarbledReply), "interlock: device lost ({exc})"),
    (StageReset, "interlock: stage reset, the controller lost power and its origin ({exc})"),
    (StageFault, "interlock: stage fault ({exc})"),
    (DeviceError, "device error: {exc}"),
]
"""What the operator reads when a run stops on an exception: the first kind that matches."""


def reason_for(exc: BaseException) -> str:
    """The run's end reason for an exception raised while running a step."""
    for kinds, reason in REASONS:
        if isinstance(exc, kinds):
            return reason.format(exc=exc)
    return str(exc)


SHORTFALL_TOLERANCE = 0.02  # a pump may stop 2 % (or 0.05 uL) short of its volume
FLOW_GRACE = 1.5  # a flow may take this many times its planned duration (+30 s) before failing


def check_pressure(chip: ChipSpec, pumps: str, flow_ul_min: float) -> None:
    """Over-pressure: the flow (of `pumps` together) would push the chip past its limit."""
    estimate = chip.flow_pressure(flow_ul_min)
    if estimate.over_limit:
        raise Interlock(f"over-pressure: {pumps} at {flow_ul_min:g} uL/min would drive an "
                        f"estimated {estimate.pressure_kpa:.0f} kPa through the chip "
                        f"(limit {estimate.limit_kpa:g} kPa)")


def at_end_of_travel(syringe: Syringe | None, direction: str) -> bool:
    """True if, by our account, the syringe is empty (infusing) or full (withdrawing)."""
    if syringe is None:
        return False
    if direction == "infuse":
        return syringe.contents_ul <= 0.05
    return syringe.contents_ul >= syringe.volume_ul - 0.05


def _end_of_travel(pump: str, direction: str, delivered_ul: float, target_ul: float) -> Interlock:
    state = "empty" if direction == "infuse" else "full"
    return Interlock(f"end of travel: the syringe on {pump} is {state} after {delivered_ul:.1f} "
                     f"of {target_ul:g} uL")


def stall_or_end_of_travel(alarm: PumpStalled, pump: str, syringe: Syringe | None,
                           direction: str, delivered_ul: float, target_ul: float) -> Exception:
    """A stall alarm with the syringe at its end, by our account, is the end of travel it is."""
    if at_end_of_travel(syringe, direction):
        return _end_of_travel(pump, direction, delivered_ul, target_ul)
    return alarm


def check_delivered(pump: str, syringe: Syringe | None, direction: str, delivered_ul: float,
                    target_ul: float) -> None:
    """End of travel or pump stall: the pump stopped short of its volume without an alarm."""
    short = target_ul - delivered_ul
    if short <= max(0.05, SHORTFALL_TOLERANCE * target_ul):
        return
    if at_end_of_travel(syringe, direction):
        raise _end_of_travel(pump, direction, delivered_ul, target_ul)
    raise Interlock(f"pump stall: {pump} stopped after {delivered_ul:.1f} of {target_ul:g} uL")


def check_in_time(pump: str, volume_ul: float, rate_ul_min: float, active_s: float) -> None:
    """Pump stall: the pump has been running far longer than its volume takes."""
    if active_s > FLOW_GRACE * 60 * volume_ul / rate_ul_min + 30:
        raise Interlock(f"pump stall: {pump} did not finish {volume_ul:g} uL in time")
