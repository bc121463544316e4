"""One emulated New Era NE-1000 on a pump network: its commands, settings, alarms and status.

Written from the NE-1000 family RS-232 reference (device_protocols.md section 1.1). Settings
sent over the wire are kept in (simulated) non-volatile memory, except rate changes made while
pumping; a power cycle loses the running state, raises the reset alarm and makes the pump
ignore the first command it sees. The motion itself is a SyringePumpModel on the world clock.
"""

from __future__ import annotations

import math
import re
import time
from collections.abc import Callable
from dataclasses import dataclass

from hardware_sim.syringe import INFUSE, WITHDRAW, SyringePumpModel

FIRMWARE = "NE1000V3.928"
RATE_FACTORS = {"UM": 1.0, "MM": 1000.0, "UH": 1.0 / 60.0, "MH": 1000.0 / 60.0}  # -> uL/min
VOLUME_FACTORS = {"UL": 1.0, "ML": 1000.0}  # -> uL
# Pusher speed range of an NE-1000 (mm of travel per minute): 0.73 uL/h on a 1 mL syringe
# (4.699 mm) up to 1500 mL/h on a 60 mL syringe (26.59 mm).
MIN_SPEED_MM_MIN = 0.0007
MAX_SPEED_MM_MIN = 45.0
_NUMBER = re.compile(r"(\d*)(?:\.(\d*))?")


class Refusal(Exception):
    """A command error: the text that follows the status character ("?", "?NA", "?OOR")."""


def ne_float(value: float) -> str:
    """The pump's 5-character number: up to 4 digits, up to 3 decimals, always a point."""
    for decimals in (3, 2, 1, 0):
        text = f"{value:.{decimals}f}"
        if len(text.replace(".", "")) <= 4:
            return text if decimals else text + "."
    return "9999."


def parse_float(text: str) -> float:
    """Read a number argument the way the pump does; Refusal when it cannot."""
    match = _NUMBER.fullmatch(text)
    if not text or match is None or not (match.group(1) or match.group(2)):
        raise Refusal("?")
    whole, decimals = match.group(1), match.group(2) or ""
    if len(whole) + len(decimals) > 4 or len(decimals) > 3:
        raise Refusal("?OOR")
    return float(text)


@dataclass
class Settings:
    """What the pump keeps in non-volatile memory."""

    diameter_mm: float
    rate: float = 0.0
    rate_units: str = "UM"
    volume: float = 0.0
    volume_units: str = "UL"
    direction: int = INFUSE
    safe_s: int = 0


