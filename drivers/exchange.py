"""Replies verified, not trusted: retries, confirmed readings and read-back of setpoints.

What every driver shares: the loop that sends a request, decodes the framed reply, and sends
it again when the reply timed out or did not decode (holding the port's lock throughout so
another device on a shared line cannot interleave); a reading taken until two replies in a row
agree (a link without a checksum can turn 12.45 into 52.45 and still look well formed); a
setting sent, read back and sent again until the device reports what was sent; and errors
of the port re-told about the device (its bench-file name, not the port's URL).
"""

from __future__ import annotations

import contextlib
import logging
import math
from collections.abc import Callable, Iterator
from typing import TypeVar

from drivers.errors import (
    DeviceError,
    DeviceTimeout,
    GarbledReply,
    OutOfRange,
    SetpointMismatch,
)
from drivers.transport import Framing, SerialTransport

R = TypeVar("R")
T = TypeVar("T")
READINGS = 4  # replies read at most to find two in a row that agree
SETTINGS = 3  # times a setting is sent at most before its read-back must match
OFF_TRIES = 3  # a safe state's off command: tries at most ...
OFF_WAIT_S = 0.2  # ... each waiting this long for the port, and as long for the confirmation


@contextlib.contextmanager
def as_device(name: str) -> Iterator[None]:
    """Errors of the port (timeout, link lost) raised inside are told about device `name`."""
    try:
        yield
    except DeviceError as exc:
        if exc.device == name:
            raise
        raise exc.renamed(name) from exc


def confirmed(read: Callable[[], T], *, name: str, what: str, attempts: int = READINGS,
              agree: Callable[[T, T], bool] | None = None, runs: int = 2) -> T:
    """`read()` until `runs` results in a row agree (equal, or as `agree(earlier, later)` says;
    the last is returned), at most `attempts` reads (default: READINGS, one more per extra
    run). A reading that does not parse is one of the attempts. GarbledReply if none agreed:
    one garbled reply that still parses (12.45 read as 52.45) cannot be accepted this way.
    Replies of a few bytes (a status character) take `runs=3`: two garbles of so short a reply
    are alike too often."""
    same = agree or (lambda earlier, later: earlier == later)
    limit = attempts + max(0, runs - 2)
    seen: list[object] = []
    streak: list[T] = []
    for _ in range(limit):
        try:
            value = read()
        except GarbledReply as exc:
            seen.append(exc.message)
            streak.clear()
            continue
        seen.append(value)
        streak = streak + [value] if streak and same(streak[-1], value) else [value]
        if len(streak) >= runs:
            return value
    raise GarbledReply(name, f"{what}: no {runs} replies in a row agreed ({seen!r})")


def verified(apply: Callable[[], object], read_back: Callable[[], T],
             matches: Callable[[T], bool], *, name: str, what: str,
             attempts: int = SETTINGS) -> T:
    """Send a setting (`apply`), read it back, and send it again until `matches(read_back())`;
    SetpointMismatch with the last reading after `attempts` tries. A read-back that does not
    parse counts as a mismatch."""
    last: object = None
    for attempt in range(attempts):
        apply()
        try:
            value = read_back()
        except GarbledReply as exc:
            last = exc
            continue
        if matches(value):
            return value
        last = value
        logging.getLogger(__name__).info("%s: %s read back %r (attempt %d)", name, what, value,
                                         attempt + 1)
    raise SetpointMismatch(name, f"{what}: the device reports {last!r} after {attempts} tries")


def close_to(sent: float, significant: int = 5) -> Callable[[float], bool]:
    """A read-back check: `sent` as a device that shows `significant` digits would show it
    (within half a unit of its last digit; 0 only for 0)."""
    def matches(value: float) -> bool:
        if not math.isfinite(value):
            return False
        if sent == 0:
            return value == 0
        unit = 10.0 ** (math.floor(math.log10(abs(sent))) - significant + 1)
        return abs(value - sent) <= unit / 2 + 1e-12 * abs(sent)
    return matches


