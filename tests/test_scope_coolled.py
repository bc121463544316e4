"""CoolLED pE-300 / pE-4000: exact bytes of the driver, and the driver against the emulator."""

from __future__ import annotations

import pytest
from scope_support import ManualClock, served, serving
from wire import expected_protocol, twice

from chipctl.config.devices import device_settings
from chipctl.devices.illuminator import make_coolled
from chipctl.devices.interfaces import Illuminator
from drivers.coolled import ChannelState, CoolLed, format_css, parse_css
from drivers.errors import (
    CommandRejected,
    DeviceTimeout,
    GarbledReply,
    OutOfRange,
    SetpointMismatch,
)
from drivers.transport import SerialTransport
from hardware_sim.coolled import GREETING, CoolLedEmulator
from hardware_sim.world import World

OFF3 = b"CSSAXF000BXF000CXF000\r\n"


def test_css_parse_and_format_round_trip() -> None:
    state = parse_css("CSSASN050BXF000CSF100")
    assert state == {
        "A": ChannelState(True, True, 50),
        "B": ChannelState(False, False, 0),
        "C": ChannelState(True, False, 100),
    }
    assert state["A"].emitting and not state["C"].emitting
    assert format_css(state) == "CSSASN050BXF000CSF100"
    with pytest.raises(ValueError):
        parse_css("CSSASN05")



def test_driver_bytes_for_every_command() -> None:
    with expected_protocol(
        [
            *twice(b"XMODEL\r", b"XMODEL pE-300\r\n"),
            *twice(b"CSS?\r", OFF3),
            (b"CSSASN050BXF000CXF000\r", b"CSSASN050BXF000CXF000\r\n"),  # its own read-back
            (b"CBS\r", b"CSSASN050BSF000CXF000\r\n"),
            (b"CSS?\r", b"CSSASN050BSF000CXF000\r\n"),  # read-back
            (b"CBI75\r", b"CSSASN050BSF075CXF000\r\n"),
            (b"CSS?\r", b"CSSASN050BSF075CXF000\r\n"),
            (b"CSN\r", b"CSSASN050BSN075CXF000\r\n"),
            (b"CSS?\r", b"CSSASN050BSN075CXF000\r\n"),
            (b"CSF\r", b"CSSASF050BSF075CXF000\r\n"),
            (b"CSS?\r", b"CSSASF050BSF075CXF000\r\n"),
            (b"CBX\r", b"CSSASF050BXF075CXF000\r\n"),
            (b"CSS?\r", b"CSSASF050BXF075CXF000\r\n"),
            (b"XVER\r", b"XVER A=1\r\nXVER B=2\r\nXVER C=3\r\nXVER D=4\r\n"),
        ],
        initial=GREETING, timeout=0.2) as transport:
        led = CoolLed(transport)
        assert led.connect() == "pE-300"
        assert led.channels == ("A", "B", "C")
        state = led.set_state(
            {
                "A": ChannelState(True, True, 50),
                "B": ChannelState(False, False, 0),
                "C": ChannelState(False, False, 0),
            }
        )
        assert state["A"].emitting
        led.select("B")
        led.set_intensity("B", 75)
        led.on()
        led.off()
        led.deselect("B")
        assert led.versions() == ["XVER A=1", "XVER B=2", "XVER C=3", "XVER D=4"]


def test_pe4000_lams_and_five_version_lines() -> None:
    with expected_protocol(
        [
            *twice(b"XMODEL\r", b"XMODEL pE-4000\r\n"),
            *twice(b"CSS?\r", b"CSSAXF000BXF000CXF000DXF000\r\n"),
            *twice(b"LAMS\r", b"LAM:A:470\r\nLAM:B:550\r\nLAM:C:635\r\nLAM:D:740\r\n"),
            (b"XVER\r", b"XVER 1\r\nXVER 2\r\nXVER 3\r\nXVER 4\r\nXVER 5\r\n"),
        ], timeout=0.2) as transport:
        led = CoolLed(transport)
        led.connect()
        assert led.channels == ("A", "B", "C", "D")
        assert led.wavelengths() == {"A": 470, "B": 550, "C": 635, "D": 740}
        assert len(led.versions()) == 5


def test_greeting_between_request_and_reply_is_skipped() -> None:
    script = [(b"CSS?\r", GREETING + OFF3), (b"CSS?\r", OFF3)]
    with expected_protocol(script, timeout=0.2) as transport:
        assert CoolLed(transport).state()["A"] == ChannelState(False, False, 0)


