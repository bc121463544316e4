"""The executor: maps each protocol step to device actions on the rig (the runner's
StepEngine).

It is the only part of a run that does I/O. It honours pause and abort through RunControl: a
pause stops the pump of the current step (booking what it delivered) and turns the light off;
resume pumps the rest, so a flow or monitor step always delivers its full volume in total.
Every frame it takes is counted by the run's FrameCounting (the streaming pipeline).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from typing import Any

from chipctl.devices.autofocus import autofocus
from chipctl.devices.illuminator import light_exposures
from chipctl.devices.interfaces import Frame
from chipctl.devices.rig import Rig
from chipctl.protocol import model as steps
from chipctl.run import interlocks
from chipctl.run.control import RunControl
from chipctl.run.counting import CountingFailed, FrameCounting
from chipctl.run.events import RunEvents, record
from chipctl.run.fluidics import PumpRun
from chipctl.run.runner import StepFailed

POLL_WALL_S = 0.05  # poll a running pump at most every 50 ms of wall time ...
POLL_MIN_S = 0.5  # ... and at most every 0.5 s of protocol time
SNAP_READOUT_S = 3.0  # wall seconds a frame may take beyond its exposure (readout, transfer)


class Executor:
    """Carries out steps on a rig, publishing counts and frames as events."""

    def __init__(self, rig: Rig, control: RunControl, events: RunEvents,
                 counting: FrameCounting, parameters: dict[str, str] | None = None) -> None:
        self.rig = rig
        self.control = control
        self.events = events
        self.counting = counting
        self.parameters = dict(parameters or {})
        self.step_index = 0
        self.monitor_series: list[tuple[float, int]] = []

    # -- the runner's StepEngine -------------------------------------------------------------
    def setup_run(self, protocol: steps.Protocol) -> None:
        """Start the run's counter."""
        self.counting.start()

    def label(self, step: steps.Step) -> str:
        """The step's label with run parameters filled in."""
        return self.render(step.label)

    def setup_step(self, index: int, step: steps.Step) -> None:
        """Remember which step the counts belong to."""
        self.step_index = index

    def execute_step(self, step: steps.Step) -> None:
        """Carry out one (non-repeat) step."""
        handler = {
            steps.Prime: self._prime, steps.Flow: self._flow, steps.Wait: self._wait,
            steps.Image: self._image, steps.Monitor: self._monitor, steps.Prompt: self._prompt,
            steps.Valve: self._valve,
        }.get(type(step))
        if handler is None:
            raise StepFailed(f"no executor for step kind {step.kind!r}")
        try:
            handler(step)  # type: ignore[operator]
        except CountingFailed as exc:
            raise StepFailed(str(exc)) from exc

    def teardown_step(self, step: steps.Step) -> None:
        """Every frame of the step counted and published before the step ends."""
        try:
            self.counting.join()
        except CountingFailed as exc:
            raise StepFailed(str(exc)) from exc

    def teardown_run(self) -> list[str]:
        """The bench safe (pumps stopped, lights off, all at once; recorded device by device),
        then the last frames counted."""
        failures = self.safe_stop("end of run")
        with contextlib.suppress(CountingFailed):
            self.counting.stop()
        return failures

    def halt(self) -> list[str]:
        """Emergency stop: every pump and light off now (with each port's broadcast stop)."""
        return self.safe_stop("emergency stop", broadcast=True)

    def safe_stop(self, reason: str, broadcast: bool = False) -> list[str]:
        """The rig's safe stop, recorded (`safe_stop`: which device confirmed); returns what
        could not be confirmed off."""
        stop = self.rig.safe_stop(reason, broadcast=broadcast)
        self._emit("safe_stop", **stop.as_record())
        return stop.failures

    def render(self, text: str) -> str:
        """`text` with {parameter} placeholders filled in from the run's parameters."""
        try:
            return text.format_map(_Missing(self.parameters))
        except (ValueError, IndexError):
            return text

    # -- stopping ---------------------------------------------------------------------------
    def _dark(self) -> None:
        for light in self.rig.illuminators.values():
            light.dark()

    # -- fluidics ---------------------------------------------------------------------------
    def _prime(self, step: steps.Prime) -> None:
        self.pump_volume(step.pump, step.rate_ul_min, step.volume_ul, "infuse")

    def _flow(self, step: steps.Flow) -> None:
        self.pump_volume(step.pump, step.rate_ul_min, step.planned_volume_ul, step.direction)

    def _pump_run(self, name: str, rate: float, volume: float, direction: str) -> PumpRun:
        return PumpRun(name, self.rig.pumps[name], rate, volume, direction, emit=self._emit,
                       chip=self.rig.bench.chip)

    def _hold(self, run: PumpRun) -> Callable[[], None]:
        def hold() -> None:
            run.hold()
            self._dark()
        return hold

    def _poll_s(self) -> float:
        return max(POLL_MIN_S, POLL_WALL_S * self.control.clock.time_scale)

    def pump_volume(self, name: str, rate: float, volume: float, direction: str) -> PumpRun:
        """Pump `volume` uL and return once it is all delivered (pauses included)."""
        run = self._pump_run(name, rate, volume, direction)
        hold, release = self._hold(run), run.start
        self.control.checkpoint()
        run.start()
        started = self._active_time()
        try:
            while True:
                self.control.checkpoint(hold, release)
                if not run.is_running():
                    break
                interlocks.check_in_time(name, volume, rate, self._active_time() - started)
                self.control.wait(self._poll_s(), hold, release)
        except BaseException:
            with contextlib.suppress(Exception):
                run.stop()
            raise
        self.control.checkpoint()  # an abort that stopped the pump is an abort, not a shortfall
        run.finish()
        return run

    def _wait(self, step: steps.Wait) -> None:
        self.control.wait(step.duration_s, self._dark)

    def _valve(self, step: steps.Valve) -> None:
        valve = self.rig.valves.get(step.valve)
        if valve is None:
            raise StepFailed(f"valve {step.valve!r} is not on this bench")
        valve.select(step.port)

    def _prompt(self, step: steps.Prompt) -> None:
        message = self.render(step.message)
        self._emit("prompt", message=message)
        self.control.wait_for_operator(lambda: self.events.prompt.emit(message))
        self._emit("prompt_confirmed", message=message)

    # -- imaging ----------------------------------------------------------------------------
    def _goto(self, x_um: float, y_um: float) -> None:
        stage = self.rig.first("stage")
        stage.move_to(x_um, y_um)
        stage.wait_idle()

    def _image(self, step: steps.Image) -> None:
        for zone in step.zones:
            cx, cy = self.rig.bench.chip.zones[zone].center_um
            for number, (dx, dy) in enumerate(step.field_offsets(), start=1):
                self.control.checkpoint(self._dark)
                self._goto(cx + dx, cy + dy)
                if step.autofocus:
                    self._autofocus(step.channels[0])
                for channel in step.channels:
                    self.control.checkpoint(self._dark)
                    self.snap_and_count(zone, number, channel, step.exposures)

    def _autofocus(self, channel: steps.ChannelSetting) -> None:
        """Focus on the field in the step's first channel (chipctl.devices.autofocus)."""
        light, camera = self.rig.first("illuminator"), self.rig.first("camera")
        camera.exposure_ms = channel.exposure_ms
        with light_exposures(light, channel.channel, channel.power_pct):
            result = autofocus(camera, self.rig.first("stage"))
        self._emit("autofocus", z_um=round(result.z_um, 3), channel=channel.channel)

    def snap_and_count(self, zone: str, field: int, channel: steps.ChannelSetting,
                       exposures: int = 1) -> int:
        """Light a channel for `exposures` frames (auto-shutter: devices.illuminator
        .light_exposures), and queue them to be counted
        as one field; returns its index with the run's counter (counting.count_of(index)
        waits for its count). `field` is the field's number in its zone, from 1, as people
        count (records, files, text)."""
        light = self.rig.first("illuminator")
        camera = self.rig.first("camera")
        camera.exposure_ms = channel.exposure_ms
        with light_exposures(light, channel.channel, channel.power_pct):
            frames: list[Frame] = [
                camera.snap(timeout_s=self._snap_timeout_s(channel.exposure_ms))
                for _ in range(exposures)]
        frame = frames[0]
        truth = frame.metadata.get("truth", {})
        row = {
            "t_s": round(self.control.clock.now(), 3), "step": self.step_index, "zone": zone,
            "field": field, "channel": channel.channel, "count": None,
            "exposure_ms": channel.exposure_ms, "power_pct": channel.power_pct,
            "x_um": frame.metadata.get("stage_x_um"), "y_um": frame.metadata.get("stage_y_um"),
            "true_count": truth.get("count") if isinstance(truth, dict) else None,
            "exposures": exposures,
        }
        for k, taken in enumerate(frames):
            taken.metadata.update({"zone": zone, "field": field,
                                   "channel": channel.channel, "exposure_index": k})
        return self.counting.submit(frames if exposures > 1 else frame, row)

    def _snap_timeout_s(self, exposure_ms: float) -> float:
        """Wall seconds to wait for a frame: the exposure (on the run clock) plus readout."""
        return SNAP_READOUT_S + 4 * self.control.clock.wall(exposure_ms / 1000)

    def _monitor(self, step: steps.Monitor) -> None:
        cx, cy = self.rig.bench.chip.zones[step.zone].center_um
        self._goto(cx, cy)
        if step.incubate_s > 0:
            self._incubating_monitor(step)
            return
        self._check_total_pressure(step)
        runs = [self._pump_run(f.pump, f.rate_ul_min, f.planned_volume_ul, f.direction)
                for f in step.flows]
        main, others = runs[0], runs[1:]

        def hold() -> None:
            for run in runs:
                run.hold()
            self._dark()

        def release() -> None:
            for run in runs:
                run.start()

        self.monitor_series = []
        self.control.checkpoint()
        release()
        try:
            plateau = self._monitor_loop(step, runs, hold, release)
        except BaseException:
            for run in runs:
                with contextlib.suppress(Exception):
                    run.stop()
            raise
        for run in others:
            run.stop()
            run.finish(expect_full=False)
        main.finish(expect_full=not plateau)
        self._record_count(step)  # the count at the end of the flow

    def _incubating_monitor(self, step: steps.Monitor) -> None:
        """Count every interval while nothing flows, for the step's incubation (or until the
        count plateaus)."""
        self.monitor_series = []
        end = self._active_time() + step.incubate_s
        next_count = self._active_time()
        while True:
            self.control.checkpoint(self._dark)
            now = self._active_time()
            if now >= end:
                break
            if now >= next_count:
                next_count = now + step.interval_s
                self._record_count(step)
                if step.until_plateau and plateaued(self.monitor_series, step):
                    self._emit("plateau", zone=step.zone, count=self.monitor_series[-1][1],
                               delivered_ul=0.0)
                    return
            wait = min(self._poll_s(), max(0.0, min(next_count, end) - self._active_time()))
            self.control.wait(max(wait, 1e-3), self._dark)
        self._record_count(step)  # the count at the end of the incubation

    def _check_total_pressure(self, step: steps.Monitor) -> None:
        pumps = " + ".join(f.pump for f in step.flows)
        interlocks.check_pressure(self.rig.bench.chip, pumps, step.total_rate_ul_min)

    def _monitor_loop(self, step: steps.Monitor, runs: list[PumpRun],
                      hold: Callable[[], None], release: Callable[[], None]) -> bool:
        """Count every interval while the main pump runs; True if stopped at a plateau."""
        next_count = self._active_time()
        while True:
            self.control.checkpoint(hold, release)
            if not runs[0].is_running():
                return False
            for run in runs[1:]:
                run.is_running()  # a pump alongside raises its alarms too
            if self._active_time() >= next_count:
                next_count = self._active_time() + step.interval_s
                self._record_count(step)
                if step.until_plateau and plateaued(self.monitor_series, step):
                    for run in runs:
                        run.stop()
                    self._emit("plateau", zone=step.zone, count=self.monitor_series[-1][1],
                               delivered_ul=round(runs[0].delivered_ul, 4))
                    return True
            wait = min(self._poll_s(), max(0.0, next_count - self._active_time()))
            self.control.wait(max(wait, 1e-3), hold, release)

    def _active_time(self) -> float:
        return self.control.clock.now() - self.control.paused_s

    def _record_count(self, step: steps.Monitor) -> None:
        count = self.counting.count_of(self.snap_and_count(step.zone, 1, step.channel))
        self.monitor_series.append((self._active_time(), count))

    def _emit(self, kind: str, **fields: Any) -> None:
        self.events.record.emit(record(kind, t_s=round(self.control.clock.now(), 3), **fields))


def plateaued(series: list[tuple[float, int]], step: steps.Monitor) -> bool:
    """True when the last counts rose by less than the step's tolerance."""
    if len(series) < step.plateau_points:
        return False
    counts = [count for _, count in series[-step.plateau_points:]]
    latest = counts[-1]
    if latest < step.plateau_min_count:
        return False
    return max(counts) - min(counts) <= step.plateau_tolerance_pct / 100 * latest


class _Missing(dict):
    """format_map helper: unknown {names} stay as written."""

    def __missing__(self, key: str) -> str:
        return "{" + key + "}"


__all__ = ["Executor", "plateaued"]
