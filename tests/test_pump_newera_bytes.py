"""Exact bytes of every command the New Era driver sends, and its reading of every reply.

Expected bytes are written from the NE-1000 RS-232 reference (device_protocols.md 1.1), not
taken from the emulator.
"""

from __future__ import annotations

import binascii

import pytest
from wire import expected_protocol, twice

from chipctl.config.devices import device_settings
from chipctl.devices.pumps import make_newera
from drivers import errors
from drivers.newera import NewEraPump, emergency_stop_all, format_number
from drivers.pump_units import newera_rate

OK = b"\x0200S\x03"


def safe(data: bytes) -> bytes:
    """The manual's Safe-mode packet: STX, len(data) + 4, data, CRC-16/XMODEM, ETX."""
    return (
        b"\x02"
        + bytes([len(data) + 4])
        + data
        + binascii.crc_hqx(data, 0).to_bytes(2, "big")
        + b"\x03"
    )


def pump(transport, address: int = 0) -> NewEraPump:
    return NewEraPump(transport, address, name="ne", retries=0)


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (0.5, "0.500"),
        (12, "12.00"),
        (1500, "1500."),
        (4.699, "4.699"),
        (14.5, "14.50"),
        (100, "100.0"),
        (9.9996, "10.00"),
        (0.0004, "0.000"),
        (9999, "9999."),
    ],
)
def test_number_format(value: float, text: str) -> None:
    assert format_number(value) == text


def test_number_too_large_is_refused_before_sending() -> None:
    with expected_protocol([]) as t, pytest.raises(errors.OutOfRange):
        pump(t).set_rate(12000, "UM")


def thrice(sent: bytes, reply: bytes) -> list[tuple[bytes, bytes]]:
    """A status poll: its reply is a few bytes, so three in a row must agree."""
    return [(sent, reply)] * 3



def test_settings_are_read_back_and_queries_confirmed() -> None:
    pairs = [
        (b"0DIA4.699\r", OK),
        (b"0DIA\r", b"\x0200S4.699\x03"),  # read-back of the setting
        *twice(b"0DIA\r", b"\x0200S4.699\x03"),  # a query: two replies that agree
        (b"0RAT0.500UM\r", OK),
        (b"0RAT\r", b"\x0200S0.500UM\x03"),
        *twice(b"0RAT\r", b"\x0200S0.500UM\x03"),
        (b"0RAT1500.UH\r", OK),
        (b"0RAT\r", b"\x0200S1500.UH\x03"),
        (b"0VOLUL\r", OK),
        (b"0VOL50.00\r", OK),
        (b"0VOL\r", b"\x0200S50.00UL\x03"),
        *twice(b"0VOL\r", b"\x0200S50.00UL\x03"),
        (b"0DIRINF\r", OK),
        (b"0DIR\r", b"\x0200SINF\x03"),
        (b"0DIRWDR\r", OK),
        (b"0DIR\r", b"\x0200SWDR\x03"),
        *twice(b"0DIR\r", b"\x0200SWDR\x03"),
        *twice(b"0VER\r", b"\x0200SNE1000V3.928\x03"),
    ]
    with expected_protocol(pairs) as t:
        p = pump(t)
        p.set_diameter(4.699)
        assert p.diameter() == 4.699
        p.set_rate(0.5, "UM")
        assert p.rate() == (0.5, "UM")
        p.set_rate(1500, "UH")
        p.set_volume(50, "UL")
        assert p.volume() == (50.0, "UL")
        p.set_direction("INF")
        p.set_direction("WDR")
        assert p.direction() == "WDR"
        assert p.version() == "NE1000V3.928"


def test_garbled_diameter_is_never_accepted() -> None:
    """Issue 17: a bit flip turned 12.45 into 52.45, a well-formed reply, and it was taken."""
    garbled = b"\x0200S52.45\x03"
    good = b"\x0200S12.45\x03"
    pairs = [
        (b"0DIA12.45\r", OK),
        (b"0DIA\r", garbled),  # the read-back does not match: the setting is sent again
        (b"0DIA12.45\r", OK),
        (b"0DIA\r", good),
        (b"0DIA\r", garbled),  # a query: the garbled reply is outvoted
        (b"0DIA\r", good),
        (b"0DIA\r", good),
    ]
    with expected_protocol(pairs) as t:
        p = pump(t)
        p.set_diameter(12.45)
        assert p.diameter() == 12.45


