"""Manual pump flows: checked like a protocol step, watched until they end, an interlock
stopping the pump blindly as the safe state does."""

from __future__ import annotations

import contextlib
import math
import threading
from typing import Any

from chipctl.devices.safestop import off_of
from chipctl.manual.base import EMPTY_UL, ManualBase, ManualRefused
from chipctl.run import interlocks
from chipctl.run.fluidics import PumpRun
from drivers.errors import DeviceError


class ManualFlows(ManualBase):
    """Infuse, withdraw and stop by hand; a watcher books each flow when it ends."""

    # -- pumps ------------------------------------------------------------------------------
    def infuse(self, pump: str, rate_ul_min: float, volume_ul: float | None = None) -> None:
        """Infuse `volume_ul` (None: all the syringe holds) at `rate_ul_min`; returns once the
        pump runs (it stops by itself; stop_pump stops it early)."""
        self._flow(pump, "infuse", rate_ul_min, volume_ul)

    def withdraw(self, pump: str, rate_ul_min: float, volume_ul: float | None = None) -> None:
        """Withdraw `volume_ul` (None: all the syringe has room for) at `rate_ul_min`."""
        self._flow(pump, "withdraw", rate_ul_min, volume_ul)

    def check_flow(self, pump: str, direction: str, rate_ul_min: float,
                   volume_ul: float | None) -> float:
        """What infuse/withdraw would check, without recording: ManualRefused if the flow is
        not allowed, else the volume it would pump (uL)."""
        device = self.rig.pumps.get(pump)
        if device is None:
            raise ManualRefused(f"no pump {pump!r} on this bench")
        with self._lock:
            return self._flow_volume(pump, device, direction, rate_ul_min, volume_ul)

    def _flow_volume(self, name: str, device: Any, direction: str, rate: float,
                     volume: float | None) -> float:
        if not (math.isfinite(rate) and rate > 0):
            raise ManualRefused(f"the flow rate must be above 0 uL/min, got {rate:g}")
        if name in self._flows:
            raise ManualRefused(f"{name} is already pumping; stop it first")
        syringe = device.syringe
        room = syringe.contents_ul if direction == "infuse" else (
            syringe.volume_ul - syringe.contents_ul)
        if room < EMPTY_UL:
            state = "empty" if direction == "infuse" else "full"
            raise ManualRefused(f"end of travel: the syringe on {name} is {state}")
        if volume is not None and not (math.isfinite(volume) and volume > 0):
            raise ManualRefused(f"the volume must be above 0 uL, got {volume:g}")
        if volume is not None and volume > room + 1e-6:
            held = "holds" if direction == "infuse" else "has room for"
            raise ManualRefused(f"{volume:g} uL is more than the syringe on {name} {held} "
                                f"({room:.1f} uL)")
        others = {n: run.rate_ul_min for n, run in self._flows.items()}
        try:
            interlocks.check_pressure(self.rig.bench.chip, " + ".join([*others, name]),
                                      rate + sum(others.values()))
        except interlocks.Interlock as exc:
            raise ManualRefused(str(exc)) from None
        return room if volume is None else volume

    def _flow(self, name: str, direction: str, rate: float, volume: float | None) -> None:
        action = {"device": name, "action": direction, "rate_ul_min": rate, "volume_ul": volume}
        with self._lock:
            self._check_free(action)
            device = self._device("pump", name, action)
            try:
                target = self._flow_volume(name, device, direction, rate, volume)
            except ManualRefused as exc:
                raise self._refuse(action, str(exc)) from None
            flow = PumpRun(name, device, rate, target, direction, emit=self._emit,
                           chip=self.rig.bench.chip)
            self._do(action, flow.start)
            self._flows[name], self._flow_started[name] = flow, self.clock.now()
            self._watch()

    def stop_pump(self, pump: str) -> None:
        """Stop a pump now (never refused); a manual flow on it is booked as it stands."""
        action = {"device": pump, "action": "stop"}
        device = self._device("pump", pump, action)
        with self._lock:
            flow = self._flows.get(pump)
            self._do(action, flow.stop if flow is not None else device.stop)
            if flow is not None:
                self._flows.pop(pump, None)
                flow.finish(expect_full=False)

    def flowing(self) -> dict[str, float]:
        """The pumps running a manual flow, with their rates (uL/min)."""
        with self._lock:
            return {name: flow.rate_ul_min for name, flow in self._flows.items()}

    # -- watching the flows -----------------------------------------------------------------
    def _watch(self) -> None:
        if self._watcher is None or not self._watcher.is_alive():
            self._stop_watching.clear()
            self._watcher = threading.Thread(target=self._watch_loop, daemon=True,
                                             name="chipctl-manual-flows")
            self._watcher.start()

    def _watch_loop(self) -> None:
        while not self._stop_watching.wait(self.poll_wall_s):
            with self._lock:
                for name in list(self._flows):
                    self.poll(name)
                if not self._flows:
                    self._watcher = None
                    return

    def poll(self, pump: str) -> None:
        """Look at one manual flow: booked when it ends, stopped and recorded as an interlock
        when an alarm, the end of travel, a lost pump or a stall ends it (the watcher calls
        this every `poll_wall_s`)."""
        with self._lock:
            flow = self._flows.get(pump)
            if flow is None:
                return
            try:
                if flow.is_running():
                    interlocks.check_in_time(pump, flow.target_ul, flow.rate_ul_min,
                                             self.clock.now() - self._flow_started[pump])
                    return
                self._flows.pop(pump)
                flow.finish()
            except (interlocks.Interlock, DeviceError) as exc:
                self._interlock(pump, flow, exc)

    def _interlock(self, pump: str, flow: PumpRun, exc: Exception) -> None:
        """Stop the pump as the safe state does (its blind off), book what it moved, and
        record the interlock with whether the pump confirmed the stop."""
        confirmed = True
        if self._flows.pop(pump, None) is not None:  # not finished yet: stop it and book it
            confirmed = False
            with contextlib.suppress(DeviceError):
                confirmed = off_of(flow.pump, "pump")()
            with contextlib.suppress(DeviceError):
                flow.stop()
            with contextlib.suppress(DeviceError, interlocks.Interlock):
                flow.finish(expect_full=False)
        self._emit("interlock", device=pump, reason=interlocks.reason_for(exc),
                   stop_confirmed=confirmed)
