"""Exact bytes of every command the Harvard Ultra driver sends, and its reading of replies.

Expected bytes are written from the Pump 11 Elite manual's RS-232 reference
(device_protocols.md 1.2), not taken from the emulator.
"""

from __future__ import annotations

import pytest
from wire import expected_protocol, twice

from chipctl.config.devices import device_settings
from chipctl.devices.pumps import make_harvard
from drivers import errors
from drivers.harvard import HarvardPump, format_quantity, parse_quantity
from drivers.pump_units import harvard_rate

IDLE = b"\n:\x11"  # prompt, then XON in polling mode


def polled(transport, address: int = 0) -> HarvardPump:
    pump = HarvardPump(transport, address, name="ha", retries=0)
    pump.polling = True
    return pump


def thrice(sent: bytes, reply: bytes) -> list[tuple[bytes, bytes]]:
    """A status poll: its reply is a few bytes, so three in a row must agree."""
    return [(sent, reply)] * 3



def line(text: str, prompt: str = ":") -> bytes:
    return f"\n{text}\r\n{prompt}\x11".encode()


def test_connect_handshake() -> None:
    pairs = [
        (b"\r", b"\n:"),  # the manual's connection test
        (b"@poll on\r", IDLE),
        (b"@nvram off\r", IDLE),
        *twice(b"@ver\r", line("11 ELITE I/W Single 3.0.4")),
    ]
    with expected_protocol(pairs) as t:
        assert HarvardPump(t, 0, name="ha").connect() == "11 ELITE I/W Single 3.0.4"


def test_settings_are_read_back_and_queries_confirmed() -> None:
    pairs = [
        (b"@diameter 4.6990\r", IDLE),
        (b"@diameter\r", line("4.6990 mm")),  # read-back
        *twice(b"@diameter\r", line("4.6990 mm")),
        (b"@svolume 1000 ul\r", IDLE),
        (b"@svolume\r", line("1.0000 ml")),
        (b"@irate 12.345 u/m\r", IDLE),
        (b"@irate\r", line("12.345 ul/min")),
        *twice(b"@irate\r", line("12.345 ul/min")),
        (b"@wrate 2.5 m/h\r", IDLE),
        (b"@wrate\r", line("2.5000 ml/hr")),
        *twice(b"@wrate\r", line("2.5000 ml/hr")),
        (b"@tvolume 50 ul\r", IDLE),
        (b"@tvolume\r", line("50.000 ul")),
        *twice(b"@tvolume\r", line("50.000 ul")),
        (b"@ctvolume\r", IDLE),
        (b"@tvolume\r", line("Target volume not set")),
        *twice(b"@tvolume\r", line("Target volume not set")),
        (b"@cvolume\r", IDLE),
        (b"@ivolume\r", line("0.0000 ul")),
        (b"@wvolume\r", line("0.0000 ul")),
    ]
    with expected_protocol(pairs) as t:
        p = polled(t)
        p.set_diameter(4.699)
        assert p.diameter() == 4.699
        p.set_syringe_volume(1000)
        p.set_infuse_rate(12.345, "u/m")
        assert p.infuse_rate() == 12.345
        p.set_withdraw_rate(2.5, "m/h")
        assert p.withdraw_rate() == pytest.approx(2500 / 60)
        p.set_target_volume(50)
        assert p.target_volume() == 50.0
        p.clear_target()
        assert p.target_volume() is None
        p.clear_volumes()


def test_rate_that_reads_back_wrong_is_sent_again() -> None:
    pairs = [
        (b"@irate 12.345 u/m\r", IDLE),
        (b"@irate\r", line("13.345 ul/min")),  # a flipped bit
        (b"@irate 12.345 u/m\r", IDLE),
        (b"@irate\r", line("12.345 ul/min")),
    ]
    with expected_protocol(pairs) as t:
        polled(t).set_infuse_rate(12.345)


@pytest.mark.parametrize("value", [float("nan"), float("inf"), 0.0, -5.0, 1e12])
def test_impossible_values_are_typed_errors_before_sending(value: float) -> None:
    with expected_protocol([]) as t:
        p = polled(t)
        for call in (p.set_infuse_rate, p.set_target_volume, p.set_diameter,
                     p.set_syringe_volume):
            with pytest.raises(errors.OutOfRange):
                call(value)
        with pytest.raises(errors.OutOfRange):
            p.set_infuse_rate(5.0, "furlongs")


