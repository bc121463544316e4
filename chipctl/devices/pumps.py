"""The engine's syringe pumps (devices.interfaces.Pump) over the New Era and Harvard drivers.

Lab units throughout: uL and uL/min. Each adapter keeps a running account of what its syringe
holds (`syringe.contents_ul`), updated from the volume the pump reports as displaced while it
runs, when it stops and when it raises an alarm. Factories build them from a bench-file entry.
"""

from __future__ import annotations

import functools
import logging
import threading
import weakref
from collections.abc import Callable
from typing import Any, TypeVar

from chipctl.config.units import to_unit
from chipctl.devices.interfaces import Syringe
from drivers.errors import DeviceAlarm, OutOfRange, PumpInterrupted, PumpReset
from drivers.harvard import HarvardPump
from drivers.newera import NewEraPump, format_number
from drivers.newera import emergency_stop_all as _newera_stop_all
from drivers.transport import SerialTransport

log = logging.getLogger(__name__)
_users: weakref.WeakKeyDictionary[SerialTransport, int] = weakref.WeakKeyDictionary()
_users_lock = threading.Lock()
# The New Era adapters on each port, so a broadcast stop can settle their accounts.
_on_port: weakref.WeakKeyDictionary[SerialTransport, weakref.WeakSet[NewEraSyringePump]] = (
    weakref.WeakKeyDictionary()
)
NE_RATE_UNITS = (("UM", 1.0), ("UH", 1.0 / 60.0), ("MM", 1000.0), ("MH", 1000.0 / 60.0))


def _acquire(transport: SerialTransport) -> None:
    with _users_lock:
        transport.open()
        _users[transport] = _users.get(transport, 0) + 1


def _release(transport: SerialTransport) -> None:
    with _users_lock:
        left = _users.get(transport, 1) - 1
        _users[transport] = left
        if left <= 0:
            transport.close()


def newera_rate(rate_ul_min: float) -> tuple[float, str]:
    """The NE units that carry `rate_ul_min` with the least rounding: (number, units)."""
    best: tuple[float, float, str] | None = None
    for units, factor in NE_RATE_UNITS:
        value = rate_ul_min / factor
        try:
            number = float(format_number(value))
        except ValueError:
            continue
        error = abs(number - value) / value
        if number > 0 and (best is None or error < best[0] - 1e-12):
            best = (error, number, units)
    if best is None:
        raise ValueError(f"rate {rate_ul_min} uL/min cannot be written for a New Era pump")
    return best[1], best[2]


def newera_volume(volume_ul: float) -> tuple[float, str]:
    """(number, UL|ML) for VOL; 0 means pump until stopped, so a volume must not round to 0."""
    value, units = (volume_ul, "UL") if volume_ul < 9999.5 else (volume_ul / 1000.0, "ML")
    number = float(format_number(value))
    if volume_ul > 0 and number == 0:
        raise ValueError(f"{volume_ul} uL is below the pump's volume resolution (0.001 uL)")
    return number, units