class NeSimPump:
    """The firmware of one pump: executes parsed commands, answers with the reply body."""

    def __init__(self, address: int, model: SyringePumpModel, wall: Callable[[], float]) -> None:
        self.address = address
        self.model = model
        self.nvm = Settings(diameter_mm=model.diameter_mm)
        self.nvm.volume_units = "UL" if model.diameter_mm <= 14.0 else "ML"
        self.rate = 0.0  # current rate value (may differ from nvm while pumping)
        self.state = "S"  # I W S P X
        self.alarm = "R"  # a pump fresh from power-up reports the reset first
        self.ignore_next = True
        self.wall = wall
        self.last_packet = wall()
        self.alarm_sent = False

    # -- life -----------------------------------------------------------------------------------
    def power_cycle(self) -> None:
        """Lose power and come back: running state and unsaved rate lost, reset alarm raised."""
        self.model.stop("power")
        self.model.clear_counters()
        self.state, self.alarm, self.ignore_next = "S", "R", True
        self.rate = self.nvm.rate
        self._apply_rate()
        self.last_packet = self.wall()

    def stall(self) -> None:
        """The motor stalls now."""
        self.model.stall()
        self.sync()
        if self.alarm == "":
            self.alarm = "S"

    def sync(self) -> None:
        """Bring the status up to the clock: target reached, end of travel."""
        self.model.update()
        if self.state in "IWX" and not self.model.running:
            ended = self.model.ended
            self.state = "S"
            self._apply_rate()  # after a purge, back to the set rate
            if ended in ("end_of_travel", "stall"):
                self.alarm = self.alarm or "S"

    def watchdog(self) -> bool:
        """Safe mode: stop and raise A?T if no valid packet came in time; True when it fires."""
        if self.nvm.safe_s <= 0 or self.alarm == "T":
            return False
        if self.wall() - self.last_packet <= self.nvm.safe_s:
            return False
        self.model.stop("comm_timeout")
        self.sync()
        self.state, self.alarm = "S", "T"
        return True

    # -- commands -------------------------------------------------------------------------------
    def execute(self, command: str, args: str) -> str:
        """Run one valid command; the reply body after the address (status [data|?err])."""
        self.sync()
        self.last_packet = self.wall()
        if self.alarm:
            alarm, self.alarm = self.alarm, ""
            return "A?" + alarm
        handler = getattr(self, "_cmd_" + command.lower(), None) if command else self._status
        if handler is None:
            return self.state + "?"
        try:
            data = handler(args)
        except Refusal as refusal:
            return self.state + str(refusal)
        self.sync()
        return self.state + data

    def _status(self, args: str) -> str:
        return ""

    def _running(self) -> bool:
        return self.state in "IWX"

    def _cmd_dia(self, args: str) -> str:
        if not args:
            return ne_float(self.nvm.diameter_mm)
        value = parse_float(args)
        if self._running():
            raise Refusal("?NA")
        if not 0.1 <= value <= 80.0:
            raise Refusal("?OOR")
        self.nvm.diameter_mm = self.model.diameter_mm = value
        self.nvm.volume_units = "UL" if value <= 14.0 else "ML"
        return ""

    def _rate_limits(self, units: str) -> tuple[float, float]:
        area = math.pi * (self.nvm.diameter_mm / 2.0) ** 2
        factor = RATE_FACTORS[units]
        return area * MIN_SPEED_MM_MIN / factor, area * MAX_SPEED_MM_MIN / factor

    def _cmd_rat(self, args: str) -> str:
        args = args[1:] if args.startswith("C") else args
        if not args:
            return ne_float(self.rate) + self.nvm.rate_units
        match = re.fullmatch(r"([\d.]*)(UM|MM|UH|MH)?", args)
        if match is None or not match.group(1):
            raise Refusal("?")
        value = parse_float(match.group(1))
        units = match.group(2) or self.nvm.rate_units
        if self._running() and units != self.nvm.rate_units:
            raise Refusal("?NA")
        low, high = self._rate_limits(units)
        if not low <= value <= high:
            raise Refusal("?OOR")
        self.rate = value
        if not self._running():
            self.nvm.rate, self.nvm.rate_units = value, units
        self._apply_rate()
        return ""

    def _apply_rate(self) -> None:
        self.model.rate_ul_min = self.rate * RATE_FACTORS[self.nvm.rate_units]

    def _cmd_vol(self, args: str) -> str:
        if not args:
            return ne_float(self.nvm.volume) + self.nvm.volume_units
        if self._running():
            raise Refusal("?NA")
        if args in VOLUME_FACTORS:
            self.nvm.volume_units = args
        else:
            self.nvm.volume = parse_float(args)
        return ""

    def _cmd_dir(self, args: str) -> str:
        if not args:
            return "INF" if self.nvm.direction == INFUSE else "WDR"
        wanted = {"INF": INFUSE, "WDR": WITHDRAW, "REV": -self.nvm.direction}.get(args)
        if args == "STK":
            if self._running():
                raise Refusal("?NA")
            return ""
        if wanted is None:
            raise Refusal("?")
        if self._running() and self.nvm.volume != 0:
            raise Refusal("?NA")
        self.nvm.direction = self.model.direction = wanted
        if self._running():
            self.state = "I" if wanted == INFUSE else "W"
        return ""

    def _cmd_run(self, args: str) -> str:
        if args:
            raise Refusal("?NA")  # program phases are not emulated
        if self._running():
            return ""
        fresh = self.state != "P"
        self.model.direction = self.nvm.direction
        self.model.target_ul = self.nvm.volume * VOLUME_FACTORS[self.nvm.volume_units]
        self._apply_rate()
        self.state = "I" if self.nvm.direction == INFUSE else "W"
        self.model.start(fresh=fresh)
        return ""

    def _cmd_pur(self, args: str) -> str:
        if self._running():
            raise Refusal("?NA")
        self.model.direction = self.nvm.direction
        self.model.target_ul = 0.0
        self.model.rate_ul_min = self._rate_limits("UM")[1]
        self.state = "X"
        self.model.start(fresh=True)
        return ""

    def _cmd_stp(self, args: str) -> str:
        if self._running():
            self.model.stop()
            self.state = "P" if self.state != "X" else "S"
            self._apply_rate()
        elif self.state == "P":
            self.state = "S"
        return ""

    def _cmd_dis(self, args: str) -> str:
        factor = VOLUME_FACTORS[self.nvm.volume_units]
        infused = ne_float(self.model.infused_ul / factor)
        withdrawn = ne_float(self.model.withdrawn_ul / factor)
        return f"I{infused}W{withdrawn}{self.nvm.volume_units}"

    def _cmd_cld(self, args: str) -> str:
        if args not in ("INF", "WDR"):
            raise Refusal("?")
        self.model.clear_counters(infused=args == "INF", withdrawn=args == "WDR")
        return ""

    def _cmd_ver(self, args: str) -> str:
        return FIRMWARE

    def _cmd_saf(self, args: str) -> str:
        if not args:
            return str(self.nvm.safe_s)
        if not args.isdigit():
            raise Refusal("?")
        if int(args) > 255:
            raise Refusal("?OOR")
        self.nvm.safe_s = int(args)
        self.last_packet = self.wall()
        return ""


def wall_clock() -> float:
    """Wall time for the safe-mode watchdog (the link to the host is real, not simulated)."""
    return time.monotonic()
