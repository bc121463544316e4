"""The safe stop of pumps daisy-chained on one port: every pump's blind stop written first, then
each confirmed in turn, a reply from another address never taken as (or failing) this pump's
confirmation. Against the emulated chains over real sockets, and byte by byte."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from typing import Any

import pytest
from pumpsim import chain_rig, harvard_bench, ne_spec, newera_bench, running_pumps
from wire import expected_protocol

from chipctl.devices.rig import Rig
from drivers.exchange import OFF_TRIES, blind_offs
from drivers.newera import NewEraPump, safe_packet
from hardware_sim.newera import NewEraChain
from hardware_sim.world import World

ROUNDS = 5  # safe stops of a running chain per test: a crossing would show in any of them


def crossings(caplog: pytest.LogCaptureFixture) -> list[str]:
    """What the drivers said about a reply read by the wrong pump or a failed try."""
    return [r.getMessage() for r in caplog.records if r.levelno >= logging.INFO
            and r.name.startswith("drivers.") and r.name != "drivers.wire"
            and ("expected" in r.getMessage() or "off, try" in r.getMessage()
                 or "another address" in r.getMessage())]


def urgent_writes(caplog: pytest.LogCaptureFixture) -> list[str]:
    """The blind writes on the wire, in order (drivers.wire at DEBUG)."""
    return [r.getMessage() for r in caplog.records
            if r.name == "drivers.wire" and r.getMessage().endswith("(urgent)")]


def watch(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="drivers")
    caplog.set_level(logging.DEBUG, logger="drivers.wire")


def start(rig: Rig, *names: str) -> None:
    for name in names:
        rig.pumps[name].infuse(60.0)


@contextlib.contextmanager
def two_pump_chain(caplog: pytest.LogCaptureFixture) -> Iterator[tuple[World, NewEraChain, Rig]]:
    """New Era pumps `a` (address 0) and `b` (1) on one served port, connected, logs watched."""
    specs = [ne_spec("a", 0, fresh=False), ne_spec("b", 1, fresh=False)]
    with newera_bench(*specs) as (world, chain, transport):
        rig = chain_rig(transport, a=0, b=1)
        rig.connect()
        watch(caplog)
        yield world, chain, rig
        rig.close()


@pytest.mark.parametrize("broadcast", [False, True], ids=["safe stop", "emergency stop"])
def test_two_chained_pumps_are_both_confirmed_on_the_first_try(
        caplog: pytest.LogCaptureFixture, broadcast: bool) -> None:
    with two_pump_chain(caplog) as (world, _chain, rig):
        for _ in range(ROUNDS):
            start(rig, "a", "b")
            assert sorted(running_pumps(world)) == ["a", "b"]
            caplog.clear()
            stop = rig.safe_stop("test", broadcast=broadcast)
            assert running_pumps(world) == []
            pumps = [d for d in stop.devices if d.kind == "pump"]
            assert [(d.label, d.confirmed) for d in pumps] == [("a", True), ("b", True)]
            assert crossings(caplog) == []
            # one blind stop per pump (the first try), both written before any confirmation
            blind = urgent_writes(caplog)
            # an emergency stop sends the port's broadcast first (twice, in both framings)
            assert ["*STP" in m for m in blind] == [True] * 4 * broadcast + [False] * 2
            mine = blind[-2:]
            assert len(mine) == 2, blind
            assert repr(safe_packet(b"0STP") * 2) in mine[0]
            assert repr(safe_packet(b"1STP") * 2) in mine[1]
            for pump, model in ((rig.pumps["a"], world.pumps["a"]),
                                (rig.pumps["b"], world.pumps["b"])):
                assert pump.displaced_ul() == pytest.approx(model.infused_ul, abs=0.01)


@pytest.mark.parametrize("broadcast", [False, True], ids=["safe stop", "emergency stop"])
@pytest.mark.parametrize("unplugged", [0, 1])
def test_an_unplugged_pump_of_the_chain_does_not_fail_the_other(
        caplog: pytest.LogCaptureFixture, unplugged: int, broadcast: bool) -> None:
    healthy = 1 - unplugged
    with newera_bench(ne_spec("live", healthy, fresh=False)) as (world, _chain, transport):
        rig = chain_rig(transport, **{"live": healthy, "gone": unplugged})
        rig.pumps["live"].connect()  # the other pump is not on the chain any more
        watch(caplog)
        start(rig, "live")
        stop = rig.safe_stop("test", broadcast=broadcast)
        assert running_pumps(world) == []
        outcome = {d.label: (d.confirmed, d.error) for d in stop.devices if d.kind == "pump"}
        assert outcome == {"live": (True, ""),
                           "gone": (False, "sent, but the device never confirmed it")}
        assert [m for m in crossings(caplog) if m.startswith("live")] == []
        assert not any("expected" in m for m in crossings(caplog))
        blind = urgent_writes(caplog)
        assert len([m for m in blind if f"{healthy}STP" in m]) == 1  # confirmed at once
        assert len([m for m in blind if f"{unplugged}STP" in m]) == OFF_TRIES
        rig.close()


@pytest.mark.parametrize("garbled", [1, 2, 3])
def test_garbled_replies_on_the_chain_are_skipped_not_taken(
        caplog: pytest.LogCaptureFixture, garbled: int) -> None:
    with two_pump_chain(caplog) as (world, chain, rig):
        start(rig, "a", "b")
        chain.inject("garble", garbled)  # the next replies on the line, whichever pump's
        stop = rig.safe_stop("test")
        assert running_pumps(world) == []
        assert stop.failures == []
        assert not any("expected" in m or "another address" in m for m in crossings(caplog))


def test_a_harvard_daisy_chain_is_confirmed_on_the_first_try(
        caplog: pytest.LogCaptureFixture) -> None:
    specs = [ne_spec("a", 0, fresh=False), ne_spec("b", 3, fresh=False)]
    with harvard_bench(*specs) as (world, _chain, transport):
        rig = chain_rig(transport, "harvard", a=0, b=3)
        rig.connect()
        watch(caplog)
        for _ in range(ROUNDS):
            start(rig, "a", "b")
            caplog.clear()
            stop = rig.safe_stop("test")
            assert running_pumps(world) == []
            assert stop.failures == [] and crossings(caplog) == []
            assert [m.split(": -> ")[1] for m in urgent_writes(caplog)] == [
                "b'@stp\\r' (urgent)", "b'3@stp\\r' (urgent)"]
        rig.close()


# -- bytes ---------------------------------------------------------------------------------
def pumps(transport: Any) -> list[NewEraPump]:
    return [NewEraPump(transport, address, name=f"p{address}", retries=0)
            for address in (0, 1)]


def chain_stop(pairs: list[tuple[bytes, bytes | None]]) -> tuple[list[bool], list[Any]]:
    """The safe stop of pumps 0 and 1 (Basic mode) on a port playing `pairs`: which confirmed,
    and each pump's outcome in the order it was told."""
    told: list[tuple[int, bool]] = []
    with expected_protocol(pairs) as t:
        offs = [p.blind_stop() for p in pumps(t)]
        confirmed = blind_offs(offs, done=lambda i, ok: told.append((i, ok)))
    return confirmed, told