def test_setting_that_never_reads_back_is_a_typed_error() -> None:
    pairs = [(b"0DIA12.45\r", OK), (b"0DIA\r", b"\x0200S52.45\x03")] * 3
    with expected_protocol(pairs) as t, pytest.raises(errors.SetpointMismatch, match="ne:"):
        pump(t).set_diameter(12.45)


def test_replies_that_never_agree_are_garbled() -> None:
    pairs = [(b"0DIA\r", b"\x0200S12.45\x03"), (b"0DIA\r", b"\x0200S52.45\x03")] * 2
    with expected_protocol(pairs) as t, pytest.raises(errors.GarbledReply):
        pump(t).diameter()


@pytest.mark.parametrize("data", [b"99.99", b"0.050", b"12.4", b"12345.", b"1.2345", b"12"])
def test_diameter_out_of_range_or_malformed_is_garbled(data: bytes) -> None:
    # 12.4 is fine as a number, but the next reply disagrees... all four replies are the same
    # here, so only range and grammar decide
    reply = b"\x0200S" + data + b"\x03"
    pairs = [(b"0DIA\r", reply)] * 4
    with expected_protocol(pairs[: 2 if data == b"12.4" else 4]) as t:
        if data == b"12.4":
            assert pump(t).diameter() == 12.4
        else:
            with pytest.raises(errors.GarbledReply):
                pump(t).diameter()


@pytest.mark.parametrize("mm", [float("nan"), float("inf"), -1.0, 0.0, 80.5, 1e300])
def test_impossible_diameter_is_refused_before_sending(mm: float) -> None:
    with expected_protocol([]) as t, pytest.raises(errors.OutOfRange):
        pump(t).set_diameter(mm)


def test_run_status_stop_dispensed() -> None:
    pairs = [
        (b"0CLDINF\r", OK),
        (b"0CLDWDR\r", OK),
        (b"0DIS\r", b"\x0200SI0.000W0.000ML\x03"),  # read-back: both counters zero
        (b"0RUN\r", b"\x0200I\x03"),
        *thrice(b"0\r", b"\x0200I\x03"),
        *twice(b"0DIS\r", b"\x0200II0.250W0.000ML\x03"),
        (b"0STP\r", b"\x0200P\x03"),
        (b"0STP\r", b"\x0200S\x03"),
        *thrice(b"0\r", b"\x0200S\x03"),  # the stop is confirmed by the status
        (b"0STP\r", b"\x0200S\x03"),
        *thrice(b"0\r", b"\x0200S\x03"),
    ]
    with expected_protocol(pairs) as t:
        p = pump(t)
        p.clear_dispensed()
        assert p.run().running
        assert p.status().status == "I"
        assert p.dispensed() == (0.25, 0.0, "ML")
        assert p.stop().status == "S"  # P after the first STP, S after the second
        assert p.stop().status == "S"  # a stopped pump takes one STP


def test_stop_is_sent_again_when_the_status_says_running() -> None:
    # the STP reply's status was garbled (P read as S); the status query shows the truth
    pairs = [
        (b"0STP\r", b"\x0200S\x03"),
        *thrice(b"0\r", b"\x0200P\x03"),
        (b"0STP\r", b"\x0200S\x03"),
        *thrice(b"0\r", b"\x0200S\x03"),
    ]
    with expected_protocol(pairs) as t:
        assert pump(t).stop().status == "S"


def test_dispensed_readings_of_a_moving_pump_agree_when_they_count_on() -> None:
    pairs = [
        (b"0DIS\r", b"\x0200II0.250W0.000UL\x03"),
        (b"0DIS\r", b"\x0200II4.250W0.000UL\x03"),  # a flipped bit: 0.250 -> 4.250
        (b"0DIS\r", b"\x0200II0.251W0.000UL\x03"),  # backwards from 4.250: no
        (b"0DIS\r", b"\x0200II0.252W0.000UL\x03"),  # counts on from 0.251
    ]
    with expected_protocol(pairs) as t:
        assert pump(t).dispensed() == (0.252, 0.0, "UL")


