"""One pump delivering one volume, across pauses: what a flow step does to its pump.

`start()` pumps what is left of the volume; `hold()` stops the pump and books what it moved;
`finish()` books the last segment. Across any number of pauses the segments add up to the
step's volume. A pump that stops short (end of travel, a stall without alarm) or that would
push the chip past its pressure limit raises an Interlock (chipctl.run.interlocks decides).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from dataclasses import dataclass, field

from chipctl.config.bench import ChipSpec
from chipctl.devices.interfaces import SyringePump
from chipctl.run import interlocks
from drivers.errors import PumpStalled


@dataclass
class PumpRun:
    """A pump's progress through one volume."""

    name: str
    pump: SyringePump
    rate_ul_min: float
    target_ul: float
    direction: str = "infuse"
    emit: Callable[..., None] = field(default=lambda kind, **fields: None, repr=False)
    chip: ChipSpec | None = None  # checked for its pressure limit before each start
    delivered_ul: float = 0.0
    segments: list[float] = field(default_factory=list)
    running: bool = False

    @property
    def _sign(self) -> float:
        """Event volumes are signed like displaced_ul: withdrawn volume is negative."""
        return 1.0 if self.direction == "infuse" else -1.0

    @property
    def remaining_ul(self) -> float:
        """What is left to pump."""
        return max(0.0, self.target_ul - self.delivered_ul)

    def start(self) -> None:
        """Pump the remaining volume (the first time, or after a pause)."""
        if self.remaining_ul <= 1e-6:
            return
        if self.chip is not None:
            interlocks.check_pressure(self.chip, self.name, self.rate_ul_min)
        self.emit("pump_start", pump=self.name, direction=self.direction,
                  rate_ul_min=self.rate_ul_min, volume_ul=round(self.remaining_ul, 4))
        if self.direction == "infuse":
            self.pump.infuse(self.rate_ul_min, self.remaining_ul)
        else:
            self.pump.withdraw(self.rate_ul_min, self.remaining_ul)
        self.running = True

    def hold(self) -> None:
        """Stop the pump (pause) and book what this segment moved."""
        if not self.running:
            return
        self.running = False
        self.pump.stop()
        self._book()
        self.emit("pump_hold", pump=self.name, direction=self.direction,
                  delivered_ul=round(self._sign * self.delivered_ul, 4),
                  remaining_ul=round(self.remaining_ul, 4))

    def stop(self) -> None:
        """Stop early on purpose (a plateau reached): no shortfall check."""
        if self.running:
            self.running = False
            self.pump.stop()
            self._book()

    def is_running(self) -> bool:
        """Poll the pump (alarms raise as typed device errors; a stall alarm with the syringe
        at its end, by our account, is reported as the end of travel it is)."""
        try:
            return self.running and self.pump.is_running()
        except PumpStalled as exc:
            self.running = False
            with contextlib.suppress(Exception):
                self._book()
            reason = interlocks.stall_or_end_of_travel(exc, self.name, self.pump.syringe,
                                                       self.direction, self.delivered_ul,
                                                       self.target_ul)
            if reason is exc:
                raise
            raise reason from exc

    def finish(self, expect_full: bool = True) -> None:
        """The pump stopped by itself: book the segment, check the volume, report."""
        if self.running:
            self.running = False
            self._book()
        self.emit("pump_done", pump=self.name, direction=self.direction,
                  delivered_ul=round(self._sign * self.delivered_ul, 4),
                  target_ul=self.target_ul, segments=[round(s, 4) for s in self.segments])
        if expect_full:
            interlocks.check_delivered(self.name, self.pump.syringe, self.direction,
                                       self.delivered_ul, self.target_ul)

    def _book(self) -> None:
        moved = abs(self.pump.displaced_ul())
        self.delivered_ul += moved
        self.segments.append(moved)