@pytest.mark.parametrize("text", ["1x.4500 mm", "14.5700 cm", "99.0000 mm", "14.57 mm mm", ""])
def test_garbled_diameter_is_typed(text: str) -> None:
    pairs = [(b"@diameter\r", line(text))] * 4
    with expected_protocol(pairs) as t, pytest.raises(errors.GarbledReply):
        polled(t).diameter()


def test_run_prompts_volumes_status_stop() -> None:
    status = line("166666667 1000 20000000000 I...IT", ">")
    pairs = [
        (b"@irun\r", b"\n>\x11"),
        *thrice(b"\r", b"\n>\x11"),
        *twice(b"@ivolume\r", line("1.2340 ml", ">")),
        *twice(b"@wvolume\r", line("0.0000 ul", ">")),
        *twice(b"@status\r", status),
        (b"@stp\r", IDLE),
        *thrice(b"\r", IDLE),  # the stop confirmed by the prompt
        (b"@wrun\r", b"\n<\x11"),
        *thrice(b"\r", b"\nT*\x11"),
    ]
    with expected_protocol(pairs) as t:
        p = polled(t)
        assert p.infuse().running
        assert p.poll().prompt == ">"
        assert p.infused_ul() == pytest.approx(1234.0)
        assert p.withdrawn_ul() == 0.0
        status = p.status()
        assert status.running and status.direction == "i" and status.target_reached
        assert status.rate_ul_min == pytest.approx(10.0, rel=1e-6)
        assert status.volume_ul == pytest.approx(20.0)
        assert p.stop().prompt == ":"
        assert p.withdraw().prompt == "<"
        assert p.poll().prompt == "T*"


def test_prompt_flipped_from_idle_to_infusing_is_outvoted() -> None:
    # ':' (0x3a) with bit 2 flipped is '>' (0x3e): an idle pump read as infusing
    pairs = [(b"\r", b"\n>\x11"), *thrice(b"\r", IDLE)]
    with expected_protocol(pairs) as t:
        assert polled(t).poll().prompt == ":"


def test_daisy_chain_prefixes() -> None:
    pairs = [
        (b"7@irate 5 u/m\r", b"\n07:\x11"),
        (b"7@irate\r", b"\n07:5.0000 ul/min\r\n07:\x11"),
        *twice(b"7@ivolume\r", b"\n07:3.0000 ul\r\n07>\x11"),
        *[(b"7\r", b"\n03>\x11")] * 5,  # another pump's prompt
        *[(b"7@ivolume\r", b"\n03:3.0000 ul\r\n07>\x11")] * 4,  # another pump's line
    ]
    with expected_protocol(pairs) as t:
        p = polled(t, 7)
        p.set_infuse_rate(5)
        assert p.infused_ul() == 3.0
        with pytest.raises(errors.GarbledReply):
            p.poll()
        with pytest.raises(errors.GarbledReply):
            p.infused_ul()


@pytest.mark.parametrize(
    ("reply", "kind"),
    [
        (b"\nCommand error:\r\n   Unknown command\r\n:\x11", errors.CommandRejected),
        (b"\nCommand error:\r\n   Not allowed while running\r\n>\x11", errors.DeviceBusy),
        (b"\nArgument error: 99 u/m\r\n   Out of range\r\n:\x11", errors.OutOfRange),
        (b"\nArgument error: [on]\r\n   Unknown argument\r\n:\x11", errors.CommandRejected),
    ],
)
def test_errors_are_typed(reply: bytes, kind: type[Exception]) -> None:
    with expected_protocol([(b"@irate 99 u/m\r", reply)]) as t, pytest.raises(kind):
        polled(t).set_infuse_rate(99)


def test_stall_prompt_raises() -> None:
    pairs = [*thrice(b"\r", b"\n*\x11"), (b"@irun\r", b"\n*\x11")]
    with expected_protocol(pairs) as t:
        p = polled(t)
        with pytest.raises(errors.PumpStalled):
            p.poll()
        with pytest.raises(errors.PumpStalled):
            p.infuse()


def test_leaked_prompt_before_the_reply_is_ignored() -> None:
    pairs = [(b"@ivolume\r", b"T*\n2.0000 ul\r\nT*\x11"), (b"@ivolume\r", line("2.0000 ul"))]
    with expected_protocol(pairs) as t:
        assert polled(t).infused_ul() == 2.0


