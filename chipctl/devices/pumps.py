"""The engine's syringe pumps (interfaces.SyringePump) over the New Era and Harvard drivers.

Lab units throughout: uL and uL/min. Each adapter keeps a running account of what its syringe
holds (`syringe.contents_ul`), updated from the volume the pump reports as displaced while it
runs, when it stops and when it raises an alarm. Factories build them from a bench-file entry.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import threading
from collections.abc import Callable
from typing import Any, TypeVar

from chipctl.config.devices import HarvardSettings, NewEraSettings, PumpSettings
from chipctl.devices.interfaces import Syringe
from drivers import pump_units
from drivers.errors import DeviceAlarm, DeviceError, OutOfRange, PumpInterrupted, PumpReset
from drivers.exchange import OFF_WAIT_S, BlindOff
from drivers.harvard import HarvardPump
from drivers.newera import NewEraPump
from drivers.transport import SerialTransport

log = logging.getLogger(__name__)


def syringe_from_settings(settings: PumpSettings) -> Syringe:
    """The syringe of a pump's bench-file entry, holding its starting contents."""
    spec = settings.syringe
    return Syringe(inner_diameter_mm=spec.inner_diameter_mm, volume_ul=spec.volume_ul,
                   contents_ul=spec.contents_ul, reagent=settings.reagent)


F = TypeVar("F", bound=Callable[..., Any])


def _locked(method: F) -> F:
    """Run the method under the pump's lock (the engine and the GUI may call from threads)."""

    @functools.wraps(method)
    def wrapper(self: _AccountedPump, *args: Any, **kwargs: Any) -> Any:
        with self._lock:
            return method(self, *args, **kwargs)

    return wrapper  # type: ignore[return-value]


class _AccountedPump:
    """The running account of a syringe: contents at the start of a run minus what moved."""

    driver: NewEraPump | HarvardPump

    def __init__(self, name: str, syringe: Syringe) -> None:
        self.name = name
        self.syringe = syringe
        self._lock = threading.RLock()
        self._start_contents = syringe.contents_ul
        self._displaced = 0.0
        self._active = False

    def _begin(self) -> None:
        self._start_contents = self.syringe.contents_ul
        self._displaced = 0.0
        self._active = True

    def _account(self, displaced_ul: float) -> float:
        self._displaced = displaced_ul
        contents = self._start_contents - displaced_ul
        self.syringe.contents_ul = min(self.syringe.volume_ul, max(0.0, contents))
        return displaced_ul

    def _settle(self) -> None:
        raise NotImplementedError

    def settle_after_off(self) -> None:
        """Settle the account after a safe stop, unless another thread holds the pump (a
        request stuck on a dead link): it settles when it comes back."""
        if self._lock.acquire(timeout=OFF_WAIT_S):
            try:
                with contextlib.suppress(DeviceError):
                    self._settle()
            finally:
                self._lock.release()

    def blind_stop(self) -> BlindOff:
        """This pump's part of its port's safe stop, not under the pump's lock (the driver's
        blind_stop: sent blindly, never after a read, confirmed by the pump); the caller
        settles the account afterwards (settle_after_off)."""
        return self.driver.blind_stop()

    def off(self) -> bool:
        """The safe state's stop of this pump alone (blind_stop, retried), then the account
        settled. True once the pump reported itself stopped; never raises."""
        confirmed = self.driver.stop_blind()
        self.settle_after_off()
        return confirmed

    def _check_volume(self, rate_ul_min: float, volume_ul: float | None, infuse: bool) -> None:
        if rate_ul_min <= 0:
            raise OutOfRange(self.name, f"rate must be positive, got {rate_ul_min} uL/min")
        held = self.syringe.contents_ul
        room = held if infuse else self.syringe.volume_ul - held
        if volume_ul is not None and (volume_ul < 0 or volume_ul > room + 1e-6):
            verb = "infuse" if infuse else "withdraw"
            message = f"cannot {verb} {volume_ul} uL: the syringe allows {room:g} uL"
            raise OutOfRange(self.name, message)


