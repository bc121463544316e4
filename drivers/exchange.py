"""Request and reply with retries, for drivers whose replies can be lost or garbled.

One place for the loop the pump drivers share: send a request, decode the framed reply, and
send it again when the reply timed out or did not decode, holding the port's lock throughout
so another device on a shared line cannot interleave.
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
