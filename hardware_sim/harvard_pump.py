"""One emulated Harvard Apparatus Pump 11 Elite (Ultra command set): commands and state.

Written from the Pump 11 Elite manual's command reference (device_protocols.md 1.2). A command
returns its data lines; errors are raised as UltraError with the manual's two-line form. The
prompt shows the state: `:` idle, `>` infusing, `<` withdrawing, `*` stalled, `T*` target
reached. Rates and volumes are kept in uL/min and uL; replies print them with units.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

from hardware_sim.syringe import INFUSE, WITHDRAW, SyringePumpModel

VERSION = "11 ELITE I/W Single 3.0.4"
VOLUME_UL = {"ml": 1000.0, "ul": 1.0, "nl": 1e-3, "pl": 1e-6}
TIME_MIN = {"h": 60.0, "hr": 60.0, "m": 1.0, "min": 1.0, "s": 1.0 / 60.0, "sec": 1.0 / 60.0}
# Pusher speeds of a Pump 11 Elite, mm/min: 1.28 pl/min on a 0.5 uL syringe (0.103 mm) up to
# 88.28 mL/min on a 60 mL syringe (26.7 mm).
MIN_SPEED_MM_MIN = 1.5e-4
MAX_SPEED_MM_MIN = 157.0
_RATE = re.compile(r"(\d+(?:\.\d*)?|\.\d+)\s+([munp])l?/(h|hr|m|min|s|sec)")
_VOLUME = re.compile(r"(\d+(?:\.\d*)?|\.\d+)\s+([munp])l?")


class UltraError(Exception):
    """A command error or argument error: the lines the pump prints."""

    def __init__(self, *lines: str) -> None:
        super().__init__(lines[0])
        self.lines = list(lines)


def command_error(message: str) -> UltraError:
    """`Command error:` and the reason on the next line."""
    return UltraError("Command error:", "   " + message)


def argument_error(arg: str, message: str) -> UltraError:
    """`Argument error: <arg>` and the reason on the next line."""
    return UltraError(f"Argument error: {arg}".rstrip(), "   " + message)


def show(value: float) -> str:
    """Five significant digits, as the pump prints quantities (`12.345`, `0.50000`)."""
    if value == 0:
        return "0.0000"
    decimals = max(0, 4 - int(math.floor(math.log10(abs(value)))))
    return f"{value:.{decimals}f}"


def show_volume(ul: float) -> str:
    """A volume with the units the pump picks."""
    return f"{show(ul / 1000.0)} ml" if ul >= 1000.0 else f"{show(ul)} ul"


def show_rate(ul_min: float) -> str:
    """A rate with the units the pump picks."""
    if ul_min >= 1000.0:
        return f"{show(ul_min / 1000.0)} ml/min"
    if ul_min >= 0.1 or ul_min == 0:
        return f"{show(ul_min)} ul/min"
    return f"{show(ul_min * 1000.0)} nl/min"


@dataclass
class Saved:
    """What survives a power cycle (rates only when NVRAM writing is on)."""

    irate: float = 0.0
    wrate: float = 0.0


class HarvardSimPump:
    """The firmware of one pump: `execute(command, args)` returns its data lines."""

    def __init__(self, address: int, model: SyringePumpModel) -> None:
        self.address = address
        self.model = model
        self.svolume_ul = model.syringe_ul
        self.irate = self.wrate = 0.0
        self.saved = Saved()
        self.target_ul: float | None = None
        self.poll = False
        self.nvram = True
        self.echo = False
        self.force = 100
        self.direction = INFUSE
        self.state = ":"  # : > < * T*
        self.limit = "."
        self.unsolicited = ""  # a prompt to print by itself (poll off)

    # -- life -----------------------------------------------------------------------------------
    def power_cycle(self) -> None:
        """Power lost and back: stopped, settings from flash, polling off, NVRAM writes on."""
        self.model.stop("power")
        self.model.clear_counters()
        self.irate, self.wrate = self.saved.irate, self.saved.wrate
        self.poll, self.nvram, self.state, self.limit = False, True, ":", "."

    def stall(self) -> None:
        """The motor stalls now (no message is sent)."""
        self.model.stall()
        self.sync()
        self.state = "*"

    def sync(self) -> None:
        """Bring the prompt up to the clock: target reached (T*), end of travel or stall (*)."""
        self.model.update()
        if self.state in "><" and not self.model.running:
            ended = self.model.ended
            if ended == "target":
                self.state = "T*"
                self.unsolicited = "" if self.poll else "T*"
            else:
                self.state = "*"
                if ended == "end_of_travel":
                    self.limit = "I" if self.direction == INFUSE else "W"

    def running(self) -> bool:
        """The pusher moves."""
        return self.state in "><"

    # -- commands -------------------------------------------------------------------------------
    def execute(self, command: str, args: str) -> list[str]:
        """Run a (resolved) command; its data lines. UltraError for errors."""
        self.sync()
        handler = getattr(self, "_cmd_" + command)
        lines = handler(args)
        self.sync()
        return lines

    def _cmd_(self, args: str) -> list[str]:
        return []

    def _cmd_ver(self, args: str) -> list[str]:
        return [VERSION]

    def _cmd_version(self, args: str) -> list[str]:
        return ["Firmware:      v3.0.4", f"Pump address:  {self.address}", "Serial number: SIM0001"]

    def _cmd_address(self, args: str) -> list[str]:
        if args:
            raise command_error("Address can only be changed from the pump")
        return [f"Pump address is {self.address}"]

    def _switch(self, args: str, name: str, text: str) -> list[str]:
        if not args:
            return [f"{text} is {'ON' if getattr(self, name) else 'OFF'}"]
        if args.lower() not in ("on", "off"):
            raise argument_error(args, "Unknown argument")
        setattr(self, name, args.lower() == "on")
        return []

    def _cmd_poll(self, args: str) -> list[str]:
        return self._switch(args, "poll", "Polling mode")

    def _cmd_nvram(self, args: str) -> list[str]:
        return self._switch(args, "nvram", "NVRAM")

    def _cmd_echo(self, args: str) -> list[str]:
        return self._switch(args, "echo", "Echo")  # the flag only: echoing is not emulated

    def _cmd_force(self, args: str) -> list[str]:
        if not args:
            return [f"{self.force}%"]
        if not args.isdigit() or not 1 <= int(args) <= 100:
            raise argument_error(args, "Out of range")
        self.force = int(args)
        return []

    def _cmd_diameter(self, args: str) -> list[str]:
        if not args:
            return [f"{self.model.diameter_mm:.4f} mm"]
        if self.running():
            raise command_error("Not allowed while running")
        try:
            value = float(args.split()[0])
        except ValueError:
            raise argument_error(args, "Invalid number") from None
        if not 0.1 <= value <= 50.0:
            raise argument_error(args, "Out of range")
        self.model.diameter_mm = value
        return []

    def _cmd_svolume(self, args: str) -> list[str]:
        if not args:
            return [show_volume(self.svolume_ul)]
        self.svolume_ul = self._volume(args)
        return []

    def _limits(self) -> tuple[float, float]:
        area = math.pi * (self.model.diameter_mm / 2.0) ** 2
        return area * MIN_SPEED_MM_MIN, area * MAX_SPEED_MM_MIN

    def _rate(self, args: str, which: str) -> list[str]:
        low, high = self._limits()
        if not args:
            return [show_rate(getattr(self, which))]
        word = args.lower()
        if word == "lim":
            return [f"{show_rate(low)} to {show_rate(high)}"]
        if word in ("max", "min"):
            value = high if word == "max" else low
        else:
            match = _RATE.fullmatch(word)
            if match is None:
                raise argument_error(args, "Unknown argument")
            number, prefix, per = match.groups()
            value = float(number) * VOLUME_UL[prefix + "l"] / TIME_MIN[per]
            if not low <= value <= high:
                raise argument_error(args, "Out of range")
        setattr(self, which, value)
        if self.nvram:
            setattr(self.saved, which, value)
        self._apply_rate()
        return []

    def _apply_rate(self) -> None:
        self.model.rate_ul_min = self.irate if self.direction == INFUSE else self.wrate

    def _cmd_irate(self, args: str) -> list[str]:
        return self._rate(args, "irate")

    def _cmd_wrate(self, args: str) -> list[str]:
        return self._rate(args, "wrate")

    def _cmd_crate(self, args: str) -> list[str]:
        if not self.running():
            raise command_error("Pump is not running")
        verb = "Infusing" if self.direction == INFUSE else "Withdrawing"
        return [f"{verb} at {show_rate(self.model.rate_ul_min)}"]

    def _volume(self, args: str) -> float:
        match = _VOLUME.fullmatch(args.lower())
        if match is None:
            raise argument_error(args, "Unknown argument")
        return float(match.group(1)) * VOLUME_UL[match.group(2) + "l"]

    def _cmd_tvolume(self, args: str) -> list[str]:
        if not args:
            return (
                ["Target volume not set"]
                if self.target_ul is None
                else [show_volume(self.target_ul)]
            )
        if self.running():
            raise command_error("Not allowed while running")
        self.target_ul = self._volume(args)
        return []

    def _cmd_ctvolume(self, args: str) -> list[str]:
        self.target_ul = None
        return []

    def _cmd_cvolume(self, args: str) -> list[str]:
        self.model.clear_counters()
        return []

    def _cmd_civolume(self, args: str) -> list[str]:
        self.model.clear_counters(withdrawn=False)
        return []

    def _cmd_cwvolume(self, args: str) -> list[str]:
        self.model.clear_counters(infused=False)
        return []

    def _cmd_ivolume(self, args: str) -> list[str]:
        return [show_volume(self.model.infused_ul)]

    def _cmd_wvolume(self, args: str) -> list[str]:
        return [show_volume(self.model.withdrawn_ul)]

    def _start(self, direction: int) -> list[str]:
        if self.running() and direction != self.direction:
            raise command_error("Not allowed while running")
        if self.running():
            return []
        self.direction = self.model.direction = direction
        self._apply_rate()
        if self.model.rate_ul_min <= 0:
            raise command_error("Rate not set")
        done = self.model.infused_ul if direction == INFUSE else self.model.withdrawn_ul
        target = None if self.target_ul is None else self.target_ul - done
        self.limit = "."
        if target is not None and target <= 1e-9:
            self.state = "T*"
            return []
        self.model.target_ul = target or 0.0
        self.state = ">" if direction == INFUSE else "<"
        self.model.start(fresh=True)
        return []

    def _cmd_irun(self, args: str) -> list[str]:
        return self._start(INFUSE)

    def _cmd_wrun(self, args: str) -> list[str]:
        return self._start(WITHDRAW)

    def _cmd_run(self, args: str) -> list[str]:
        return self._start(self.direction)

    def _cmd_rrun(self, args: str) -> list[str]:
        return self._start(-self.direction)

    def _cmd_stop(self, args: str) -> list[str]:
        self.model.stop()
        self.state, self.unsolicited = ":", ""
        return []

    def _cmd_status(self, args: str) -> list[str]:
        rate_fl_s = round(self.model.rate_ul_min * 1e9 / 60.0) if self.running() else 0
        moved = self.model.infused_ul if self.direction == INFUSE else self.model.withdrawn_ul
        letter = "i" if self.direction == INFUSE else "w"
        flags = (
            (letter.upper() if self.running() else letter)
            + self.limit
            + ("S" if self.state == "*" and self.model.ended == "stall" else ".")
            + "."
            + letter.upper()
            + ("T" if self.state == "T*" else ".")
        )
        time_ms = round(self.model.now() * 1000.0)
        return [f"{rate_fl_s} {time_ms} {round(moved * 1e9)} {flags}"]


COMMANDS = sorted(
    name[5:] for name in dir(HarvardSimPump) if name.startswith("_cmd_") and name != "_cmd_"
)
ALIASES = {"stp": "stop"}


def resolve(word: str) -> str | None:
    """The command a (case-insensitive, possibly abbreviated to 4+ letters) word names."""
    word = word.lower()
    if word in COMMANDS:
        return word
    if word in ALIASES:
        return ALIASES[word]
    if len(word) >= 4:
        found = [name for name in COMMANDS if name.startswith(word)]
        return found[0] if len(found) == 1 else None
    return None
