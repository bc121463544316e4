"""Manual microscope control: illuminator channels and power, stage jog / go-to / focus /
autofocus, camera exposure, snap and live. Device calls run off the Qt thread (DeviceCalls);
every manual action goes through the engine's manual session (gui.core.ManualSession), which
checks it (travel limits, channels, exposure range) and records it before anything is sent.
What the panels show (light state, stage position, the camera's exposure) is the bench
snapshot's, so it is the devices' actual state whoever changed it. While a run is in progress
the run owns the microscope and these controls are disabled.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from PySide6.QtWidgets import (
    QComboBox,
    QDoubleSpinBox,
    QFormLayout,
    QGridLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QWidget,
)

from gui.bench_state import BenchSnapshot
from gui.bridge import DeviceCalls
from gui.core import Camera, ExposureLight, Illuminator, ManualRefused, ManualSession, Stage
from gui.frames import FrameSlot, LiveCamera
from gui.widgets import ElidedLabel

JOG_STEPS_UM = ("1", "10", "100", "1000")


def _spin(low: float, high: float, value: float, suffix: str, decimals: int = 1) -> QDoubleSpinBox:
    spin = QDoubleSpinBox()
    spin.setRange(low, high)
    spin.setDecimals(decimals)
    spin.setValue(value)
    spin.setSuffix(f" {suffix}")
    return spin


class IlluminatorBox(QGroupBox):
    """One LED illuminator: a channel, its power, on and off."""

    def __init__(self, name: str, light: Illuminator, calls: DeviceCalls,
                 manual: ManualSession) -> None:
        super().__init__(f"{name} (illuminator)")
        self.name, self.light, self.calls, self.manual = name, light, calls, manual
        self.channel = QComboBox()
        self.channel.addItems(list(light.channels))
        self.power = _spin(0, 100, 50, "%", 0)
        self.on_button = QPushButton("On")
        self.off_button = QPushButton("Off")
        self.status = ElidedLabel("not read yet")
        self.on_button.clicked.connect(self.turn_on)
        self.off_button.clicked.connect(self.turn_off)
        form = QFormLayout(self)
        form.addRow("channel", self.channel)
        form.addRow("power", self.power)
        row = QHBoxLayout()
        row.addWidget(self.on_button)
        row.addWidget(self.off_button)
        form.addRow(row)
        form.addRow("state", self.status)

    def turn_on(self) -> None:
        """Light the chosen channel at the chosen power (every other channel off)."""
        channel, power = self.channel.currentText(), self.power.value()
        self.calls.submit(f"{self.name} {channel} on",
                          lambda: self.manual.light(self.name, channel, power),
                          lambda _: self.refresh())

    def turn_off(self) -> None:
        """Every channel off."""
        self.calls.submit(f"{self.name} off", lambda: self.manual.dark(self.name),
                          lambda _: self.refresh())

    def refresh(self) -> None:
        """Read which channels are lit."""
        self.calls.submit(f"{self.name} state", self.light.state, self._show_state)

    def show_snapshot(self, snapshot: BenchSnapshot) -> None:
        """The light as last read."""
        if self.name in snapshot.errors:
            self.status.setText(f"not answering: {snapshot.errors[self.name]}")
        elif self.name in snapshot.lights:
            self._show_state(snapshot.lights[self.name], snapshot.armed.get(self.name, {}))

    def _show_state(self, state: dict[str, tuple[bool, float]],
                    armed: dict[str, float] | None = None) -> None:
        lit = [f"{channel} on at {power:g} %" for channel, (on, power) in state.items() if on]
        lit += [f"{channel} at {power:g} % while the camera exposes"
                for channel, power in (armed or {}).items()]
        self.status.setText(", ".join(lit) or "off")

    def set_run_active(self, active: bool) -> None:
        """The run owns the light."""
        self.on_button.setEnabled(not active)


class StageBox(QGroupBox):
    """XY stage and focus: jog, go to a position or a capture zone, focus and autofocus."""

    def __init__(self, name: str, stage: Stage, calls: DeviceCalls, zones: dict[str, Any],
                 manual: ManualSession) -> None:
        super().__init__(f"{name} (stage)")
        self.name, self.stage, self.calls, self.manual = name, stage, calls, manual
        self.zones = zones
        self.position = ElidedLabel("x ?, y ?, z ?")
        self.jog = QComboBox()
        self.jog.addItems(JOG_STEPS_UM)
        self.jog.setCurrentText("100")
        # not self.x / self.y: those would shadow QWidget.x() and QWidget.y()
        self.x_spin, self.y_spin = _spin(-1e6, 1e6, 0, "um"), _spin(-1e6, 1e6, 0, "um")
        self.z = _spin(-1e5, 1e5, 0, "um", 2)
        self.zone = QComboBox()
        self.zone.addItems(list(zones))
        self.controls: list[QWidget] = []
        grid = QGridLayout(self)  # three columns: fits a 380 px dock
        grid.addWidget(self.position, 0, 0, 1, 3)
        grid.addWidget(QLabel("jog (um)"), 1, 0)
        grid.addWidget(self.jog, 1, 1, 1, 2)
        for text, dx, dy, row, col in (("↑", 0, -1, 2, 1), ("←", -1, 0, 3, 0),
                                       ("↓", 0, 1, 3, 1), ("→", 1, 0, 3, 2)):
            grid.addWidget(self._button(text, self._jog_action(dx, dy)), row, col)
        grid.addWidget(self.x_spin, 4, 0)
        grid.addWidget(self.y_spin, 4, 1)
        grid.addWidget(self._button("Go to", self.go_to), 4, 2)
        grid.addWidget(self.zone, 5, 0, 1, 2)
        grid.addWidget(self._button("Go to zone", self.go_to_zone), 5, 2)
        grid.addWidget(self.z, 6, 0)
        grid.addWidget(self._button("Focus to", self.focus_to), 6, 1)
        grid.addWidget(self._button("Autofocus", self.autofocus), 6, 2)
        grid.addWidget(self._button("Z +", lambda: self.focus_by(1)), 7, 0)
        grid.addWidget(self._button("Z −", lambda: self.focus_by(-1)), 7, 1)
        halt = QPushButton("Halt")
        halt.setToolTip("stop the stage and the focus where they are")
        halt.clicked.connect(lambda: self._move("halt", lambda: self.manual.halt_stage(self.name)))
        grid.addWidget(halt, 7, 2)

    def _button(self, text: str, action: Callable[[], None]) -> QPushButton:
        button = QPushButton(text)
        button.clicked.connect(action)
        self.controls.append(button)
        return button

    def _move(self, label: str, action: Callable[[], Any]) -> None:
        """Do a manual stage action off the Qt thread, then show where the stage is."""
        def move_and_read() -> tuple[float, float, float]:
            action()
            self.stage.wait_idle()
            x, y = self.stage.position()
            return x, y, self.stage.focus()

        self.calls.submit(f"{self.name} {label}", move_and_read, self._show_position)

    def _show_position(self, xyz: tuple[float, float, float]) -> None:
        x, y, z = xyz
        self.position.setText(f"x {x:.1f} um, y {y:.1f} um, z {z:.2f} um")

    def show_snapshot(self, snapshot: BenchSnapshot) -> None:
        """The position as last read."""
        if self.name in snapshot.stages:
            self._show_position(snapshot.stages[self.name])

    def refresh(self) -> None:
        """Read the position."""
        self._move("position", lambda: None)

    def _jog_action(self, dx: int, dy: int) -> Callable[[], None]:
        # a lambda with dx=dx defaults would receive the clicked(checked) flag as dx
        return lambda: self.jog_by(dx, dy)

    def jog_by(self, dx: int, dy: int) -> None:
        """Move one jog step in x or y (refused beyond the stage's travel)."""
        step = float(self.jog.currentText())
        self._move("jog", lambda: self.manual.move_by(self.name, dx * step, dy * step))

    def go_to(self) -> None:
        """Move to the x, y typed in."""
        x, y = self.x_spin.value(), self.y_spin.value()
        self._move("go to", lambda: self.manual.move_to(self.name, x, y))

    def go_to_zone(self) -> None:
        """Move to the centre of the chosen capture zone."""
        zone = self.zones.get(self.zone.currentText())
        if zone is not None:
            x, y = zone.center_um
            self._move(f"go to zone {self.zone.currentText()}",
                       lambda: self.manual.move_to(self.name, x, y))

    def focus_to(self) -> None:
        """Move the focus to the z typed in."""
        z = self.z.value()
        self._move("focus", lambda: self.manual.focus_to(self.name, z))

    def focus_by(self, sign: int) -> None:
        """Move the focus by a tenth of the jog step."""
        step = sign * float(self.jog.currentText()) / 10
        self._move("focus by", lambda: self.manual.focus_to(self.name,
                                                            self.stage.focus() + step))

    def autofocus(self) -> None:
        """Find the best focus with the camera (on whatever light is on)."""
        self._move("autofocus", self.manual.autofocus)

    def set_run_active(self, active: bool) -> None:
        """The run owns the stage."""
        for control in self.controls:
            control.setEnabled(not active)


class CameraBox(QGroupBox):
    """The camera: exposure (showing the camera's actual exposure), the light for its
    exposures (lit only while the camera exposes, as a run's image step), a snap, or live."""

    def __init__(self, name: str, camera: Camera, calls: DeviceCalls, slot: FrameSlot,
                 on_error: Callable[[str], None], manual: ManualSession,
                 lights: dict[str, Illuminator] | None = None) -> None:
        super().__init__(f"{name} (camera)")
        self.name, self.camera, self.calls, self.slot = name, camera, calls, slot
        self.manual = manual
        self.live = LiveCamera(name, self._live_frame, slot, on_error)
        self.exposure = _spin(0.1, 10_000, float(camera.exposure_ms), "ms")
        self.exposure.setToolTip("the camera's exposure now; type a new one and press Set")
        self.exposure.valueChanged.connect(self._edited)
        self._editing = False
        self.light = QComboBox()
        self.light.setToolTip("lit for each exposure only (the LED dark between frames), as a "
                              "run lights its images; 'as it is' leaves the light to its panel")
        self.light_choices: list[tuple[str, str] | None] = [
            (lamp, channel) for lamp, device in (lights or {}).items()
            for channel in device.channels] + [None]
        self.light.addItems([f"{c[1]} ({c[0]})" if c else "as it is"
                             for c in self.light_choices])
        self.light_power = _spin(0, 100, 50, "%", 0)
        self.exposure_button = QPushButton("Set")
        self.snap_button = QPushButton("Snap")
        self.live_button = QPushButton("Live")
        self.live_button.setCheckable(True)
        self.exposure_button.clicked.connect(self.set_exposure)
        self.snap_button.clicked.connect(self.snap)
        self.live_button.toggled.connect(self.set_live)
        self.actual = ElidedLabel(f"camera exposure {camera.exposure_ms:g} ms")
        self.status = ElidedLabel(f"pixel {camera.pixel_size_um:g} um")
        form = QFormLayout(self)
        row = QHBoxLayout()
        row.addWidget(self.exposure)
        row.addWidget(self.exposure_button)
        form.addRow("exposure", row)
        form.addRow(self.actual)
        lit = QHBoxLayout()
        lit.addWidget(self.light, 1)
        lit.addWidget(self.light_power)
        form.addRow("light", lit)
        buttons = QHBoxLayout()
        buttons.addWidget(self.snap_button)
        buttons.addWidget(self.live_button)
        form.addRow(buttons)
        form.addRow(self.status)
        self._showing = float(camera.exposure_ms)
        self._live_on = False  # live view on, as the manual session has it

    def exposure_light(self) -> ExposureLight | None:
        """The light chosen for the exposures (None: the light as it is)."""
        index = self.light.currentIndex()
        chosen = self.light_choices[index] if 0 <= index < len(self.light_choices) else None
        if chosen is None:
            return None
        return ExposureLight(chosen[0], chosen[1], self.light_power.value())

    def _live_frame(self) -> Any:
        return self.manual.live_frame(self.name, max(5.0, 4 * self.camera.exposure_ms / 1000))

    def _edited(self, value: float) -> None:
        self._editing = abs(value - self._showing) > 1e-9

    def show_exposure(self, ms: float) -> None:
        """Show the camera's actual exposure; the box follows it unless the operator is typing
        a new value (then the label says what the camera uses)."""
        self.actual.setText(f"camera exposure {ms:g} ms"
                            + (" (typed value not set yet)" if self._editing else ""))
        if not self._editing and abs(self.exposure.value() - ms) > 1e-9:
            self._showing = ms
            self.exposure.blockSignals(True)
            self.exposure.setValue(ms)
            self.exposure.blockSignals(False)

    def show_snapshot(self, snapshot: BenchSnapshot) -> None:
        """The camera's exposure as last read."""
        if self.name in snapshot.exposure_ms:
            self.show_exposure(snapshot.exposure_ms[self.name])

    def set_exposure(self) -> None:
        """Apply the exposure typed in."""
        ms = self.exposure.value()

        def applied(_: Any) -> None:
            self._editing = False
            self.show_exposure(float(self.camera.exposure_ms))

        self.calls.submit(f"{self.name} exposure",
                          lambda: self.manual.set_exposure(self.name, ms), applied)

    def snap(self) -> None:
        """Take one frame into the live view."""
        light = self.exposure_light()
        self.calls.submit(f"{self.name} snap",
                          lambda: self.slot.put(self.manual.snap(self.name, light=light)))

    def set_live(self, on: bool) -> None:
        """Stream frames into the live view (each exposure lit by the light chosen), or stop:
        live view is recorded on and off, and its light disarmed off the Qt thread."""
        if on == self._live_on:
            return
        if on:
            try:
                self.manual.live(self.name, True, self.exposure_light())
            except ManualRefused as exc:
                self.live_button.setChecked(False)
                self.calls.report(f"{self.name} live", f"refused: {exc}")
                return
            self.live.start()
        else:
            self.live.stop()
            self.calls.submit(f"{self.name} live off", lambda: self.manual.live(self.name, False))
        self._live_on = on
        self.light.setEnabled(not on)
        self.light_power.setEnabled(not on)
        self.status.setText("live" if on else "stopped")

    def stop_live(self) -> None:
        """Stop streaming and release the Live button."""
        self.live_button.setChecked(False)
        self.set_live(False)

    def set_run_active(self, active: bool) -> None:
        """The run owns the camera: no live, no snap, no exposure change."""
        if active:
            self.stop_live()
        for widget in (self.exposure_button, self.snap_button, self.live_button):
            widget.setEnabled(not active)
