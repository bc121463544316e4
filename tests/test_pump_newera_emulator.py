"""The New Era emulator's framing on the wire: a Safe-mode packet is accepted in Basic mode.

device_protocols.md 1.1: "A pump in Basic mode must still accept a Safe-mode-framed packet";
nesp-lib opens every session with `02 09 '0SAF0' 59 AD 03` (no CR) and, having no read
timeout, hangs on a pump that does not answer it. Bytes are written from the reference.
"""

from __future__ import annotations

import binascii
import socket
import time

import pytest
from pumpsim import ne_spec, newera_bench

NESP_OPENING = b"\x02\x090SAF0\x59\xad\x03"  # SAF0 at address 0, Safe framing, no CR
OK = b"\x0200S\x03"


def safe(data: bytes) -> bytes:
    """STX, len(data) + 4, data, CRC-16/XMODEM (binascii.crc_hqx) big-endian, ETX."""
    crc = binascii.crc_hqx(data, 0).to_bytes(2, "big")
    return b"\x02" + bytes([len(data) + 4]) + data + crc + b"\x03"


def test_the_opening_packet_is_the_manuals_framing() -> None:
    assert safe(b"0SAF0") == NESP_OPENING


def _exchange(url: str, *sends: bytes, expect: int, limit_s: float = 5.0) -> bytes:
    """Write each of `sends` on a raw socket, then read until `expect` bytes came."""
    host, port = url.removeprefix("socket://").split(":")
    with socket.create_connection((host, int(port)), timeout=limit_s) as sock:
        for data in sends:
            sock.sendall(data)
            time.sleep(0.02)
        received = b""
        deadline = time.monotonic() + limit_s
        while len(received) < expect and time.monotonic() < deadline:
            sock.settimeout(max(0.01, deadline - time.monotonic()))
            try:
                chunk = sock.recv(256)
            except TimeoutError:
                break
            if not chunk:
                break
            received += chunk
        return received


@pytest.mark.parametrize(
    "before",
    [b"", b"0DI", b"\x00\x7f", b"0VOL5"],
    ids=["clean line", "half a Basic command", "noise", "unfinished setting"],
)
def test_safe_framed_packet_is_answered_in_basic_mode(before: bytes) -> None:
    with newera_bench(ne_spec(fresh=False)) as (_world, chain, transport):
        reply = _exchange(transport.url, before, NESP_OPENING, expect=len(OK))
        assert reply == OK  # answered in Basic framing: the pump is in Basic mode after SAF0
        assert chain.pumps[0].nvm.safe_s == 0


def test_safe_framed_packet_switches_to_safe_mode_and_back() -> None:
    to_safe, safe_ok = safe(b"0SAF5"), safe(b"00S")
    with newera_bench(ne_spec(fresh=False)) as (_world, chain, transport):
        reply = _exchange(transport.url, b"0DIA", to_safe, expect=len(safe_ok))
        assert reply == safe_ok
        assert chain.pumps[0].nvm.safe_s == 5
        assert _exchange(transport.url, NESP_OPENING, expect=len(OK)) == OK
        assert chain.pumps[0].nvm.safe_s == 0


def test_stray_stx_does_not_swallow_the_next_command() -> None:
    with newera_bench(ne_spec(fresh=False)) as (_world, _chain, transport):
        # STX then a length no packet has: dropped, and the Basic command after it is answered
        reply = _exchange(transport.url, b"\x02\xff", b"0DIA\r", expect=len(b"\x0200S4.699\x03"))
        assert reply == b"\x0200S4.699\x03"
