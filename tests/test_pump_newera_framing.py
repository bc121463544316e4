"""New Era Safe-mode framing under corruption: a packet that does not check out is dropped up
to the next STX and the rest parsed again, so one corrupt packet costs one retry (or, in a
safe stop's confirmation, nothing), never the reply after it as well.

The corrupt packets are scripted byte for byte (tests/wire.py): a flipped bit in the length
byte makes a packet claim more or fewer bytes than it has (device_protocols.md 1.1:
`len = len(data) + 4`, CRC-16/XMODEM over the data only, so the CRC cannot vouch for it).
"""

from __future__ import annotations

import binascii

import pytest
from wire import expected_protocol

from drivers import errors
from drivers.newera import NewEraPump
from drivers.newera_wire import frame_end, reply_packet


def safe(data: bytes) -> bytes:
    """The manual's Safe-mode packet: STX, len(data) + 4, data, CRC-16/XMODEM, ETX."""
    return (b"\x02" + bytes([len(data) + 4]) + data
            + binascii.crc_hqx(data, 0).to_bytes(2, "big") + b"\x03")


def flipped_length(packet: bytes, bit: int) -> bytes:
    """`packet` with one bit of its length byte flipped."""
    return packet[:1] + bytes([packet[1] ^ (1 << bit)]) + packet[2:]


VER = safe(b"00SNE1000V3.928")  # length 0x13
STATUS = safe(b"00S")  # length 0x07


def safe_pump(transport, retries: int) -> NewEraPump:
    p = NewEraPump(transport, 0, name="ne", retries=retries)
    p.safe_timeout_s = 5  # as if SAF5 had been sent (no heartbeat: nothing else is written)
    return p


def test_a_packet_claiming_more_bytes_does_not_swallow_the_next() -> None:
    longer = flipped_length(STATUS, 3)  # length 15, not 7: 8 bytes of the next packet
    buffer = longer + VER
    assert frame_end(buffer) == len(buffer)
    assert reply_packet(buffer) == VER


def test_a_packet_claiming_fewer_bytes_leaves_no_tail_in_the_next() -> None:
    shorter = flipped_length(VER, 0)  # length 18, not 19: its ETX is left over
    buffer = shorter + STATUS
    assert frame_end(buffer) == len(buffer)
    assert reply_packet(buffer) == STATUS
    assert reply_packet(b"\x03" + STATUS) == STATUS  # the tail of a late reply, dropped


def test_a_lone_corrupt_packet_is_refused_at_once() -> None:
    bad_crc = STATUS[:-3] + b"\x00\x00\x03"
    assert frame_end(bad_crc) == len(bad_crc)  # no wait for bytes that will never come
    whole_but_longer = flipped_length(STATUS, 3)  # its CRC checks up to an ETX: it is all here
    assert frame_end(whole_but_longer) == len(whole_but_longer)
    assert frame_end(STATUS[:5]) is None  # still arriving: wait
    assert frame_end(b"\x0200S") is None and frame_end(b"\x0200S\x03") == 5  # Basic as before


def test_a_corrupt_reply_whose_tail_arrives_late_costs_one_retry() -> None:
    """The first VER reply claims one byte fewer than it has and its last bytes come late:
    they arrive ahead of the retry's reply. Dropped up to that reply's STX, the retry reads
    its own reply: one retry (with no second retry allowed), where it took two."""
    shorter = flipped_length(VER, 0)
    pairs = [(safe(b"0VER"), shorter[:-2]), (safe(b"0VER"), shorter[-2:] + VER)]
    with expected_protocol(pairs) as t:
        assert safe_pump(t, retries=1).version() == "NE1000V3.928"


def test_a_stale_packet_swallowing_the_stop_confirmation_costs_nothing() -> None:
    """A safe stop: the late reply to the blind STP (a length byte flipped: it claims 8 more
    bytes) arrives ahead of the status that confirms the stop and would swallow its first
    bytes; the status is found at its STX and the stop is confirmed on the first try."""
    stp = safe(b"0STP")
    late = flipped_length(safe(b"00P"), 3)
    pairs = [(stp + stp, b""), (safe(b"0"), late + STATUS)]
    with expected_protocol(pairs) as t:
        assert safe_pump(t, retries=0).stop_blind() is True


def test_a_reply_that_never_checks_out_is_still_garbled() -> None:
    pairs = [(safe(b"0VER"), flipped_length(VER, 0))]
    with expected_protocol(pairs) as t, pytest.raises(errors.GarbledReply):
        safe_pump(t, retries=0).version()
