"""Exact bytes of the VICI universal actuator driver, and its reading of every reply.

The bytes are written from the VICI Universal Electric Actuator manual (Optional Serial
Interface, pp. 14-19: `CP` -> `CPnn<CR>`, `NP` -> `NPnn<CR>`, `AM` -> `AMn<CR>`, `SO` ->
`SOnn<CR>`, `SM` -> `SMl<CR>`, `GOnn`, `HM`, `IFM0`, `LG1` adding " = ") and from the replies
flowchem recorded on real actuators (ID prefix, three `VR` lines, `E2 <cmd> Invalid`), not
taken from the emulator.
"""

from __future__ import annotations

import pytest
from wire import expected_protocol

from drivers import errors
from drivers.vici import ViciValve

VR = b"Dec 15 2011\r15:02:20\rUA_MAIN_CT\r"
CONNECT = [
    (b"IFM\r", b"IFM0\r"),
    (b"VR\r", VR),
    (b"AM\r", b"AM3\r"),
    (b"NP\r", b"NP10\r"),
    (b"SO\r", b"SO01\r"),
    (b"CP\r", b"CP01\r"),
    (b"CP\r", b"CP01\r"),
]


class FakeClock:
    """Time that passes only when the driver sleeps between polls."""

    def __init__(self) -> None:
        self.t = 0.0
        self.sleeps = 0

    def __call__(self) -> float:
        return self.t

    def sleep(self, seconds: float) -> None:
        self.t += seconds
        self.sleeps += 1


def valve(transport, clock: FakeClock | None = None, **options) -> ViciValve:
    clock = clock or FakeClock()
    options.setdefault("quiet", 0.02)
    options.setdefault("timeout", 0.05)
    return ViciValve(transport, "valve", clock=clock, sleep=clock.sleep, **options)


def polls(*replies: bytes | None) -> list[tuple[bytes, bytes | None]]:
    return [(b"CP\r", reply) for reply in replies]


def test_connect_reads_firmware_mode_ports_and_position() -> None:
    with expected_protocol(CONNECT) as t:
        v = valve(t, positions=10)
        assert v.connect() == "Dec 15 2011 15:02:20 UA_MAIN_CT"
        assert v.ports == range(1, 11)


def test_connect_silences_replies_to_moves_when_the_actuator_gives_them() -> None:
    pairs = [(b"IFM\r", b"IFM1\r"), (b"IFM0\r", None), (b"IFM\r", b"IFM0\r")] + CONNECT[1:]
    with expected_protocol(pairs) as t:
        valve(t).connect()


def test_select_sends_go_then_polls_until_two_replies_name_the_port() -> None:
    clock = FakeClock()
    pairs = CONNECT + [(b"GO3\r", None)] + polls(b"CP01\r", b"CP02\r", b"CP03\r", b"CP03\r")
    with expected_protocol(pairs) as t:
        v = valve(t, clock, poll_interval=0.05)
        v.connect()
        v.select(3)
    assert clock.sleeps == 3


def test_one_corrupted_reading_of_the_target_does_not_end_the_move() -> None:
    # CP03 while the rotor passes 2: a flipped digit; the next reply shows the truth.
    pairs = CONNECT + [(b"GO3\r", None)] + polls(b"CP03\r", b"CP02\r", b"CP03\r", b"CP03\r")
    with expected_protocol(pairs) as t:
        v = valve(t)
        v.connect()
        v.select(3)


@pytest.mark.parametrize("port", [0, 11, -1, True, 2.0, "3"])
def test_ports_outside_the_valve_are_refused_before_sending(port: object) -> None:
    with expected_protocol(CONNECT) as t:
        v = valve(t)
        v.connect()
        with pytest.raises(errors.OutOfRange, match="ports 1-10"):
            v.select(port)  # type: ignore[arg-type]


def test_select_before_connect_is_an_error_not_a_guess() -> None:
    with expected_protocol([]) as t, pytest.raises(errors.DeviceError, match="not connected"):
        valve(t).select(1)


def test_offset_moves_the_port_numbers() -> None:
    pairs = CONNECT[:4] + [(b"SO\r", b"SO10\r")] + polls(b"CP10\r", b"CP10\r")
    pairs += [(b"GO12\r", None)] + polls(b"CP12\r", b"CP12\r")
    with expected_protocol(pairs) as t:
        v = valve(t)
        v.connect()
        assert v.ports == range(10, 20)
        v.select(12)
        with pytest.raises(errors.OutOfRange):
            v.select(1)


def test_device_id_leads_every_command_and_every_reply() -> None:
    pairs = [
        (b"3IFM\r", b"3IFM0\r"),
        (b"3VR\r", b"3Dec 15 2011\r315:02:20\r3UA_MAIN_CT\r"),
        (b"3AM\r", b"3AM3\r"),
        (b"3NP\r", b"3NP08\r"),
        (b"3SO\r", b"3SO01\r"),
        (b"3CP\r", b"3CP05\r"),
        (b"3CP\r", b"3CP05\r"),
        (b"3GO8\r", None),
        (b"3CP\r", b"3CP08\r"),
        (b"3CP\r", b"3CP08\r"),
        (b"3CP\r", b"CP08\r"),  # another actuator's reply: not ours
        (b"3CP\r", b"3CP08\r"),
        (b"3CP\r", b"3CP08\r"),
    ]
    with expected_protocol(pairs) as t:
        v = valve(t, device_id="3", positions=8)
        assert v.connect() == "Dec 15 2011 15:02:20 UA_MAIN_CT"
        v.select(8)
        assert v.position() == 8


