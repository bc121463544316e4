"""Manual pump control: each pump's syringe, rate, volume, infuse/withdraw/stop and dispensed.

Every device call goes through DeviceCalls (off the Qt thread); errors come back as messages.
Every manual action goes through the engine's manual session (gui.core.ManualSession): checked
by the run's interlocks (the chip's pressure limit for the total flow, what the syringe holds or
has room for, its end of travel) and recorded in the manual-session record; a refusal comes back
as the core's message and nothing is sent. The status shown is the bench snapshot's (polled
between runs, followed from the run's pump events during one). While a run is in progress the
run owns the pumps: only Stop stays enabled.
"""

from __future__ import annotations

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

from gui.bench_state import BenchSnapshot, PumpState
from gui.bridge import DeviceCalls
from gui.core import ManualSession, Pump
from gui.widgets import ElidedLabel


def _spin(maximum: float, value: float, suffix: str) -> QDoubleSpinBox:
    spin = QDoubleSpinBox()
    spin.setRange(0.0, maximum)
    spin.setDecimals(2)
    spin.setValue(value)
    spin.setSuffix(f" {suffix}")
    return spin


class PumpBox(QGroupBox):
    """One pump."""

    def __init__(self, name: str, pump: Pump, calls: DeviceCalls, manual: ManualSession,
                 parent: QWidget | None = None) -> None:
        reagent = getattr(pump.syringe, "reagent", "")
        super().__init__(f"{name}" + (f" ({reagent})" if reagent else ""), parent)
        self.name, self.pump, self.calls, self.manual = name, pump, calls, manual
        self.running = False
        self.dispensed_ul = 0.0
        self._polling = False
        self.syringe_label = ElidedLabel()
        self.rate = _spin(100_000.0, 10.0, "uL/min")
        self.volume = _spin(max(pump.syringe.volume_ul, 1.0), 10.0, "uL")
        self.volume.setSpecialValueText("until stopped")
        self.status = ElidedLabel("not read yet")
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
        """Start pumping as set in the panel (the core refuses what its interlocks forbid)."""
        rate, volume = self.rate.value(), self.volume.value() or None
        flow = self.manual.infuse if direction == "infuse" else self.manual.withdraw
        self.calls.submit(f"{self.name} {direction}", lambda: flow(self.name, rate, volume),
                          lambda _: self.poll())

    def stop(self) -> None:
        """Stop this pump (never refused)."""
        self.calls.submit(f"{self.name} stop", lambda: self.manual.stop_pump(self.name),
                          lambda _: self.poll())

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

    def show_state(self, state: PumpState) -> None:
        """Show the pump as the bench snapshot has it."""
        self.running = state.running
        if state.dispensed_ul is not None:
            self.dispensed_ul = abs(state.dispensed_ul)
        note = ""
        if state.source == "run":
            how = f"{state.direction} at {state.rate_ul_min:g} uL/min" if state.running else ""
            note = f" (run{': ' + how if how else ''})"
        self.show_status(note)

    def set_run_active(self, active: bool) -> None:
        """The run owns the pump: only Stop stays available."""
        for widget in (self.infuse_button, self.withdraw_button, self.rate, self.volume):
            widget.setEnabled(not active)


class PumpsPanel(QWidget):
    """Every pump of the bench, shown from the bench snapshot."""

    def __init__(self, pumps: dict[str, Pump], calls: DeviceCalls, manual: ManualSession,
                 parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.boxes = {name: PumpBox(name, pump, calls, manual) for name, pump in pumps.items()}
        layout = QVBoxLayout(self)
        for box in self.boxes.values():
            layout.addWidget(box)
        if not self.boxes:
            layout.addWidget(QLabel("this bench has no pumps"))
        layout.addStretch(1)

    def show_snapshot(self, snapshot: BenchSnapshot) -> None:
        """Show each pump's state from the newest snapshot."""
        for name, state in snapshot.pumps.items():
            box = self.boxes.get(name)
            if box is not None:
                box.show_state(state)
        for name, message in snapshot.errors.items():
            box = self.boxes.get(name)
            if box is not None:
                box.status.setText(f"not answering: {message}")

    def set_run_active(self, active: bool) -> None:
        """Disable manual pumping during a run."""
        for box in self.boxes.values():
            box.set_run_active(active)