class NewEraSyringePump(_AccountedPump):
    """A New Era NE-1000 pump as the engine's Pump."""

    driver: NewEraPump

    def __init__(self, name: str, driver: NewEraPump, syringe: Syringe, safe_mode_s: int = 0):
        super().__init__(name, syringe)
        self.driver = driver
        self.safe_mode_s = safe_mode_s
        self.version = ""
        self._continuous = False
        self._configured = False

    @_locked
    def connect(self) -> None:
        """Reach the pump (acknowledging power-up alarms) and set the syringe (the rig has
        opened the port)."""
        self.version = self.driver.connect(self.safe_mode_s)
        self.driver.stop()
        self._configure()

    def close(self) -> None:
        """Stop the heartbeat (the pump is left as it is; the rig closes the port)."""
        self.driver.close()

    def _configure(self) -> None:
        self.driver.set_diameter(self.syringe.inner_diameter_mm)
        self.driver.reset_seen = False
        self._configured = True

    @_locked
    def infuse(self, rate_ul_min: float, volume_ul: float | None = None) -> None:
        """Infuse at `rate_ul_min`; stop after `volume_ul` (None: until stop())."""
        self._check_volume(rate_ul_min, volume_ul, infuse=True)
        self._start("INF", rate_ul_min, volume_ul)

    @_locked
    def withdraw(self, rate_ul_min: float, volume_ul: float | None = None) -> None:
        """Withdraw at `rate_ul_min`; stop after `volume_ul` (None: until stop())."""
        self._check_volume(rate_ul_min, volume_ul, infuse=False)
        self._start("WDR", rate_ul_min, volume_ul)

    def _start(self, direction: str, rate_ul_min: float, volume_ul: float | None) -> None:
        try:  # before any traffic: refuse what cannot be written
            rate = pump_units.newera_rate(rate_ul_min)
            volume = pump_units.newera_volume(volume_ul or 0.0)
        except ValueError as exc:
            raise OutOfRange(self.name, str(exc)) from exc
        for attempt in range(3):
            try:
                self._run(direction, rate, volume)
                return
            except PumpReset:  # acknowledged; the command did not run: re-apply everything
                log.warning("%s: pump was reset; re-applying its settings", self.name)
                self._configured = False
                if attempt == 2:
                    raise

    def _run(self, direction: str, rate: tuple[float, str], volume: tuple[float, str]) -> None:
        driver = self.driver
        driver.stop()
        if not self._configured or driver.reset_seen:
            self._configure()
        driver.clear_dispensed()
        driver.set_rate(*rate)
        driver.set_volume(*volume)
        driver.set_direction(direction)
        self._begin()
        self._continuous = volume[0] == 0
        driver.run()

    @_locked
    def stop(self) -> None:
        """Stop the pump (a paused pump too) and settle the syringe account."""
        try:
            self.driver.stop()
        except DeviceAlarm:
            self._after_alarm()
            self.driver.stop()  # the alarm reply acknowledged it; now the stop itself
            raise
        self._settle()

    @_locked
    def is_running(self) -> bool:
        """Poll the pump; False once it stopped (the account is settled). Alarms raise; a pump
        paused, or stopped during a run without a volume, raises PumpInterrupted."""
        try:
            reply = self.driver.status()
        except DeviceAlarm:
            self._after_alarm()
            raise
        if not reply.running and self._active:
            self._settle()
            if reply.status == "P" or self._continuous:
                message = f"stopped before the run ended (status {reply.status}): front panel?"
                raise PumpInterrupted(self.name, message)
        return reply.running

    @_locked
    def displaced_ul(self) -> float:
        """Net volume pushed out since the last infuse/withdraw started (withdraw < 0)."""
        if not self._active or self.driver.reset_seen:
            return self._displaced  # settled, or the counters died with the power
        infused, withdrawn = self.driver.dispensed_ul()
        return self._account(infused - withdrawn)

    def _settle(self) -> None:
        if self._active:
            self.displaced_ul()  # the final reading of this run
            self._active = False

    def _after_alarm(self) -> None:
        try:
            self._settle()
        except Exception as exc:  # noqa: BLE001 - the alarm itself is what the caller gets
            log.warning("%s: no displaced volume after an alarm: %s", self.name, exc)
        self._active = False