def test_device_id_must_be_one_character() -> None:
    with expected_protocol([]) as t:
        for bad in ("12", "a", "*", ""):
            with pytest.raises(ValueError, match="0-9 or A-Z"):
                valve(t, device_id=bad)


def test_long_replies_of_lg1_are_read_too() -> None:
    pairs = [(b"IFM\r", b"IFM = 0\r"), (b"VR\r", VR), (b"AM\r", b"AM = 3\r"),
             (b"NP\r", b"NP = 10\r"), (b"SO\r", b"SO = 01\r")] + polls(b"CP = 04\r", b"CP = 04\r")
    with expected_protocol(pairs) as t:
        v = valve(t)
        v.connect()
        assert v.ports == range(1, 11)


def test_a_two_position_actuator_cannot_select_ports() -> None:
    pairs = CONNECT[:2] + [(b"AM\r", b"AM1\r")]
    with expected_protocol(pairs) as t, pytest.raises(errors.ValveFault, match="mode 1"):
        valve(t).connect()


def test_a_valve_head_other_than_the_benchs_is_reported() -> None:
    pairs = CONNECT[:3] + [(b"NP\r", b"NP06\r"), (b"SO\r", b"SO01\r")]
    with expected_protocol(pairs) as t, pytest.raises(errors.ValveFault, match="6 positions"):
        valve(t, positions=10).connect()


def test_a_command_the_mode_does_not_offer_is_rejected() -> None:
    with expected_protocol(CONNECT + [(b"SM\r", b"E2 SM Invalid\r")]) as t:
        v = valve(t)
        v.connect()
        with pytest.raises(errors.CommandRejected, match="E2 SM Invalid"):
            v.direction()


def test_direction_is_set_and_read_back() -> None:
    pairs = CONNECT + [(b"SMF\r", None), (b"SM\r", b"SMF\r"), (b"SMA\r", None), (b"SM\r", b"SMF\r")]
    with expected_protocol(pairs) as t:
        v = valve(t)
        v.connect()
        v.set_direction("F")
        with pytest.raises(errors.CommandRejected, match="did not take effect"):
            v.set_direction("A")
        with pytest.raises(errors.OutOfRange):
            v.set_direction("CW")


def test_home_goes_to_the_first_port() -> None:
    pairs = CONNECT + [(b"HM\r", None)] + polls(b"CP07\r", b"CP01\r", b"CP01\r")
    with expected_protocol(pairs) as t:
        v = valve(t)
        v.connect()
        v.home()


def test_a_valve_that_never_arrives_raises_valve_fault() -> None:
    clock = FakeClock()
    # move_timeout 1 s, a poll every 0.25 s: readings at 0, 0.25, 0.5, 0.75 and 1.0 s.
    pairs = CONNECT + [(b"GO5\r", None)] + polls(*[b"CP02\r"] * 5)
    with expected_protocol(pairs) as t:
        v = valve(t, clock, move_timeout=1.0, poll_interval=0.25)
        v.connect()
        with pytest.raises(errors.ValveFault, match="did not reach port 5 .* reports port 2"):
            v.select(5)


def test_a_silent_valve_during_a_move_raises_timeout() -> None:
    pairs = CONNECT + [(b"GO5\r", None)] + polls(*[None] * 5)
    with expected_protocol(pairs) as t:
        v = valve(t, move_timeout=1.0, poll_interval=0.25)
        v.connect()
        with pytest.raises(errors.DeviceTimeout):
            v.select(5)


def test_lost_and_garbled_query_replies_are_asked_again() -> None:
    pairs = CONNECT[:2] + [(b"AM\r", None), (b"AM\r", b"AM3\r"), (b"NP\r", b"NQ10\r"),
                           (b"NP\r", b"NP10\r")] + CONNECT[4:]
    with expected_protocol(pairs) as t:
        valve(t, retries=1).connect()


def test_garbled_replies_raise_once_the_retries_are_spent() -> None:
    pairs = CONNECT[:2] + [(b"AM\r", b"AM\x133\r")]
    with expected_protocol(pairs) as t, pytest.raises(errors.GarbledReply):
        valve(t, retries=0).connect()


def test_position_needs_two_agreeing_replies_in_range() -> None:
    replies = polls(b"CP04\r", b"CP05\r", b"CP05\r")
    replies += polls(b"CP17\r", b"CP17\r", b"CP06\r", b"CP06\r")
    with expected_protocol(CONNECT + replies) as t:
        v = valve(t)
        v.connect()
        assert v.position() == 5
        assert v.position() == 6  # CP17: no port of a 10-position valve, however often


def test_position_gives_up_when_replies_never_agree() -> None:
    replies = polls(b"CP04\r", b"CP05\r")
    with expected_protocol(CONNECT + replies) as t:
        v = valve(t, retries=0)
        v.connect()
        with pytest.raises(errors.GarbledReply, match="never agreed"):
            v.position()
