"""The safe state: every pump stopped, every light off and every stage halted, at once,
whatever else is stuck.

Every stop path (the end of a run however it ended, abort, emergency stop, an interlock, a
fault, a signal, closing the engine) goes through `Rig.safe_stop`, which uses this module.
Each physical device gets its own thread and its off command (`off()` on the adapter: sent
blindly, never after a read, retried, then confirmed by the device; a stage's `halt()`: every
axis stopped, so an e-stop also ends a move or a focus drive), so a dead port cannot
delay stopping a healthy pump; every thread is bounded (OFF_DEADLINE_S). A device named by
several bench entries (two roles on one pump of a chain) is stopped once. What each device
confirmed is returned as a SafeStop, which the run records.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from chipctl.config.bench import Bench

OFF_DEADLINE_S = 2.0  # a device whose off is not confirmed by then is reported unconfirmed
OFF_KINDS = ("pump", "illuminator", "stage")  # what can be left running


@dataclass(frozen=True)
class DeviceOff:
    """One physical device's off: its bench entries, kind, whether it confirmed, how long it
    took (s from the start of the safe stop) and what went wrong."""

    names: tuple[str, ...]
    kind: str
    confirmed: bool
    seconds: float
    error: str = ""

    @property
    def label(self) -> str:
        """The device as the bench file names it (entries joined by '+')."""
        return "+".join(self.names)

    def as_record(self) -> dict[str, Any]:
        """For the run's events."""
        out: dict[str, Any] = {"device": self.label, "kind": self.kind,
                               "confirmed": self.confirmed, "seconds": round(self.seconds, 3)}
        if self.error:
            out["error"] = self.error
        return out


@dataclass(frozen=True)
class SafeStop:
    """What a safe stop did, device by device."""

    reason: str
    devices: tuple[DeviceOff, ...]

    @property
    def confirmed(self) -> list[str]:
        """The devices that reported themselves off."""
        return [d.label for d in self.devices if d.confirmed]

    @property
    def failures(self) -> list[str]:
        """What could not be confirmed off, device by device."""
        return [f"{d.label}: {d.error or 'not confirmed off'}" for d in self.devices
                if not d.confirmed]

    @property
    def worst_s(self) -> float:
        """The time the last device took to confirm (0 with no devices)."""
        return max((d.seconds for d in self.devices), default=0.0)

    def as_record(self) -> dict[str, Any]:
        """For the run's events (`safe_stop`)."""
        return {"reason": self.reason, "devices": [d.as_record() for d in self.devices],
                "confirmed": self.confirmed, "unconfirmed": [d.label for d in self.devices
                                                             if not d.confirmed]}


@dataclass(frozen=True)
class OffAction:
    """One physical device's off command: True once the device confirmed it."""

    names: tuple[str, ...]
    kind: str
    run: Callable[[], bool]


def off_actions(bench: Bench, by_kind: Callable[[str], Mapping[str, Any]]) -> list[OffAction]:
    """One off per physical device of the kinds that can be left on (pumps, lights): bench
    entries on one port and address are one device (its adapters turned off in turn, on one
    thread), and one adapter named twice is turned off once."""
    groups: dict[tuple[Any, ...], dict[str, Any]] = {}
    for kind in OFF_KINDS:
        for name, device in by_kind(kind).items():
            spec = bench.devices[name]
            key = ((kind, spec.url, getattr(spec, "address", None)) if spec.serial
                   else (kind, id(device)))
            groups.setdefault(key, {})[name] = device
    return [OffAction(tuple(named), key[0], _off_all(list(named.values()), key[0]))
            for key, named in groups.items()]


def _off_all(devices: list[Any], kind: str) -> Callable[[], bool]:
    """Every distinct adapter of one physical device off in turn: True if all confirmed."""
    offs = [off_of(d, kind) for d in {id(d): d for d in devices}.values()]
    return lambda: all([off() for off in offs])


def off_of(device: Any, kind: str) -> Callable[[], bool]:
    """The device's safe-state off: its blind off, or (a device without one) its
    stop/dark/halt. Calling it returns True once the device confirmed."""
    off = getattr(device, "off", None)
    if callable(off):
        return lambda: bool(off())
    stop = getattr(device, {"pump": "stop", "illuminator": "dark", "stage": "halt"}[kind])

    def act() -> bool:
        stop()
        return True
    return act


def run_in_parallel(reason: str, actions: Sequence[OffAction],
                    deadline_s: float = OFF_DEADLINE_S) -> SafeStop:
    """Every action on its own thread at once; waits at most `deadline_s` for them all."""
    started = time.monotonic()
    results: dict[int, DeviceOff] = {}

    def work(index: int, action: OffAction) -> None:
        try:
            ok, error = action.run(), ""
            if not ok:
                error = "sent, but the device never confirmed it"
        except Exception as exc:  # noqa: BLE001 - reported as this device's failure
            ok, error = False, str(exc) or type(exc).__name__
        results[index] = DeviceOff(action.names, action.kind, ok, time.monotonic() - started,
                                   error)

    threads = [threading.Thread(target=work, args=(i, a), daemon=True,
                                name=f"safe-stop-{a.names[0]}") for i, a in enumerate(actions)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(max(0.0, started + deadline_s - time.monotonic()))
    late = f"no confirmation within {deadline_s:g} s"
    return SafeStop(reason, tuple(
        results.get(i) or DeviceOff(a.names, a.kind, False, deadline_s, late)
        for i, a in enumerate(actions)))