def make_newera(name: str, settings: NewEraSettings,
                transport: SerialTransport) -> NewEraSyringePump:
    """A New Era pump from its bench-file entry (address, syringe, reagent, safe mode)."""
    driver = NewEraPump(transport, settings.address, name=name)
    return NewEraSyringePump(name, driver, syringe_from_settings(settings),
                             safe_mode_s=int(round(settings.safe_mode_s)))


class HarvardSyringePump(_AccountedPump):
    """A Harvard Pump 11 Elite / PHD ULTRA as the engine's Pump."""

    driver: HarvardPump

    def __init__(self, name: str, driver: HarvardPump, syringe: Syringe) -> None:
        super().__init__(name, syringe)
        self.driver = driver
        self.version = ""
        self._resyncs = 0

    @_locked
    def connect(self) -> None:
        """Resynchronise, polling on, NVRAM off, set the syringe (the rig opened the port)."""
        self.version = self.driver.connect()
        self.driver.stop()
        self._configure()

    def _configure(self) -> None:
        self.driver.set_diameter(self.syringe.inner_diameter_mm)
        self.driver.set_syringe_volume(self.syringe.volume_ul)
        self._resyncs = self.driver.resyncs

    def close(self) -> None:
        """Nothing to release (the pump is left as it is; the rig closes the port)."""

    @_locked
    def infuse(self, rate_ul_min: float, volume_ul: float | None = None) -> None:
        """Infuse at `rate_ul_min`; stop after `volume_ul` (None: until stop())."""
        self._check_volume(rate_ul_min, volume_ul, infuse=True)
        self._run(True, rate_ul_min, volume_ul)

    @_locked
    def withdraw(self, rate_ul_min: float, volume_ul: float | None = None) -> None:
        """Withdraw at `rate_ul_min`; stop after `volume_ul` (None: until stop())."""
        self._check_volume(rate_ul_min, volume_ul, infuse=False)
        self._run(False, rate_ul_min, volume_ul)

    def _run(self, infuse: bool, rate_ul_min: float, volume_ul: float | None) -> None:
        driver = self.driver
        driver.stop()
        if driver.resyncs != self._resyncs:
            self._configure()  # the link was lost and found again: never assume the settings
        driver.clear_volumes()
        value, units = pump_units.harvard_rate(rate_ul_min)
        if infuse:
            driver.set_infuse_rate(value, units)
        else:
            driver.set_withdraw_rate(value, units)
        if volume_ul:
            driver.set_target_volume(volume_ul)
        else:
            driver.clear_target()
        self._begin()
        driver.infuse() if infuse else driver.withdraw()

    @_locked
    def stop(self) -> None:
        """Stop the pump (clears a stall) and settle the syringe account."""
        self.driver.stop()
        self._settle()

    @_locked
    def is_running(self) -> bool:
        """Poll the prompt; False once stopped. Stall raises PumpStalled; a pump that stopped
        before its run ended raises PumpReset (link lost: power cycle) or PumpInterrupted."""
        try:
            reply = self.driver.poll()
        except DeviceAlarm:
            self._settle()
            raise
        if reply.running or not self._active:
            return reply.running
        lost = self.driver.resyncs != self._resyncs
        self._settle(keep_last=lost)
        if reply.prompt == ":" and lost:
            raise PumpReset(self.name, "the link was lost and the pump stopped: power cycle?")
        if reply.prompt == ":":
            raise PumpInterrupted(self.name, "stopped before the run ended: front panel?")
        return False

    @_locked
    def displaced_ul(self) -> float:
        """Net volume pushed out since the last infuse/withdraw started (withdraw < 0)."""
        if not self._active:
            return self._displaced
        return self._account(self.driver.infused_ul() - self.driver.withdrawn_ul())

    def _settle(self, keep_last: bool = False) -> None:
        if self._active and not keep_last:
            self.displaced_ul()
        self._active = False


def make_harvard(name: str, settings: HarvardSettings,
                 transport: SerialTransport) -> HarvardSyringePump:
    """A Harvard Ultra pump from its bench-file entry (address, syringe, reagent)."""
    driver = HarvardPump(transport, settings.address, name=name)
    return HarvardSyringePump(name, driver, syringe_from_settings(settings))
