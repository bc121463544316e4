"""The status bar: run state, pumps, light, stage and the alarm, visible from every tab.

Each indicator shows the newest bench snapshot (gui.bench_state), never a remembered message.
An alarm (emergency stop, a device fault, a failed run) is latched: it stays red until the
operator acknowledges it, and once acknowledged it is cleared by the next change of the bench's
or the run's state. "Waiting for the operator" is a run state of its own.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any

from PySide6.QtWidgets import QHBoxLayout, QPushButton, QStatusBar, QWidget

from gui.bench_state import BenchSnapshot
from gui.widgets import ElidedLabel

RED, AMBER, GREEN, GREY = "#c62828", "#b36b00", "#1b7f3b", "#555555"
RUN_COLOURS = {"running": GREEN, "paused": AMBER, "waiting for the operator": AMBER,
               "completed": GREEN, "aborted": AMBER, "failed": RED}


@dataclass
class AlarmLatch:
    """Alarms since the last acknowledgement; cleared only after an acknowledgement, by the
    next state change."""

    alarms: list[str] = field(default_factory=list)
    acknowledged: bool = False

    @property
    def latched(self) -> bool:
        """True while an alarm waits for the operator's acknowledgement."""
        return bool(self.alarms) and not self.acknowledged

    def raise_alarm(self, message: str) -> None:
        """Latch an alarm (a new one after an acknowledgement latches again)."""
        stamp = dt.datetime.now().strftime("%H:%M:%S")
        if self.acknowledged:
            self.alarms.clear()
            self.acknowledged = False
        self.alarms.append(f"{stamp} {message}")

    def acknowledge(self) -> None:
        """The operator has seen the alarms."""
        if self.alarms:
            self.acknowledged = True

    def state_changed(self) -> bool:
        """The bench or the run changed state; True if that cleared acknowledged alarms."""
        if self.alarms and self.acknowledged:
            self.alarms.clear()
            self.acknowledged = False
            return True
        return False

    def text(self) -> str:
        """What the alarm indicator says."""
        if not self.alarms:
            return ""
        newest = self.alarms[-1]
        more = f" (+{len(self.alarms) - 1} more)" if len(self.alarms) > 1 else ""
        return f"{'acknowledged: ' if self.acknowledged else 'ALARM '}{newest}{more}"


def describe_pumps(snapshot: BenchSnapshot) -> str:
    """'sample_pump infusing at 5 uL/min', 'pumps stopped', or what could not be read."""
    running = []
    for name in snapshot.pumps_running():
        pump = snapshot.pumps[name]
        how = {"infuse": "infusing", "withdraw": "withdrawing"}.get(pump.direction, "running")
        rate = f" at {pump.rate_ul_min:g} uL/min" if pump.rate_ul_min else ""
        running.append(f"{name} {how}{rate}")
    if running:
        return "pumps: " + ", ".join(running)
    return "pumps stopped" if snapshot.pumps else "no pumps read yet"


def describe_light(snapshot: BenchSnapshot) -> str:
    """'light AF647 60 %', 'light AF647 60 % while the camera exposes' or 'light off'."""
    lit = [f"{channel} {power:g} %" for _, channel, power in snapshot.lights_on()]
    lit += [f"{channel} {power:g} % while the camera exposes"
            for _, channel, power in snapshot.lights_armed()]
    if lit:
        return "light " + ", ".join(lit)
    return "light off" if snapshot.lights else "light not read yet"


def describe_bench(snapshot: BenchSnapshot) -> str:
    """The summary: 'every pump and light is off' only while that is true."""
    if snapshot.errors:
        names = ", ".join(sorted(snapshot.errors))
        return f"not answering: {names}"
    if snapshot.all_off():
        return "every pump and light is off"
    return "bench active"


class StatusIndicators(QWidget):
    """The permanent part of the status bar."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.latch = AlarmLatch()
        self.run = ElidedLabel("no run")
        self.bench = ElidedLabel("")
        self.pumps = ElidedLabel("")
        self.light = ElidedLabel("")
        self.stage = ElidedLabel("")
        self.alarm = ElidedLabel("")
        self.ack_button = QPushButton("Acknowledge")
        self.ack_button.setToolTip("The alarm has been seen; it clears at the next change")
        self.ack_button.clicked.connect(self.acknowledge)
        self.ack_button.hide()
        layout = QHBoxLayout(self)
        layout.setContentsMargins(4, 0, 4, 0)
        for widget, stretch in ((self.run, 3), (self.bench, 3), (self.pumps, 3),
                                (self.light, 2), (self.stage, 2), (self.alarm, 5)):
            layout.addWidget(widget, stretch)
        layout.addWidget(self.ack_button)
        self.run_state = "idle"
        self._activity: tuple[Any, ...] | None = None

    def install(self, bar: QStatusBar) -> None:
        """Fill the status bar (its temporary messages are not used: they go stale)."""
        bar.addWidget(self, 1)

    def show_snapshot(self, snapshot: BenchSnapshot) -> None:
        """Show the newest bench state; a change of activity clears acknowledged alarms."""
        off = snapshot.all_off()
        self.bench.setText(f"<b style='color:{GREEN if off else AMBER}'>"
                           f"{describe_bench(snapshot)}</b>")
        pumps = describe_pumps(snapshot)
        self.pumps.setText(f"<span style='color:{AMBER}'>{pumps}</span>"
                           if snapshot.pumps_running() else pumps)
        light = describe_light(snapshot)
        self.light.setText(f"<b style='color:{AMBER}'>{light}</b>" if snapshot.lights_on()
                           or snapshot.lights_armed() else light)
        if snapshot.stages:
            x, y, z = next(iter(snapshot.stages.values()))
            self.stage.setText(f"stage x {x:.0f}, y {y:.0f}, z {z:.1f} um")
        activity = snapshot.activity()
        if self._activity is not None and activity != self._activity:
            self._state_changed()
        self._activity = activity

    def show_run_state(self, state: str, reason: str = "") -> None:
        """The run's state ('waiting for the operator' while a prompt is open)."""
        if state != self.run_state:
            self._state_changed()
        self.run_state = state
        colour = RUN_COLOURS.get(state, GREY)
        self.run.setText(f"<b style='color:{colour}'>run {state}</b>"
                         + (f": {reason}" if reason else ""))

    def raise_alarm(self, message: str) -> None:
        """Latch an alarm until acknowledged."""
        self.latch.raise_alarm(message)
        self._show_alarm()

    def acknowledge(self) -> None:
        """The operator acknowledges every latched alarm."""
        self.latch.acknowledge()
        self._show_alarm()

    def _state_changed(self) -> None:
        if self.latch.state_changed():
            self._show_alarm()

    def _show_alarm(self) -> None:
        text = self.latch.text()
        colour = RED if self.latch.latched else GREY
        self.alarm.setText(f"<b style='color:{colour}'>{text}</b>" if text else "")
        self.ack_button.setVisible(self.latch.latched)