@pytest.mark.parametrize("reply", [b"\n2.0000 zz\r\n:\x11", b"\n2.0000 ul\r\n12:\x11",
                                   b"xx\n2.0000 ul\r\n:\x11", b"\n2.0000 ul/min\r\n:\x11",
                                   b"\n2.00\x0100 ul\r\n:\x11"])
def test_garbled_replies_are_refused(reply: bytes) -> None:
    pairs = [(b"@ivolume\r", reply)] * 4
    with expected_protocol(pairs) as t, pytest.raises(errors.GarbledReply):
        polled(t).infused_ul()


def test_lost_polling_mode_is_re_established() -> None:
    pairs = [
        (b"@ivolume\r", b"\n0.0000 ul\r\n:"),  # no XON: polling was lost (power cycle)
        (b"\r", b"\n:"),
        (b"@poll on\r", IDLE),
        *twice(b"@ivolume\r", line("0.0000 ul")),
    ]
    with expected_protocol(pairs) as t:
        p = polled(t)
        assert p.infused_ul() == 0.0
        assert p.resyncs == 1


def test_quantities() -> None:
    assert format_quantity(12.345) == "12.345"
    assert format_quantity(0.00012) == "0.00012"
    assert format_quantity(1000) == "1000"
    assert parse_quantity("12.345 ul/min") == 12.345
    assert parse_quantity("1.5 ml/hr") == 25.0
    assert parse_quantity("500 nl") == 0.5
    assert harvard_rate(5.0) == (5.0, "u/m")
    assert harvard_rate(0.05) == (50.0, "n/m")
    assert harvard_rate(20000.0) == (20.0, "m/m")


def test_adapter_exchanges() -> None:
    settings = {
        "address": 2,
        "syringe": {"inner_diameter": "14.57 mm", "volume": "10 mL", "contents": "5 mL"},
    }
    ok = b"\n02:\x11"

    def at(text: str, prompt: str = ":") -> bytes:
        return f"\n02:{text}\r\n02{prompt}\x11".encode()

    stopped = [(b"2@stp\r", ok), *thrice(b"2\r", ok)]
    cleared = [(b"2@cvolume\r", ok), (b"2@ivolume\r", at("0.0000 ul")),
               (b"2@wvolume\r", at("0.0000 ul"))]
    pairs = [
        (b"2\r", b"\n02:"),
        (b"2@poll on\r", ok),
        (b"2@nvram off\r", ok),
        *twice(b"2@ver\r", at("PHD ULTRA 3.0.5")),
        *stopped,
        (b"2@diameter 14.5700\r", ok),
        (b"2@diameter\r", at("14.5700 mm")),
        (b"2@svolume 10000 ul\r", ok),
        (b"2@svolume\r", at("10.000 ml")),
        # infuse 100 uL at 50 uL/min
        *stopped,
        *cleared,
        (b"2@irate 50 u/m\r", ok),
        (b"2@irate\r", at("50.000 ul/min")),
        (b"2@tvolume 100 ul\r", ok),
        (b"2@tvolume\r", at("100.00 ul")),
        (b"2@irun\r", b"\n02>\x11"),
        *thrice(b"2\r", b"\n02>\x11"),
        *thrice(b"2\r", b"\n02T*\x11"),
        *twice(b"2@ivolume\r", at("100.00 ul", "T*")),
        *twice(b"2@wvolume\r", at("0.0000 ul", "T*")),
        # withdraw until stopped
        *stopped,
        *cleared,
        (b"2@wrate 50 n/m\r", ok),  # 0.05 uL/min in nL/min
        (b"2@wrate\r", at("50.000 nl/min")),
        (b"2@ctvolume\r", ok),
        (b"2@tvolume\r", at("Target volume not set")),
        (b"2@wrun\r", b"\n02<\x11"),
        *stopped,
        *twice(b"2@ivolume\r", at("0.0000 ul")),
        *twice(b"2@wvolume\r", at("1.5000 ul")),
    ]
    with expected_protocol(pairs) as t:
        p = make_harvard("buffer", device_settings("harvard", **settings), t)
        p.connect()
        assert p.version == "PHD ULTRA 3.0.5"
        p.infuse(50.0, 100.0)
        assert p.is_running()
        assert not p.is_running()
        assert p.syringe.contents_ul == pytest.approx(4900.0)
        p.withdraw(0.05)
        p.stop()
        assert p.displaced_ul() == pytest.approx(-1.5)
        assert p.syringe.contents_ul == pytest.approx(4901.5)