def test_addressed_pump_and_reply_from_wrong_address() -> None:
    pairs = [(b"7DIA26.59\r", b"\x0207S\x03"), (b"7DIA\r", b"\x0207S26.59\x03")]
    pairs += [(b"7\r", b"\x0201S\x03")] * 5
    with expected_protocol(pairs) as t:
        p = pump(t, 7)
        p.set_diameter(26.59)
        with pytest.raises(errors.GarbledReply):
            p.status()


@pytest.mark.parametrize(
    ("reply", "kind"),
    [
        (b"\x0200A?R\x03", errors.PumpReset),
        (b"\x0200A?S\x03", errors.PumpStalled),
        (b"\x0200A?T\x03", errors.CommunicationTimeoutAlarm),
        (b"\x0200A?E\x03", errors.ProgramAlarm),
        (b"\x0200A?O\x03", errors.ProgramAlarm),
        (b"\x0200S?\x03", errors.CommandRejected),
        (b"\x0200I?NA\x03", errors.DeviceBusy),
        (b"\x0200S?OOR\x03", errors.OutOfRange),
        (b"\x0200S?COM\x03", errors.CommandRejected),
        (b"\x0200S?IGN\x03", errors.DeviceBusy),
    ],
)
def test_alarms_and_errors_are_typed(reply: bytes, kind: type[Exception]) -> None:
    with expected_protocol([(b"0RUN\r", reply)]) as t, pytest.raises(kind):
        pump(t).run()


@pytest.mark.parametrize("reply", [b"\x0200Q\x03", b"\x020xS\x03", b"\x0200SNE1000\x03",
                                   b"x\x0200SNE1000V3.928\x03", b"\x0200Sne1000v3.928\x03"])
def test_garbled_replies_are_refused(reply: bytes) -> None:
    pairs = [(b"0VER\r", reply)] * 4
    with expected_protocol(pairs) as t, pytest.raises(errors.GarbledReply):
        pump(t).version()


def test_reply_without_stx_is_not_a_frame() -> None:
    with expected_protocol([(b"0\r", b"00S\x03")]) as t, pytest.raises(errors.DeviceTimeout):
        pump(t).status()


def test_no_reply_times_out_then_retry_recovers() -> None:
    pairs = [(b"0DIS\r", None), *twice(b"0DIS\r", b"\x0200SI1.000W0.000UL\x03")]
    with expected_protocol(pairs) as t:
        p = NewEraPump(t, 0, name="ne", retries=1, timeout=0.05)
        assert p.dispensed() == (1.0, 0.0, "UL")


def test_silence_ends_in_a_timeout() -> None:
    with expected_protocol([(b"0\r", None)]) as t, pytest.raises(errors.DeviceTimeout):
        pump(t).status()


def test_safe_mode_packets_match_the_manual() -> None:
    # "return to basic mode" in Safe framing at address 0: 02 09 '0SAF0' 59 AD 03
    to_basic = b"\x02\x090SAF0\x59\xad\x03"
    assert safe(b"SAF0") == b"\x02\x08SAF0\x55\x43\x03"  # the manual's example packet
    pairs = [
        (to_basic, OK),
        (b"0SAF\r", b"\x0200S0\x03"),  # read back in Basic framing
        (safe(b"0SAF5"), safe(b"00S")),
        (safe(b"0SAF"), safe(b"00S5")),  # read back in Safe framing
        (safe(b"0VER"), safe(b"00SNE1000V3.928")),  # the CRC vouches: one reply suffices
        (to_basic, OK),
        (b"0SAF\r", b"\x0200S0\x03"),
    ]
    with expected_protocol(pairs) as t:
        p = pump(t)
        p.set_safe_mode(0)
        p.set_safe_mode(5)
        assert p.heartbeat.alive
        assert p.version() == "NE1000V3.928"
        p.set_safe_mode(0)
        assert not p.heartbeat.alive
        p.close()


