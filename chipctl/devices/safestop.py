"""The safe state: every pump stopped, every light off and every stage halted, at once,
whatever else is stuck.

Every stop path (the end of a run however it ended, abort, emergency stop, an interlock, a
fault, a signal, closing the engine) goes through `Rig.safe_stop`, which uses this module.
Each physical device gets its own thread and its off command (`off()` on the adapter: sent
blindly, never after a read, retried, then confirmed by the device; a stage's `halt()`: every
axis stopped, so an e-stop also ends a move or a focus drive), so a dead port cannot
delay stopping a healthy device; every thread is bounded (OFF_DEADLINE_S). The pumps sharing
a port (a daisy chain) share one thread: every pump's blind stop is written first, then each
is confirmed in turn under the port's lock, so no pump waits for another's confirmation and
no reply is read by the wrong pump. A device named by several bench entries (two roles on
one pump of a chain) is stopped once. What each device confirmed is returned as a SafeStop,
which the run records.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from chipctl.config.bench import Bench
from drivers.exchange import blind_offs

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


Report = Callable[[int, bool, str], None]
"""How an off action tells of one of its targets: (its index in the action, confirmed, error)."""


@dataclass(frozen=True)
class OffTarget:
    """What a safe stop turns off: a physical device (its bench entries) of a kind, or a
    port's broadcast stop (kind `broadcast`, the entries of the devices it reaches)."""

    names: tuple[str, ...]
    kind: str

    @property
    def label(self) -> str:
        """As the bench file names it (entries joined by '+')."""
        return "+".join(self.names)


@dataclass(frozen=True)
class OffAction:
    """What one thread of the safe stop turns off: one target, or the pumps sharing a port
    (with its broadcast stop, in an emergency stop). `run(report)` reports each target as
    soon as its outcome is known."""

    targets: tuple[OffTarget, ...]
    run: Callable[[Report], None]


Broadcast = tuple[tuple[str, ...], Callable[[], None]]
"""A port's broadcast stop: the bench entries it reaches, and the call that sends it."""


def single_off(names: tuple[str, ...], kind: str, off: Callable[[], bool]) -> OffAction:
    """The action of one target whose `off()` returns True once it confirmed."""
    def run(report: Report) -> None:
        report(0, off(), "")
    return OffAction((OffTarget(names, kind),), run)


def off_actions(bench: Bench, by_kind: Callable[[str], Mapping[str, Any]],
                broadcasts: Mapping[str, Broadcast] | None = None) -> list[OffAction]:
    """One off per physical device of the kinds that can be left on (pumps, lights, stages):
    bench entries on one port and address are one device (its adapters turned off in turn,
    on one thread), and one adapter named twice is turned off once. The pumps sharing a port
    are one action (`port_off`, with that port's entry of `broadcasts`, by URL): one thread,
    so their replies never cross; a broadcast with no such action gets its own."""
    groups: dict[tuple[Any, ...], dict[str, Any]] = {}
    for kind in OFF_KINDS:
        for name, device in by_kind(kind).items():
            spec = bench.devices[name]
            key = ((kind, spec.url, getattr(spec, "address", None)) if spec.serial
                   else (kind, id(device)))
            groups.setdefault(key, {})[name] = device
    slots: list[OffAction | str] = []
    ports: dict[str, list[tuple[tuple[str, ...], list[Any]]]] = {}
    for key, named in groups.items():
        adapters = list({id(d): d for d in named.values()}.values())
        if key[0] == "pump" and len(key) == 3 and all(
                callable(getattr(a, "blind_stop", None)) for a in adapters):
            if key[1] not in ports:
                slots.append(key[1])
            ports.setdefault(key[1], []).append((tuple(named), adapters))
        else:
            slots.append(single_off(tuple(named), key[0], _off_all(adapters, key[0])))
    left = dict(broadcasts or {})
    actions = [port_off(ports[slot], left.pop(slot, None)) if isinstance(slot, str) else slot
               for slot in slots]
    return actions + [single_off(names, "broadcast", _sent(send))
                      for names, send in left.values()]


def port_off(pumps: Sequence[tuple[tuple[str, ...], Sequence[Any]]],
             broadcast: Broadcast | None = None) -> OffAction:
    """The pumps on one port (each: its bench entries and adapters): the port's `broadcast`
    sent first, if given (its replies collide: they are flushed before anything is read),
    then every pump's blind stop written, then each confirmed in turn
    (drivers.exchange.blind_offs), each reported as soon as it confirmed; then every account
    settled."""
    targets = tuple(OffTarget(names, "pump") for names, _adapters in pumps)
    if broadcast is not None:
        targets += (OffTarget(broadcast[0], "broadcast"),)

    def run(report: Report) -> None:
        if broadcast is not None:
            try:
                report(len(pumps), _sent(broadcast[1])(), "")
            except Exception as exc:  # noqa: BLE001 - the pumps are still stopped one by one
                report(len(pumps), False, str(exc) or type(exc).__name__)
        parts, owner = [], []
        for index, (_names, adapters) in enumerate(pumps):
            for adapter in adapters:
                parts.append(adapter.blind_stop())
                owner.append(index)
        outcomes: dict[int, list[bool]] = {index: [] for index in range(len(pumps))}

        def done(part: int, confirmed: bool) -> None:
            pump = outcomes[owner[part]]
            pump.append(confirmed)
            if len(pump) == owner.count(owner[part]):
                report(owner[part], all(pump), "")
        try:
            blind_offs(parts, done=done)
        finally:
            for _names, adapters in pumps:
                for adapter in adapters:
                    adapter.settle_after_off()
    return OffAction(targets, run)


def _sent(send: Callable[[], None]) -> Callable[[], bool]:
    """An off that is done once sent (a broadcast: nothing confirms it)."""
    def off() -> bool:
        send()
        return True
    return off


def _off_all(devices: list[Any], kind: str) -> Callable[[], bool]:
    """Every distinct adapter of one physical device off in turn: True if all confirmed."""
    offs = [off_of(d, kind) for d in devices]
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
    """Every action on its own thread at once; waits at most `deadline_s` for them all. A
    device reported before then keeps its outcome even if its action is still busy."""
    started = time.monotonic()
    results: dict[tuple[int, int], DeviceOff] = {}

    def work(index: int, action: OffAction) -> None:
        def report(target: int, ok: bool, error: str) -> None:
            if not ok and not error:
                error = "sent, but the device never confirmed it"
            off = action.targets[target]
            results.setdefault((index, target), DeviceOff(
                off.names, off.kind, ok, time.monotonic() - started, error))
        try:
            action.run(report)
        except Exception as exc:  # noqa: BLE001 - reported as the failure of its targets
            for target in range(len(action.targets)):
                report(target, False, str(exc) or type(exc).__name__)
        for target in range(len(action.targets)):
            report(target, False, "")  # a target the action never told of

    threads = [threading.Thread(target=work, args=(i, a), daemon=True,
                                name=f"safe-stop-{a.targets[0].label}")
               for i, a in enumerate(actions)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(max(0.0, started + deadline_s - time.monotonic()))
    late = f"no confirmation within {deadline_s:g} s"
    return SafeStop(reason, tuple(
        results.get((i, t)) or DeviceOff(off.names, off.kind, False, deadline_s, late)
        for i, a in enumerate(actions) for t, off in enumerate(a.targets)))