def in_range(name: str, what: str, value: float, low: float, high: float) -> float:
    """`value` if finite and within [low, high], else GarbledReply (no device reports that)."""
    if not (math.isfinite(value) and low <= value <= high):
        raise GarbledReply(name, f"{what} {value!r} is outside {low:g}..{high:g}")
    return value


def retried(transport: SerialTransport, exchange: Callable[[], R], attempts: int, *,
            name: str, what: str, log: logging.Logger) -> R:
    """`exchange()` with the port's lock held throughout; up to `attempts` tries in all on a
    lost or garbled reply, the last failure raised. `name`, `what` and `log` say who retried
    what; errors of the port are told about device `name`."""
    with transport.lock, as_device(name):
        for attempt in range(attempts):
            try:
                return exchange()
            except (DeviceTimeout, GarbledReply) as exc:
                log.debug("%s: %r failed (%s), attempt %d", name, what, exc, attempt + 1)
                if attempt + 1 == attempts:
                    raise
    raise AssertionError("no attempt made")  # pragma: no cover - attempts >= 1


def request_with_retries(
    transport: SerialTransport,
    payload: bytes,
    until: Framing,
    timeout: float | None,
    decode: Callable[[bytes], R],
    attempts: int,
    *,
    name: str,
    what: str,
    log: logging.Logger,
) -> R:
    """`decode` of the reply to `payload`, `retried`."""
    return retried(transport, lambda: decode(transport.request(payload, until, timeout)),
                   attempts, name=name, what=what, log=log)


def blind_off(transport: SerialTransport, payload: bytes, confirm: Callable[[float], bool], *,
              name: str, attempts: int = OFF_TRIES, wait: float = OFF_WAIT_S) -> bool:
    """A safe state's off command: `payload` written at once on every try, without the port's
    lock and without reading anything first (the port is reopened if it was lost); then, with
    the lock taken within `wait` s, `confirm(wait)` says whether the device reports itself off.
    True once confirmed; False after `attempts` tries. Never raises."""
    log = logging.getLogger(__name__)
    for attempt in range(attempts):
        try:
            with as_device(name):
                if not transport.is_open:
                    transport.open()
                transport.write_urgent(payload)
                if not transport.lock.acquire(timeout=wait):
                    continue
                try:
                    if confirm(wait):
                        return True
                finally:
                    transport.lock.release()
        except DeviceError as exc:
            log.warning("%s: off, try %d: %s", name, attempt + 1, exc)
    return False


class AddressedDevice:
    """One device at `address` (0-99) on a (possibly shared) SerialTransport.

    `retries`: how many times a request is sent again after a lost or garbled reply;
    `timeout`: the reply timeout (None: the transport's).
    """

    family = "Device"  # for the address error: "<family> address must be 0-99"

    def __init__(
        self,
        transport: SerialTransport,
        address: int = 0,
        name: str | None = None,
        *,
        retries: int = 2,
        timeout: float | None = None,
    ) -> None:
        self.name = name or f"{transport.name}#{address}"
        if isinstance(address, bool) or not isinstance(address, int) or not 0 <= address <= 99:
            raise OutOfRange(self.name, f"{self.family} address must be a whole number 0-99, "
                             f"got {address!r}")
        self.transport = transport
        self.address = address
        self.retries = retries
        self.timeout = timeout
        self._setup()

    def _setup(self) -> None:
        """Hook: the subclass's own state, set at the end of __init__."""

    def _request(self, payload: bytes, until: Framing, timeout: float | None,
                 decode: Callable[[bytes], R], retries: int | None, what: str) -> R:
        """`decode` of the reply to `payload`, retried (`retries`, default self.retries)."""
        attempts = 1 + (self.retries if retries is None else retries)
        return request_with_retries(self.transport, payload, until, timeout, decode, attempts,
                                    name=self.name, what=what,
                                    log=logging.getLogger(type(self).__module__))