def test_safe_mode_reply_with_bad_crc_is_garbled() -> None:
    with expected_protocol([(safe(b"0VER"), b"\x02\x0700S\x00\x00\x03")]) as t:
        p = pump(t)
        p.safe_timeout_s = 5  # as if SAF5 had been sent
        with pytest.raises(errors.GarbledReply):
            p.version()


def test_connect_absorbs_the_power_up_quirks() -> None:
    to_basic = b"\x02\x090SAF0\x59\xad\x03"
    pairs = [
        (to_basic, None),  # the first command after power-up is ignored
        (to_basic, b"\x0200A?R\x03"),  # the next one reports the reset (and does not run)
        (to_basic, OK),
        (b"0SAF\r", b"\x0200S0\x03"),
        *twice(b"0VER\r", b"\x0200SNE1000V3.928\x03"),
    ]
    with expected_protocol(pairs) as t:
        assert NewEraPump(t, 0, name="ne", retries=0).connect() == "NE1000V3.928"


def test_emergency_stop_broadcasts_in_both_framings() -> None:
    pairs = [(b"*STP\r", b"\x0200P\x03\x0201P\x03"), (safe(b"*STP"), None)] * 2
    with expected_protocol(pairs) as t:
        emergency_stop_all(t, settle_s=0.01)


def test_rate_units_chosen_for_precision() -> None:
    assert newera_rate(10.0) == (10.0, "UM")
    assert newera_rate(0.1234) == (7.404, "UH")
    assert newera_rate(25000.0) == (25.0, "MM")


def test_adapter_connect_and_infuse_exchanges() -> None:
    to_basic = b"\x02\x090SAF0\x59\xad\x03"
    stopped = [(b"0STP\r", OK), *thrice(b"0\r", OK)]
    pairs = [
        (to_basic, OK),
        (b"0SAF\r", b"\x0200S0\x03"),
        *twice(b"0VER\r", b"\x0200SNE1000V3.928\x03"),
        *stopped,
        (b"0DIA4.699\r", OK),
        (b"0DIA\r", b"\x0200S4.699\x03"),
        # infuse 50 uL at 10 uL/min
        *stopped,
        (b"0CLDINF\r", OK),
        (b"0CLDWDR\r", OK),
        (b"0DIS\r", b"\x0200SI0.000W0.000UL\x03"),
        (b"0RAT10.00UM\r", OK),
        (b"0RAT\r", b"\x0200S10.00UM\x03"),
        (b"0VOLUL\r", OK),
        (b"0VOL50.00\r", OK),
        (b"0VOL\r", b"\x0200S50.00UL\x03"),
        (b"0DIRINF\r", OK),
        (b"0DIR\r", b"\x0200SINF\x03"),
        (b"0RUN\r", b"\x0200I\x03"),
        *thrice(b"0\r", b"\x0200I\x03"),
        *thrice(b"0\r", b"\x0200S\x03"),
        *twice(b"0DIS\r", b"\x0200SI50.00W0.000UL\x03"),
        # withdraw 20 uL at 5 uL/min, stopped early
        *stopped,
        (b"0CLDINF\r", OK),
        (b"0CLDWDR\r", OK),
        (b"0DIS\r", b"\x0200SI0.000W0.000UL\x03"),
        (b"0RAT5.000UM\r", OK),
        (b"0RAT\r", b"\x0200S5.000UM\x03"),
        (b"0VOLUL\r", OK),
        (b"0VOL20.00\r", OK),
        (b"0VOL\r", b"\x0200S20.00UL\x03"),
        (b"0DIRWDR\r", OK),
        (b"0DIR\r", b"\x0200SWDR\x03"),
        (b"0RUN\r", b"\x0200W\x03"),
        (b"0STP\r", b"\x0200P\x03"),
        (b"0STP\r", OK),
        *thrice(b"0\r", OK),
        *twice(b"0DIS\r", b"\x0200SI0.000W7.500UL\x03"),
    ]
    settings = {
        "address": 0,
        "syringe": {"inner_diameter": "4.699 mm", "volume": "1 mL", "contents": "0.5 mL"},
        "reagent": "sample",
        "safe_mode": "0 s",  # Basic mode, set explicitly (Safe mode is the default)
    }
    with expected_protocol(pairs) as t:
        p = make_newera("sample", device_settings("newera", **settings), t)
        p.connect()
        p.infuse(10, 50)
        assert p.is_running()
        assert not p.is_running()
        assert p.syringe.contents_ul == pytest.approx(450.0)
        p.withdraw(5, 20)
        p.stop()
        assert p.displaced_ul() == pytest.approx(-7.5)
        assert p.syringe.contents_ul == pytest.approx(457.5)