def test_bad_replies_are_typed_errors() -> None:
    with expected_protocol(
        [
            *[(b"CSS?\r", b"CSSAXF0\r\n")] * 4,  # never a state line
            (b"CAQ\r", b"?CAQ\r\n"),
            (b"CSS?\r", b""),
            *[(b"CSSASN050\r", b"CSSAXF050BXF000CXF000\r\n")] * 3,
        ], timeout=0.2) as transport:
        led = CoolLed(transport, timeout=0.2, retries=0)
        with pytest.raises(GarbledReply):
            led.state()
        with pytest.raises(CommandRejected):
            led._request("CAQ")
        with pytest.raises(DeviceTimeout):
            led.state()
        with pytest.raises(SetpointMismatch):  # the unit did not do what was asked, three times
            led.set_state({"A": ChannelState(True, True, 50)})
        with pytest.raises(OutOfRange):
            led.set_intensity("A", 101)


@pytest.mark.parametrize(
    "line", [b"CSSASN050ASN050\r\n", b"CSSASN150BXF000CXF000\r\n", b"CSSASN0\x3150\r",
             b"CSSASN050BXF000CXF00\x80\r\n"],
    ids=["repeated channel", "above 100 %", "no LF", "not text"])
def test_impossible_state_lines_are_garbled(line: bytes) -> None:
    script = [(b"CSS?\r", line)] * 4
    with expected_protocol(script, timeout=0.2, exhaustive=False) as transport, \
            pytest.raises((GarbledReply, DeviceTimeout)):
        CoolLed(transport, timeout=0.05, retries=0).state()


def test_flipped_on_bit_is_outvoted() -> None:
    # 'F' (0x46) with bit 3 flipped is 'N' (0x4e): a dark channel read as on
    lit = b"CSSASN050BXF000CXF000\r\n"
    with expected_protocol([(b"CSS?\r", lit), *twice(b"CSS?\r", OFF3)], timeout=0.2) as transport:
        assert not any(s.on for s in CoolLed(transport).state().values())


def test_all_off_is_sent_first_and_confirmed() -> None:
    with expected_protocol([(b"CSF\r", b"CSSASF050BXF000CXF000\r\n")], timeout=0.2) as transport:
        assert CoolLed(transport).all_off() is True


def test_all_off_asks_for_the_state_when_the_reply_is_not_one() -> None:
    with expected_protocol([(b"CSF\r", b"OK\r\n"), (b"CSS?\r", OFF3)], timeout=0.2) as transport:
        assert CoolLed(transport).all_off() is True


def test_all_off_on_a_silent_unit_sends_every_try_and_reports_unconfirmed() -> None:
    with expected_protocol([(b"CSF\r", b"")] * 3, timeout=0.2) as transport:
        assert CoolLed(transport, timeout=0.05).all_off(attempts=3) is False
        # and (leaving the block) three CSF went out, nothing was read first


def test_all_off_reads_past_stale_input_to_its_confirmation() -> None:
    """The soak's "never confirmed": the late replies of a request that gave up (the light
    still on in them, and the leftover newline of one cut short) were waiting when the off
    went out; each try read one stale line as its answer and all three failed. A state line
    with a channel on cannot answer CSF, so it is skipped, as is the noise: one try."""
    lit = b"CSSASN050BXF000CXF000\r\n"
    with expected_protocol([(b"CSF\r", OFF3)], initial=b"\n" + lit * 3,
                           timeout=0.2) as transport:
        assert CoolLed(transport).all_off(attempts=3) is True


def test_all_off_accepts_the_confirmation_of_an_earlier_try() -> None:
    """The first CSF's answer missed its try's wait and arrives during the next try, with
    that try's own: the late one is taken as the confirmation (nothing on: it is one), and
    the next request reads its own reply, not the leftover."""
    armed = b"CSSASF050BXF000CXF000\r\n"
    with expected_protocol([(b"CSF\r", None), (b"CSF\r", OFF3 + OFF3),
                            *twice(b"CSS?\r", armed)], timeout=0.2) as transport:
        led = CoolLed(transport, timeout=0.05)
        assert led.all_off(attempts=3) is True
        assert led.state()["A"] == ChannelState(True, False, 50)


def test_adapter_bytes_light_and_dark() -> None:
    with expected_protocol(
        [
            *twice(b"XMODEL\r", b"XMODEL pE-300\r\n"),
            *twice(b"CSS?\r", OFF3),
            (b"XVER\r", b"XVER MAINBOARD=1.4.2\r\nXVER HARDWARE=3\r\nXVER DATA=2.0\r\n"
                         b"XVER POD=1.1\r\n"),
            (b"CSF\r", OFF3),  # dark at connect: blind, nothing read first
            *twice(b"CSS?\r", OFF3),  # then, off already: nothing left selected (armed)
            *twice(b"CSS?\r", OFF3),
            (b"CSSAXF000BXF000CSN040\r", b"CSSAXF000BXF000CSN040\r\n"),
            *twice(b"CSS?\r", b"CSSAXF000BXF000CSN040\r\n"),
        ], timeout=0.2) as transport:
        settings = device_settings("coolled", channels={"AF488": "A", "AF647": "C"})
        led = make_coolled("led", settings, transport)
        assert isinstance(led, Illuminator)
        led.connect()
        assert led.model == "pE-300" and led.firmware.startswith("XVER MAINBOARD=1.4.2; ")
        led.light("AF647", 40)
        assert led.state() == {"AF488": (False, 0.0), "AF647": (True, 40.0)}
        with pytest.raises(OutOfRange):
            led.light("DAPI", 10)