def syringe_from_settings(settings: dict[str, Any]) -> Syringe:
    """The syringe of a bench-file pump entry (`syringe: {inner_diameter, volume, contents}`)."""
    spec = settings.get("syringe") or {}
    volume = to_unit(spec.get("volume", "1 mL"), "uL")
    return Syringe(
        inner_diameter_mm=to_unit(spec.get("inner_diameter", "4.699 mm"), "mm"),
        volume_ul=volume,
        contents_ul=to_unit(spec.get("contents", 0.0), "uL"),
        reagent=str(settings.get("reagent", "")),
    )


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

    def __init__(self, name: str, driver: NewEraPump, syringe: Syringe, safe_mode_s: int = 0):
        super().__init__(name, syringe)
        self.driver = driver
        self.safe_mode_s = safe_mode_s
        self.version = ""
        self._continuous = False
        self._configured = False
        _on_port.setdefault(driver.transport, weakref.WeakSet()).add(self)
        self._connected = False

    @_locked
    def connect(self) -> None:
        """Open the port, reach the pump (acknowledging power-up alarms), set the syringe."""
        if not self._connected:
            _acquire(self.driver.transport)
            self._connected = True
        self.driver.transport.open()  # again after a lost link
        self.version = self.driver.connect(self.safe_mode_s)
        self.driver.stop()
        self._configure()

    def close(self) -> None:
        """Stop the heartbeat and release the port (the pump is left as it is)."""
        self.driver.close()
        if self._connected:
            self._connected = False
            _release(self.driver.transport)

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
            rate = newera_rate(rate_ul_min)
            volume = newera_volume(volume_ul or 0.0)
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

    @_locked
    def stopped_by_broadcast(self) -> None:
        """The pump was stopped by a broadcast `*STP`: settle the account (best effort)."""
        self._after_alarm()

    def _after_alarm(self) -> None:
        try:
            self._settle()
        except Exception as exc:  # noqa: BLE001 - the alarm itself is what the caller gets
            log.warning("%s: no displaced volume after an alarm: %s", self.name, exc)
        self._active = False


def make_newera(
    name: str, settings: dict[str, Any], transport: SerialTransport
) -> NewEraSyringePump:
    """A New Era pump from its bench-file entry: address, syringe, reagent, safe_mode (s)."""
    safe = int(round(to_unit(settings.get("safe_mode", 0) or 0, "s")))
    driver = NewEraPump(transport, int(settings.get("address", 0)), name=name)
    return NewEraSyringePump(name, driver, syringe_from_settings(settings), safe_mode_s=safe)


def harvard_rate(rate_ul_min: float) -> tuple[float, str]:
    """Units for an Ultra rate command: (number, units) in ml/min, ul/min or nl/min."""
    if rate_ul_min >= 10000.0:
        return rate_ul_min / 1000.0, "m/m"
    if rate_ul_min >= 0.1:
        return rate_ul_min, "u/m"
    return rate_ul_min * 1000.0, "n/m"


class HarvardSyringePump(_AccountedPump):
    """A Harvard Pump 11 Elite / PHD ULTRA as the engine's Pump."""

    def __init__(self, name: str, driver: HarvardPump, syringe: Syringe) -> None:
        super().__init__(name, syringe)
        self.driver = driver
        self.version = ""
        self._connected = False
        self._resyncs = 0

    @_locked
    def connect(self) -> None:
        """Open the port, resynchronise, polling on, NVRAM off, set the syringe."""
        if not self._connected:
            _acquire(self.driver.transport)
            self._connected = True
        self.driver.transport.open()
        self.version = self.driver.connect()
        self.driver.stop()
        self._configure()

    def _configure(self) -> None:
        self.driver.set_diameter(self.syringe.inner_diameter_mm)
        self.driver.set_syringe_volume(self.syringe.volume_ul)
        self._resyncs = self.driver.resyncs

    def close(self) -> None:
        """Release the port (the pump is left as it is)."""
        if self._connected:
            self._connected = False
            _release(self.driver.transport)

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
        value, units = harvard_rate(rate_ul_min)
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


def make_harvard(
    name: str, settings: dict[str, Any], transport: SerialTransport
) -> HarvardSyringePump:
    """A Harvard Ultra pump from its bench-file entry: address, syringe, reagent."""
    driver = HarvardPump(transport, int(settings.get("address", 0)), name=name)
    return HarvardSyringePump(name, driver, syringe_from_settings(settings))


def emergency_stop_all(transport: SerialTransport) -> None:
    """Stop every New Era pump on `transport` at once (broadcast `*STP`), then settle the
    syringe accounts of the adapters on that port (their runs end here, not as interrupted)."""
    _newera_stop_all(transport)
    for pump in list(_on_port.get(transport, ())):
        pump.stopped_by_broadcast()