def test_safe_mode_is_on_by_default() -> None:
    """Issue 17: the default bench enabled no safe mode, so a killed controller left a pump
    infusing; now a New Era entry without `safe_mode` runs in Safe mode."""
    settings = device_settings("newera", address=0, reagent="sample", syringe={
        "inner_diameter": "4.699 mm", "volume": "1 mL", "contents": "0.5 mL"})
    assert settings.safe_mode_s == 5.0
    to_safe = safe(b"0SAF5")
    with expected_protocol([(to_safe, safe(b"00S")), (safe(b"0SAF"), safe(b"00S5"))]) as t:
        p = make_newera("sample", settings, t)
        p.driver.set_safe_mode(p.safe_mode_s)
        assert p.driver.heartbeat.alive
        p.driver.close()
        assert not p.driver.heartbeat.alive


def test_blind_stop_sends_stp_before_reading_anything() -> None:
    """The safe state's stop writes STP (twice: pause, then stop) before it reads, and is
    confirmed by the status that follows."""
    pairs = [(b"0STP\r0STP\r", b"\x0200P\x03\x0200S\x03"), (b"0\r", OK)]
    with expected_protocol(pairs) as t:
        assert pump(t).stop_blind() is True


def test_blind_stop_of_a_silent_pump_is_unconfirmed_and_does_not_raise() -> None:
    with expected_protocol([(b"0STP\r0STP\r", b""), (b"0\r", b"")] * 3) as t:
        assert pump(t).stop_blind() is False


def test_factory_reads_the_bench_entry_and_refuses_impossible_runs() -> None:
    entry = {
        "address": 3,
        "syringe": {"inner_diameter": "14.57 mm", "volume": "10 mL", "contents": "2.5 mL"},
        "reagent": "buffer",
        "baudrate": 19200,
        "safe_mode": "5 s",
    }
    with expected_protocol([]) as t:
        p = make_newera("buffer", device_settings("newera", **entry), t)
        assert (p.driver.address, p.safe_mode_s) == (3, 5)
        assert (p.syringe.inner_diameter_mm, p.syringe.volume_ul) == (14.57, 10000.0)
        assert (p.syringe.contents_ul, p.syringe.reagent) == (2500.0, "buffer")
        with pytest.raises(errors.OutOfRange):
            p.infuse(10.0, 3000.0)  # more than the syringe holds
        with pytest.raises(errors.OutOfRange):
            p.withdraw(10.0, 8000.0)  # more than it has room for
        with pytest.raises(errors.OutOfRange):
            p.infuse(0.0, 10.0)
        with pytest.raises(errors.OutOfRange):
            p.infuse(1e9, 10.0)  # no New Era unit can write this rate


def test_tiny_volume_is_refused_not_rounded_to_continuous() -> None:
    with expected_protocol([]) as t:
        p = make_newera("sample", device_settings("newera", syringe={"contents": "0.5 mL"}), t)
        with pytest.raises(errors.OutOfRange):
            p.infuse(1.0, 0.0004)


def test_two_alike_garbles_of_a_status_are_outvoted() -> None:
    # 'S' (0x53) with bit 2 flipped is 'W' (0x57): a stopped pump read as withdrawing, twice
    withdrawing, stopped = b"\x0200W\x03", b"\x0200S\x03"
    pairs = [(b"0\r", withdrawing)] * 2 + [(b"0\r", stopped)] * 3
    with expected_protocol(pairs) as t:
        assert pump(t).status().status == "S"