@pytest.mark.parametrize("kind", ["tcp", "pty"])
def test_adapter_against_emulator(kind: str) -> None:
    world = World(clock=ManualClock())  # type: ignore[arg-type]
    emulator = CoolLedEmulator(world, "led", model="pE-4000")
    with served(emulator, world.lock, kind) as url:
        settings = device_settings("coolled", channels={"AF488": "A", "AF555": "B", "AF647": "C"})
        led = make_coolled("led", settings, SerialTransport(url))
        led.connect()
        try:
            assert led.driver.model == "pE-4000"
            led.light("AF555", 65)
            assert led.state()["AF555"] == (True, 65.0)
            assert emulator.emission() == [("B", 550.0, 65.0)]
            led.light("AF488", 20)
            assert led.state() == {
                "AF488": (True, 20.0),
                "AF555": (False, 65.0),
                "AF647": (False, 0.0),
            }
            led.driver.set_intensity("A", 90)
            assert emulator.emission() == [("A", 470.0, 90.0)]
            emulator.inject("reset")  # greeting sent again, light off: the driver copes
            assert led.state()["AF488"] == (False, 0.0)
            led.dark()
            assert emulator.emission() == []
            assert world.devices["led"] is emulator
        finally:
            led.close()


def test_led_lockup_dark_still_switches_the_light_off() -> None:
    """Issue 17: after an LED link fault `dark()` read the state first; the read timed out and
    no off command was ever sent (the LED stayed at 100 %). Now the off goes out blindly."""
    world = World(clock=ManualClock())  # type: ignore[arg-type]
    emulator = CoolLedEmulator(world, "led")
    with serving(emulator, world.lock, "tcp") as endpoint:
        settings = device_settings("coolled", channels={"AF488": "A"}, timeout="0.2 s")
        led = make_coolled("led", settings, SerialTransport(endpoint.url))
        led.connect()
        try:
            led.light("AF488", 100)
            assert emulator.emission() == [("A", 470.0, 100.0)]
            endpoint.faults.arm("lockup", 1)  # the unit hears commands but never answers
            with pytest.raises(DeviceTimeout, match="never confirmed"):
                led.dark()
            assert emulator.emission() == []  # off, though it could not say so
            assert led.off() is False  # the safe state's off: unconfirmed, no exception
        finally:
            led.close()


def test_dark_after_the_late_replies_of_a_retried_light() -> None:
    """Against the emulator: a light request whose replies came too late (sent three times,
    never read) leaves three lit state lines in the input ahead of the off's answer; dark()
    still confirms, the unit is dark, and the next request reads its own reply."""
    world = World(clock=ManualClock())  # type: ignore[arg-type]
    emulator = CoolLedEmulator(world, "led")
    with serving(emulator, world.lock, "tcp") as endpoint:
        settings = device_settings("coolled", channels={"AF488": "A"})
        transport = SerialTransport(endpoint.url)
        led = make_coolled("led", settings, transport)
        led.connect()
        try:
            for _ in range(3):  # what set_state's retries sent; their replies were given up
                transport.write(b"CSSASN050BXF000CXF000\r")
            led.dark()
            assert emulator.emission() == [] and emulator.armed() == []
            assert led.state() == {"AF488": (False, 50.0)}
        finally:
            led.close()


def test_emulator_semantics() -> None:
    world = World(clock=ManualClock())  # type: ignore[arg-type]
    led = CoolLedEmulator(world, "led")
    assert led.connected() == GREETING
    assert led.receive(b"CAI150\n") == b"CSSAXF100BXF000CXF000\r\n"  # clamps
    assert led.receive(b"CSN\r\n") == b"CSSAXF100BXF000CXF000\r\n"  # unselected stays off
    led.receive(b"CAS\rCSN\r")
    assert led.emission() == [("A", 470.0, 100.0)]
    assert led.receive(b"XMODEL\r") == b"XMODEL pE-300\r\n"
    assert led.receive(b"XVER\r").count(b"\r\n") == 4
    assert led.receive(b"CZZ\r") == b"?CZZ\r\n"
    assert led.receive(b"CA?\r") == b"CA100\r\n"