def test_every_blind_stop_goes_out_before_any_confirmation() -> None:
    """Both STP pairs are written first; then pump 0's status query meets pump 1's late reply
    first (skipped, not a failure), then its own."""
    pairs = [(b"0STP\r0STP\r", b"\x0200P\x03\x0200S\x03"),
             (b"1STP\r1STP\r", None),
             (b"0\r", b"\x0201P\x03\x0201S\x03\x0200S\x03"),
             (b"1\r", b"\x0201S\x03")]
    assert chain_stop(pairs) == ([True, True], [(0, True), (1, True)])


def test_a_reply_of_the_other_pump_is_never_its_confirmation() -> None:
    """Pump 1 is silent: pump 0's `S` is never read as pump 1's; pump 1 is tried again (its
    stop alone) and reported unconfirmed, pump 0 confirmed at once."""
    pairs = [(b"0STP\r0STP\r", None), (b"1STP\r1STP\r", None),
             (b"0\r", b"\x0200S\x03"), (b"1\r", b"\x0200S\x03")]
    pairs += [(b"1STP\r1STP\r", b"\x0200S\x03"), (b"1\r", b"\x0200S\x03")] * (OFF_TRIES - 1)
    assert chain_stop(pairs) == ([True, False], [(0, True), (1, False)])


def test_a_running_status_is_not_a_confirmation() -> None:
    pairs = [(b"0STP\r0STP\r", None), (b"0\r", b"\x0200I\x03"),
             (b"0STP\r0STP\r", None), (b"0\r", b"\x0200S\x03")]
    with expected_protocol(pairs) as t:
        assert pumps(t)[0].stop_blind() is True
