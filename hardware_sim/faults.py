"""Fault injection between a device emulator and its wire.

Faults are armed by name (from the control channel or a test) and act on the reply bytes or
on the link itself: a dropped reply, a garbled byte, a slow reply, a reply split into pieces,
a lock-up (no replies at all) and an unplugged port.
"""

from __future__ import annotations

import random
import threading
from dataclasses import dataclass, field

# each link fault: the injector's attribute it arms and how its value is read
_ARMS: dict[str, tuple[str, type]] = {
    "drop_reply": ("drop_next", int), "garble": ("garble_next", int),
    "slow": ("slow_seconds", float), "split": ("split_replies", bool),
    "lockup": ("locked_up", bool), "unplug": ("unplugged", bool),
}
LINK_FAULTS = tuple(_ARMS)


@dataclass
class FaultInjector:
    """Armed link faults of one device endpoint; thread-safe."""

    rng: random.Random = field(default_factory=random.Random)
    drop_next: int = 0
    garble_next: int = 0
    split_replies: bool = False
    slow_seconds: float = 0.0
    locked_up: bool = False
    unplugged: bool = False
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def arm(self, fault: str, value: float = 1.0) -> None:
        """Arm a link fault. `value`: count for drop/garble, seconds for slow, 0 disarms."""
        with self._lock:
            if fault not in _ARMS:
                raise ValueError(f"unknown link fault {fault!r}; known: {', '.join(LINK_FAULTS)}")
            attribute, kind = _ARMS[fault]
            setattr(self, attribute, kind(value))

    def clear(self) -> None:
        """Disarm every fault (replug, unlock)."""
        with self._lock:
            self.drop_next = self.garble_next = 0
            self.split_replies = self.locked_up = self.unplugged = False
            self.slow_seconds = 0.0

    def shape(self, reply: bytes) -> list[bytes]:
        """Apply armed faults to one reply; returns the pieces to write (maybe none)."""
        if not reply:
            return []
        with self._lock:
            if self.locked_up:
                return []
            if self.drop_next > 0:
                self.drop_next -= 1
                return []
            if self.garble_next > 0:
                self.garble_next -= 1
                reply = self._garble(reply)
            if self.split_replies and len(reply) > 1:
                cut = self.rng.randrange(1, len(reply))
                return [reply[:cut], reply[cut:]]
        return [reply]

    def _garble(self, reply: bytes) -> bytes:
        data = bytearray(reply)
        # Flip a bit in a payload byte, never in the first or last (frame) byte, so the frame
        # still arrives and the driver must notice the content is wrong.
        index = self.rng.randrange(1, len(data) - 1) if len(data) > 2 else 0
        data[index] ^= 0x01 << self.rng.randrange(0, 7)
        return bytes(data)
