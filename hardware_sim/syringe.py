"""A syringe pump's mechanics on the virtual clock, shared by the pump emulators.

Volume displaced = rate x time; what flows into the chip is that volume scaled by the barrel's
actual bore against the diameter the pump was told (`bore_mm`, hardware_sim.manufacturing).
A run stops by itself when its target volume is reached
(target 0 = run until stopped), and at the end of travel: an empty syringe when infusing, a
full one when withdrawing. A stall stops the pusher where it is. The model is the pump as the
chip sees it (a FlowSource): its reagent and its signed flow at a given simulated time.

The pump keeps a record of its flow (every change with the simulated time it took effect; a
run that reaches its target stops at the exact time it did, not when it is next looked at), so
the chip integrates the flow that was, whenever it is advanced.
"""

from __future__ import annotations

import bisect
import threading
from collections.abc import Callable
from dataclasses import dataclass, field

INFUSE = 1
WITHDRAW = -1
_FLOW_SETTINGS = ("rate_ul_min", "direction")  # set by the emulators; the record follows them


@dataclass
class SyringePumpModel:
    """One syringe on one pusher. Volumes in uL, rates in uL/min, time in simulated seconds."""

    name: str
    reagent: str
    diameter_mm: float
    syringe_ul: float
    contents_ul: float
    now: Callable[[], float]
    bore_mm: float = 0.0  # the syringe's actual inner diameter (0: as its drawing, diameter_mm)
    rate_ul_min: float = 0.0
    direction: int = INFUSE
    target_ul: float = 0.0
    running: bool = False
    run_displaced_ul: float = 0.0
    infused_ul: float = 0.0
    withdrawn_ul: float = 0.0
    # Why the last run ended: "", "stopped", "target", "end_of_travel", "stall", "power".
    ended: str = ""
    ended_at_s: float = 0.0  # simulated time the last run ended (a safety test's record)
    # Set by the emulator serving this pump: inject(fault, value) arms a fault on it.
    injector: Callable[[str, float], None] | None = field(default=None, repr=False)
    _last: float = 0.0
    _lock: threading.RLock = field(default_factory=threading.RLock, repr=False)
    _change_s: list[float] = field(default_factory=list, repr=False)  # the flow's record:
    _change_flow: list[float] = field(default_factory=list, repr=False)  # from when, how much

    def __post_init__(self) -> None:
        self._last = self.now()
        self._note(self._last)

    def __setattr__(self, name: str, value: object) -> None:
        if name in _FLOW_SETTINGS and "_change_s" in self.__dict__:
            with self._lock:  # the motion so far at the old setting, then the new one
                self.update()
                object.__setattr__(self, name, value)
                self._note(self._last)
            return
        object.__setattr__(self, name, value)

    # -- the chip's view ----------------------------------------------------------------------
    def flow_ul_per_min(self, now: float) -> float:
        """Signed flow into the chip (infuse > 0) at simulated time `now`: the pump's record
        for a time already passed, its motion brought up to `now` otherwise."""
        with self._lock:
            self.update(now)
            at = bisect.bisect_right(self._change_s, now)
            return self._change_flow[at - 1] * self.bore_factor() if at else 0.0

    def bore_factor(self) -> float:
        """What flows over what the pump displaces by its setting: the firmware drives the
        pusher for the diameter it was told, the barrel's actual bore sets the volume."""
        if self.bore_mm <= 0 or self.diameter_mm <= 0:
            return 1.0
        return (self.bore_mm / self.diameter_mm) ** 2

    def flow_changes(self, start: float, end: float) -> list[float]:
        """Simulated times in (start, end) at which the flow changed (the motion is brought up
        to `end` first)."""
        with self._lock:
            self.update(end)
            low = bisect.bisect_right(self._change_s, start)
            high = bisect.bisect_left(self._change_s, end)
            return self._change_s[low:high]

    def _note(self, when: float) -> None:
        """Record the flow from `when` on, if it changed."""
        flow = self.direction * self.rate_ul_min if self.running else 0.0
        if (self._change_flow[-1] if self._change_flow else 0.0) == flow:
            return
        if self._change_s and self._change_s[-1] >= when:  # changed again at the same time
            while self._change_s and self._change_s[-1] >= when:
                self._change_s.pop()
                self._change_flow.pop()
            if (self._change_flow[-1] if self._change_flow else 0.0) == flow:
                return
        self._change_s.append(when)
        self._change_flow.append(flow)

    def inject(self, fault: str, value: float = 1.0) -> None:
        """Arm a fault on this pump (`stall`, `power_cycle`) or on the link it is served on."""
        if self.injector is None:
            raise RuntimeError(f"pump {self.name} is not served by an emulator")
        self.injector(fault, value)

    # -- motion ---------------------------------------------------------------------------------
    def update(self, now: float | None = None) -> None:
        """Integrate the pusher's motion up to `now` (default: the clock's now)."""
        with self._lock:
            now = self.now() if now is None else now
            if now <= self._last:
                return
            began, self._last = self._last, now
            if not self.running or self.rate_ul_min <= 0:
                return
            self._move(self.rate_ul_min * (now - began) / 60.0, began)

    def _move(self, wanted: float, began: float | None = None) -> None:
        """Displace up to `wanted` uL moving since `began` (default: now): a run that reaches
        its target or the end of travel halts at the time it did."""
        room = self.contents_ul if self.direction == INFUSE else self.syringe_ul - self.contents_ul
        step, reason = wanted, ""
        if self.target_ul > 0 and self.target_ul - self.run_displaced_ul <= step:
            step, reason = max(0.0, self.target_ul - self.run_displaced_ul), "target"
        if room <= step:
            step, reason = max(0.0, room), "end_of_travel"
        self.run_displaced_ul += step
        self.contents_ul -= self.direction * step
        if self.direction == INFUSE:
            self.infused_ul += step
        else:
            self.withdrawn_ul += step
        if reason:
            at = self._last
            if began is not None and self.rate_ul_min > 0:
                at = min(self._last, began + step * 60.0 / self.rate_ul_min)
            self._halt(reason, at)

    def _halt(self, reason: str, at: float | None = None) -> None:
        self.running = False
        self.ended = reason
        self.ended_at_s = self._last if at is None else at
        self._note(self.ended_at_s)

    def start(self, *, fresh: bool) -> None:
        """Start (fresh: a new run toward the target) or resume the pusher."""
        with self._lock:
            self.update()
            if fresh:
                self.run_displaced_ul = 0.0
            self.running = True
            self.ended = ""
            self._note(self._last)
            self._move(0.0)  # a syringe already at the end of travel stops at once

    def stop(self, reason: str = "stopped") -> None:
        """Stop the pusher where it is."""
        with self._lock:
            self.update()
            if self.running:
                self._halt(reason)

    def stall(self) -> None:
        """The motor stalls: the pusher stops (an occlusion, over-pressure)."""
        with self._lock:
            self.update()
            self._halt("stall")

    def clear_counters(self, infused: bool = True, withdrawn: bool = True) -> None:
        """Zero the dispensed-volume counters."""
        with self._lock:
            if infused:
                self.infused_ul = 0.0
            if withdrawn:
                self.withdrawn_ul = 0.0
