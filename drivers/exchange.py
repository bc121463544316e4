"""Request and reply with retries, for addressed devices whose replies can be lost or garbled.

One place for what the pump drivers share: a device at an address on a (possibly shared)
port, and the loop that sends a request, decodes the framed reply, and sends it again when
the reply timed out or did not decode, holding the port's lock throughout so another device
on a shared line cannot interleave.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TypeVar

from drivers.errors import DeviceTimeout, GarbledReply
from drivers.transport import Framing, SerialTransport

R = TypeVar("R")


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
    """`decode` of the reply to `payload`; up to `attempts` tries in all on a lost or garbled
    reply, the last failure raised. `name`, `what` and `log` say who retried what."""
    with transport.lock:
        for attempt in range(attempts):
            try:
                return decode(transport.request(payload, until, timeout))
            except (DeviceTimeout, GarbledReply) as exc:
                log.debug("%s: %r failed (%s), attempt %d", name, what, exc, attempt + 1)
                if attempt + 1 == attempts:
                    raise
    raise AssertionError("no attempt made")  # pragma: no cover - attempts >= 1


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
        retries: int = 1,
        timeout: float | None = None,
    ) -> None:
        if not 0 <= address <= 99:
            raise ValueError(f"{self.family} address must be 0-99")
        self.transport = transport
        self.address = address
        self.name = name or f"{transport.name}#{address}"
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
