"""The executor: maps each protocol step to device actions on the rig.

It is the only part of a run that does I/O. It honours pause and abort through RunControl:
a pause during a flow stops the pump, remembers what was delivered, and on resume pumps the
rest, so the step always delivers its full volume.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from chipctl.control import RunControl
from chipctl.devices import Frame
from chipctl.events import RunEvents, record
from chipctl.protocol.model import (
    ChannelSetting,
    Flow,
    Image,
    Monitor,
    Prime,
    Prompt,
    Step,
    Valve,
    Wait,
)
from chipctl.rig import Rig
from drivers.errors import DeviceError

log = logging.getLogger(__name__)
FLOW_GRACE = 1.5  # a flow may take this many times its planned duration (+30 s) before failing


class StepFailed(Exception):
    """A step could not be carried out (a device refused, a pump never finished)."""


@dataclass
class FlowProgress:
    """Volume a flow step has delivered so far, across pauses."""

    target_ul: float
    delivered_ul: float = 0.0
    segments: list[float] = field(default_factory=list)

    @property
    def remaining_ul(self) -> float:
        """What is left to pump."""
        return max(0.0, self.target_ul - self.delivered_ul)


class Executor:
    """Carries out steps on a rig, publishing counts and frames as events."""

    def __init__(
        self,
        rig: Rig,
        control: RunControl,
        events: RunEvents,
        counter: Callable[[Any], Any] | None = None,
    ) -> None:
        self.rig = rig
        self.control = control
        self.events = events
        self.counter = counter or _default_counter()
        self.step_index = 0
        self.monitor_series: list[tuple[float, int]] = []

    def execute(self, step: Step) -> None:
        """Carry out one (non-repeat) step."""
        handler = {
            Prime: self._prime,
            Flow: self._flow,
            Wait: self._wait,
            Image: self._image,
            Monitor: self._monitor,
            Prompt: self._prompt,
            Valve: self._valve,
        }.get(type(step))
        if handler is None:
            raise StepFailed(f"no executor for step kind {step.kind!r}")
        handler(step)  # type: ignore[operator]

    # -- fluidics ---------------------------------------------------------------------------
    def _prime(self, step: Prime) -> None:
        self._pump_volume(step.pump, step.rate_ul_min, step.volume_ul, "infuse")

    def _flow(self, step: Flow) -> None:
        self._pump_volume(step.pump, step.rate_ul_min, step.planned_volume_ul, step.direction)

    def _pump_volume(self, name: str, rate: float, volume: float, direction: str) -> FlowProgress:
        pump = self.rig.pumps[name]
        progress = FlowProgress(volume)
        sign = 1.0 if direction == "infuse" else -1.0

        def start() -> None:
            self._emit("pump_start", pump=name, direction=direction, rate_ul_min=rate,
                       volume_ul=round(progress.remaining_ul, 4))
            if direction == "infuse":
                pump.infuse(rate, progress.remaining_ul)
            else:
                pump.withdraw(rate, progress.remaining_ul)

        def hold() -> None:
            pump.stop()
            moved = abs(pump.displaced_ul())
            progress.delivered_ul += moved
            progress.segments.append(moved)
            self._emit("pump_hold", pump=name, delivered_ul=round(progress.delivered_ul, 4))

        start()
        deadline = self.control.clock.now() + FLOW_GRACE * 60 * volume / rate + 30
        while True:
            self.control.checkpoint(hold, start)
            if not pump.is_running():
                break
            if self.control.clock.now() - self.control.paused_s > deadline:
                pump.stop()
                raise StepFailed(f"{name} did not finish pumping {volume:g} uL in time")
            self.control.wait(min(1.0, 0.05 * self.control.clock.time_scale), hold, start)
        moved = abs(pump.displaced_ul())
        progress.delivered_ul += moved
        progress.segments.append(moved)
        self._emit("pump_done", pump=name, delivered_ul=round(sign * progress.delivered_ul, 4),
                   target_ul=volume, segments=[round(s, 4) for s in progress.segments])
        return progress

    def _wait(self, step: Wait) -> None:
        self.control.wait(step.duration_s)

    def _valve(self, step: Valve) -> None:
        device = self.rig.devices.get(step.valve)
        if device is None or not hasattr(device, "select"):
            raise StepFailed(f"valve {step.valve!r} is not on this bench")
        device.select(step.port)

    def _prompt(self, step: Prompt) -> None:
        self._emit("prompt", message=step.message)
        self.events.prompt.emit(step.message)
        self.control.wait_for_operator()
        self._emit("prompt_confirmed", message=step.message)

    # -- imaging ----------------------------------------------------------------------------
    def _fields(self, zone: str, count: int, spacing: float) -> list[tuple[float, float]]:
        spec = self.rig.bench.chip.zones[zone]
        cx, cy = spec.center_um
        side = max(1, int(round(count**0.5 + 0.499)))
        offsets = [((i % side) - (side - 1) / 2, (i // side) - (side - 1) / 2) for i in range(count)]
        return [(cx + dx * spacing, cy + dy * spacing) for dx, dy in offsets]

    def _image(self, step: Image) -> None:
        stage = self.rig.first("stage")
        for zone in step.zones:
            for index, (x, y) in enumerate(self._fields(zone, step.fields_per_zone,
                                                        step.field_spacing_um)):
                self.control.checkpoint()
                stage.move_to(x, y)
                stage.wait_idle()
                if step.autofocus:
                    self._autofocus()
                for channel in step.channels:
                    self.control.checkpoint()
                    self.snap_and_count(zone, index, channel)

    def _autofocus(self) -> None:
        from chipctl.microscope import autofocus

        z = autofocus(self.rig.first("stage"), self.rig.first("camera"))
        self._emit("autofocus", z_um=z)

    def snap_and_count(self, zone: str, field_index: int, channel: ChannelSetting) -> int:
        """Light a channel, take a frame, dark again, count it and publish the count."""
        light = self.rig.first("illuminator")
        camera = self.rig.first("camera")
        camera.exposure_ms = channel.exposure_ms
        light.light(channel.channel, channel.power_pct)
        try:
            frame: Frame = camera.snap(timeout_s=max(5.0, 4 * channel.exposure_ms / 1000))
        finally:
            light.dark()
        result = self.counter(frame.image)
        truth = frame.metadata.get("truth", {})
        row = {
            "t_s": round(self.control.clock.now(), 3), "step": self.step_index, "zone": zone,
            "field": field_index, "channel": channel.channel, "count": int(result.count),
            "exposure_ms": channel.exposure_ms, "power_pct": channel.power_pct,
            "x_um": frame.metadata.get("stage_x_um"), "y_um": frame.metadata.get("stage_y_um"),
            "true_count": truth.get("count"),
        }
        frame.metadata.update({"zone": zone, "field": field_index, "channel": channel.channel})
        self.events.frame.emit(frame)
        self.events.counted.emit(row)
        return int(result.count)

    def _monitor(self, step: Monitor) -> None:
        pump = self.rig.pumps[step.flow.pump]
        if step.flow.direction == "infuse":
            pump.infuse(step.flow.rate_ul_min, step.flow.planned_volume_ul)
        else:
            pump.withdraw(step.flow.rate_ul_min, step.flow.planned_volume_ul)
        self._emit("pump_start", pump=step.flow.pump, rate_ul_min=step.flow.rate_ul_min,
                   volume_ul=step.flow.planned_volume_ul, direction=step.flow.direction)
        stage = self.rig.first("stage")
        cx, cy = self.rig.bench.chip.zones[step.zone].center_um
        stage.move_to(cx, cy)
        stage.wait_idle()
        try:
            while pump.is_running():
                self.snap_and_count(step.zone, 0, step.channel)
                self.control.wait(step.interval_s, hold=pump.stop)
        finally:
            pump.stop()
        self._emit("pump_done", pump=step.flow.pump, delivered_ul=round(pump.displaced_ul(), 4))

    def _emit(self, kind: str, **fields: Any) -> None:
        self.events.record.emit(record(kind, t_s=round(self.control.clock.now(), 3), **fields))


def _default_counter() -> Callable[[Any], Any]:
    from chipctl.vision import count_frame

    return count_frame


__all__ = ["DeviceError", "Executor", "FlowProgress", "StepFailed"]
