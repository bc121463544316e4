"""Manual pump control: each pump's syringe, rate, volume, infuse/withdraw/stop and dispensed.

Every device call goes through DeviceCalls (off the Qt thread); errors come back as messages.
While a run is in progress the run owns the pumps: only Stop stays enabled, and the panel is
updated from the run's events instead of polling the pump.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from PySide6.QtCore import QTimer
from PySide6.QtWidgets import (
    QDoubleSpinBox,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from chipctl.devices.interfaces import SyringePump
from gui.bridge import DeviceCalls

POLL_MS = 1000


def _spin(maximum: float, value: float, suffix: str) -> QDoubleSpinBox:
    spin = QDoubleSpinBox()
    spin.setRange(0.0, maximum)
    spin.setDecimals(2)
    spin.setValue(value)
    spin.setSuffix(f" {suffix}")
    return spin


class PumpBox(QGroupBox):
    """One pump."""

    def __init__(self, name: str, pump: SyringePump, calls: DeviceCalls,
                 parent: QWidget | None = None) -> None:
        reagent = getattr(pump.syringe, "reagent", "")
        super().__init__(f"{name}" + (f" ({reagent})" if reagent else ""), parent)
        self.name, self.pump, self.calls = name, pump, calls
        self.running = False
        self.dispensed_ul = 0.0
        self._polling = False
        self.syringe_label = QLabel()
        self.rate = _spin(100_000.0, 10.0, "uL/min")
        self.volume = _spin(max(pump.syringe.volume_ul, 1.0), 10.0, "uL")
        self.volume.setSpecialValueText("until stopped")
        self.status = QLabel("stopped")
        self.infuse_button = QPushButton("Infuse")
        self.withdraw_button = QPushButton("Withdraw")
        self.stop_button = QPushButton("Stop")
        self.infuse_button.clicked.connect(lambda: self.start("infuse"))
        self.withdraw_button.clicked.connect(lambda: self.start("withdraw"))
        self.stop_button.clicked.connect(self.stop)
        form = QFormLayout()
        form.addRow("syringe", self.syringe_label)
        form.addRow("rate", self.rate)
        form.addRow("volume", self.volume)
        form.addRow("status", self.status)
        buttons = QHBoxLayout()
        for button in (self.infuse_button, self.withdraw_button, self.stop_button):
            buttons.addWidget(button)
        layout = QVBoxLayout(self)
        layout.addLayout(form)
        layout.addLayout(buttons)
        self.show_syringe()

    def show_syringe(self) -> None:
        """Syringe size and what it holds (no device I/O: the engine keeps the account)."""
        s = self.pump.syringe
        self.syringe_label.setText(f"{s.volume_ul:g} uL, {s.inner_diameter_mm:g} mm bore; "
                                   f"holds {s.contents_ul:.1f} uL")

    def start(self, direction: str) -> None:
        """Start pumping as set in the panel."""
        rate, volume = self.rate.value(), self.volume.value() or None
        action = self.pump.infuse if direction == "infuse" else self.pump.withdraw
        self.calls.submit(f"{self.name} {direction}", lambda: action(rate, volume),
                          lambda _: self.poll())

    def stop(self) -> None:
        """Stop this pump."""
        self.calls.submit(f"{self.name} stop", self.pump.stop, lambda _: self.poll())

    def poll(self) -> None:
        """Ask the pump whether it runs and what it dispensed (one call in flight at most)."""
        if self._polling:
            return
        self._polling = True
        pump = self.pump

        def read() -> tuple[bool, float]:
            try:
                return pump.is_running(), pump.displaced_ul()
            finally:
                self._polling = False

        self.calls.submit(f"{self.name} status", read, self._show_status)

    def _show_status(self, status: tuple[bool, float]) -> None:
        self.running, self.dispensed_ul = status
        self.show_status()

    def show_status(self, note: str = "") -> None:
        """Show running/stopped and the dispensed volume."""
        state = "running" if self.running else "stopped"
        self.status.setText(f"{state}; dispensed {self.dispensed_ul:.2f} uL{note}")
        self.show_syringe()

    def run_event(self, event: dict[str, Any]) -> None:
        """Follow the run's pump events (no device I/O)."""
        kind = event.get("event")
        if kind == "pump_start":
            self.running = True
            self.show_status(f" (run: {event.get('direction', 'infuse')} at "
                             f"{float(event.get('rate_ul_min', 0)):g} uL/min)")
        elif kind in ("pump_hold", "pump_done"):
            self.running = False
            self.dispensed_ul = abs(float(event.get("delivered_ul", 0.0)))
            self.show_status(" (run)")

    def set_run_active(self, active: bool) -> None:
        """The run owns the pump: only Stop stays available."""
        for widget in (self.infuse_button, self.withdraw_button, self.rate, self.volume):
            widget.setEnabled(not active)


class PumpsPanel(QWidget):
    """Every pump of the bench, polled once a second while no run is in progress."""

    def __init__(self, pumps: dict[str, SyringePump], calls: DeviceCalls,
                 run_active: Callable[[], bool], parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.boxes = {name: PumpBox(name, pump, calls) for name, pump in pumps.items()}
        self.run_active = run_active
        layout = QVBoxLayout(self)
        for box in self.boxes.values():
            layout.addWidget(box)
        if not self.boxes:
            layout.addWidget(QLabel("this bench has no pumps"))
        layout.addStretch(1)
        self.timer = QTimer(self)
        self.timer.setInterval(POLL_MS)
        self.timer.timeout.connect(self.poll)
        self.timer.start()

    def poll(self) -> None:
        """Poll every pump unless a run owns them."""
        if self.run_active():
            return
        for box in self.boxes.values():
            box.poll()

    def run_event(self, event: dict[str, Any]) -> None:
        """Route a run event to the pump it is about."""
        box = self.boxes.get(str(event.get("pump", "")))
        if box is not None:
            box.run_event(event)

    def set_run_active(self, active: bool) -> None:
        """Disable manual pumping during a run."""
        for box in self.boxes.values():
            box.set_run_active(active)
