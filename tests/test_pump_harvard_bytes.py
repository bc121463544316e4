"""Exact bytes of every command the Harvard Ultra driver sends, and its reading of replies.

Expected bytes are written from the Pump 11 Elite manual's RS-232 reference
(device_protocols.md 1.2), not taken from the emulator.
"""

from __future__ import annotations

import pytest
from wire import expected_protocol

from chipctl.config.devices import device_settings
from chipctl.devices.pumps import make_harvard
from drivers import errors
from drivers.harvard import HarvardPump, format_quantity, parse_quantity, rate_in_units

IDLE = b"\n:\x11"  # prompt, then XON in polling mode


def polled(transport, address: int = 0) -> HarvardPump:
    pump = HarvardPump(transport, address, name="ha", retries=0)
    pump.polling = True
    return pump


def test_connect_handshake() -> None:
    pairs = [
        (b"\r", b"\n:"),  # the manual's connection test
        (b"@poll on\r", IDLE),
        (b"@nvram off\r", IDLE),
        (b"@ver\r", b"\n11 ELITE I/W Single 3.0.4\r\n:\x11"),
    ]
    with expected_protocol(pairs) as t:
        assert HarvardPump(t, 0, name="ha").connect() == "11 ELITE I/W Single 3.0.4"


def test_settings_commands() -> None:
    pairs = [
        (b"@diameter 4.6990\r", IDLE),
        (b"@diameter\r", b"\n4.6990 mm\r\n:\x11"),
        (b"@svolume 1000 ul\r", IDLE),
        (b"@irate 12.345 u/m\r", IDLE),
        (b"@irate\r", b"\n12.345 ul/min\r\n:\x11"),
        (b"@wrate 2.5 m/h\r", IDLE),
        (b"@wrate\r", b"\n2.5000 ml/hr\r\n:\x11"),
        (b"@tvolume 50 ul\r", IDLE),
        (b"@tvolume\r", b"\n50.000 ul\r\n:\x11"),
        (b"@ctvolume\r", IDLE),
        (b"@tvolume\r", b"\nTarget volume not set\r\n:\x11"),
        (b"@cvolume\r", IDLE),
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


def test_run_prompts_volumes_status_stop() -> None:
    pairs = [
        (b"@irun\r", b"\n>\x11"),
        (b"\r", b"\n>\x11"),
        (b"@ivolume\r", b"\n1.2340 ml\r\n>\x11"),
        (b"@wvolume\r", b"\n0.0000 ul\r\n>\x11"),
        (b"@status\r", b"\n166666667 1000 20000000000 I...IT\r\n>\x11"),
        (b"@stp\r", IDLE),
        (b"@wrun\r", b"\n<\x11"),
        (b"\r", b"\nT*\x11"),
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


def test_daisy_chain_prefixes() -> None:
    pairs = [
        (b"7@irate 5 u/m\r", b"\n07:\x11"),
        (b"7@ivolume\r", b"\n07:3.0000 ul\r\n07>\x11"),
        (b"7\r", b"\n03>\x11"),  # another pump's prompt
        (b"7@ivolume\r", b"\n03:3.0000 ul\r\n07>\x11"),  # another pump's line
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
    pairs = [(b"\r", b"\n*\x11"), (b"@irun\r", b"\n*\x11")]
    with expected_protocol(pairs) as t:
        p = polled(t)
        with pytest.raises(errors.PumpStalled):
            p.poll()
        with pytest.raises(errors.PumpStalled):
            p.infuse()


def test_leaked_prompt_before_the_reply_is_ignored() -> None:
    with expected_protocol([(b"@ivolume\r", b"T*\n2.0000 ul\r\nT*\x11")]) as t:
        assert polled(t).infused_ul() == 2.0


@pytest.mark.parametrize("reply", [b"\n2.0000 zz\r\n:\x11", b"\n2.0000 ul\r\n12:\x11"])
def test_garbled_replies_are_refused(reply: bytes) -> None:
    with expected_protocol([(b"@ivolume\r", reply)]) as t, pytest.raises(errors.GarbledReply):
        polled(t).infused_ul()


def test_lost_polling_mode_is_re_established() -> None:
    pairs = [
        (b"@ivolume\r", b"\n0.0000 ul\r\n:"),  # no XON: polling was lost (power cycle)
        (b"\r", b"\n:"),
        (b"@poll on\r", IDLE),
        (b"@ivolume\r", b"\n0.0000 ul\r\n:\x11"),
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
    assert rate_in_units(5.0) == (5.0, "u/m")
    assert rate_in_units(0.05) == (50.0, "n/m")
    assert rate_in_units(20000.0) == (20.0, "m/m")


def test_adapter_exchanges() -> None:
    settings = {
        "address": 2,
        "syringe": {"inner_diameter": "14.57 mm", "volume": "10 mL", "contents": "5 mL"},
    }
    ok = b"\n02:\x11"
    pairs = [
        (b"2\r", b"\n02:"),
        (b"2@poll on\r", ok),
        (b"2@nvram off\r", ok),
        (b"2@ver\r", b"\n02:PHD ULTRA 3.0.5\r\n02:\x11"),
        (b"2@stp\r", ok),
        (b"2@diameter 14.5700\r", ok),
        (b"2@svolume 10000 ul\r", ok),
        # infuse 100 uL at 50 uL/min
        (b"2@stp\r", ok),
        (b"2@cvolume\r", ok),
        (b"2@irate 50 u/m\r", ok),
        (b"2@tvolume 100 ul\r", ok),
        (b"2@irun\r", b"\n02>\x11"),
        (b"2\r", b"\n02>\x11"),
        (b"2\r", b"\n02T*\x11"),
        (b"2@ivolume\r", b"\n02:100.00 ul\r\n02T*\x11"),
        (b"2@wvolume\r", b"\n02:0.0000 ul\r\n02T*\x11"),
        # withdraw until stopped
        (b"2@stp\r", ok),
        (b"2@cvolume\r", ok),
        (b"2@wrate 50 n/m\r", ok),  # 0.05 uL/min in nL/min
        (b"2@ctvolume\r", ok),
        (b"2@wrun\r", b"\n02<\x11"),
        (b"2@stp\r", ok),
        (b"2@ivolume\r", b"\n02:0.0000 ul\r\n02:\x11"),
        (b"2@wvolume\r", b"\n02:1.5000 ul\r\n02:\x11"),
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
