"""The emulated VICI universal actuator: its replies as the manual gives them, its rotor on the
virtual clock, and the driver against it over a real socket and a pseudo-terminal."""

from __future__ import annotations

import sys

import pytest
import yaml
from fakes import OFFLINE_BENCH, make_runner
from scope_support import ManualClock, serving

from chipctl.config.bench import Bench
from chipctl.devices.registry import DRIVERS
from chipctl.run.events import RunState
from drivers.transport import SerialTransport
from drivers.vici import ViciValve
from hardware_sim.clock import VirtualClock
from hardware_sim.endpoints import TcpEndpoint
from hardware_sim.vici import STEP_S, ViciValveEmulator, add_to_bench
from hardware_sim.world import World


@pytest.fixture
def still() -> tuple[ManualClock, ViciValveEmulator]:
    clock = ManualClock()
    world = World(clock=clock)  # type: ignore[arg-type]
    emulator = ViciValveEmulator(world, "valve", positions=10)
    assert emulator.receive(b"IFM0\r") == b""  # no end-of-move lines between the replies
    return clock, emulator


def ask(emulator: ViciValveEmulator, text: str) -> bytes:
    return emulator.receive(text.encode("ascii") + b"\r")


# -- the emulator, from the manual ------------------------------------------------------------
def test_factory_settings() -> None:
    emu = ViciValveEmulator(World(clock=ManualClock()), "valve")  # type: ignore[arg-type]
    assert emu.receive(b"IFM\rLG\rSO\rID\r") == b"IFM1\rLG0\rSO01\rID*\r"


def test_queries_answer_as_the_manual_shows(still) -> None:
    _, emu = still
    assert ask(emu, "AM") == b"AM3\r"
    assert ask(emu, "NP") == b"NP10\r"
    assert ask(emu, "SO") == b"SO01\r"
    assert ask(emu, "CP") == b"CP01\r"
    assert ask(emu, "SM") == b"SMA\r"
    assert ask(emu, "VR") == b"Dec 15 2011\r15:02:20\rUA_MAIN_CT\r"
    assert emu.receive(b"cp\r\n") == b"CP01\r"  # case and a trailing line feed do not matter


def test_settings_answer_nothing_and_take_effect(still) -> None:
    _, emu = still
    for command in ("IFM0", "SMF", "NP12", "SO5", "CNT100", "LG0"):
        assert ask(emu, command) == b""
    assert ask(emu, "IFM") + ask(emu, "SM") + ask(emu, "NP") == b"IFM0\rSMF\rNP12\r"
    assert ask(emu, "SO") + ask(emu, "CP") + ask(emu, "CNT") == b"SO05\rCP05\rCNT100\r"


def test_invalid_settings_are_ignored(still) -> None:
    _, emu = still
    for command in ("NP7", "NP42", "NP0", "SO90", "AM4", "SMX", "IFM3"):
        assert ask(emu, command) == b""
    assert ask(emu, "NP") + ask(emu, "SO") + ask(emu, "AM") == b"NP10\rSO01\rAM3\r"
    assert ask(emu, "SM") + ask(emu, "IFM") == b"SMA\rIFM0\r"


def test_the_rotor_steps_one_position_per_step_time(still) -> None:
    clock, emu = still
    assert ask(emu, "GO6") == b""  # 1 -> 6 on ten positions: five either way, forward on a tie
    assert ask(emu, "CP") == b"CP01\r" and emu.selected_port() is None
    clock.t = 2.5 * STEP_S
    assert ask(emu, "CP") == b"CP03\r"
    clock.t = 5 * STEP_S
    assert ask(emu, "CP") == b"CP06\r" and emu.selected_port() == 6
    assert ask(emu, "CNT") == b"CNT5\r"


def test_direction_decides_the_route_and_the_time(still) -> None:
    clock, emu = still
    ask(emu, "GO9")  # shortest route from 1: down through 10, two positions
    clock.t = 2 * STEP_S
    assert emu.selected_port() == 9
    ask(emu, "SMF")
    ask(emu, "GO8")  # forward only: 9 -> 10 -> 1 ... -> 8, nine positions
    clock.t = 10 * STEP_S
    assert emu.selected_port() is None
    clock.t = 11 * STEP_S
    assert emu.selected_port() == 8
    ask(emu, "CC7")  # counterclockwise: one position down whatever SM says
    clock.t = 12 * STEP_S
    assert emu.selected_port() == 7
    assert ask(emu, "CNT") == b"CNT12\r"


def test_moves_outside_the_ports_or_while_turning_are_ignored(still) -> None:
    clock, emu = still
    for command in ("GO11", "GO0", "GOX", "CW12"):
        ask(emu, command)
        clock.t += 10 * STEP_S
        assert emu.selected_port() == 1
    ask(emu, "GO3")
    ask(emu, "GO8")  # while turning to 3
    clock.t += 10 * STEP_S
    assert emu.selected_port() == 3


def test_offset_renumbers_the_ports(still) -> None:
    clock, emu = still
    ask(emu, "SO10")
    assert ask(emu, "CP") == b"CP10\r"
    ask(emu, "GO3")  # now outside 10..19
    ask(emu, "GO13")
    clock.t = 3 * STEP_S
    assert emu.selected_port() == 13
    ask(emu, "HM")
    clock.t = 6 * STEP_S
    assert ask(emu, "CP") == b"CP10\r"


def test_ifm1_reports_the_end_of_a_move(still) -> None:
    clock, emu = still
    ask(emu, "IFM1")
    assert ask(emu, "GO2") == b""
    assert emu.poll() == b""
    clock.t = STEP_S
    assert emu.poll() == b"CP02\r"
    assert emu.poll() == b""


def test_device_id_prefix_and_broadcast(still) -> None:
    _, emu = still
    assert ask(emu, "ID5") == b""
    assert ask(emu, "CP") == b"" and ask(emu, "4CP") == b""
    assert ask(emu, "5CP") == b"5CP01\r"
    assert ask(emu, "*AM") == b"5AM3\r"
    assert ask(emu, "5ID") == b"5ID5\r"
    assert ask(emu, "*ID*") == b""
    assert ask(emu, "CP") == b"CP01\r"


def test_lg1_adds_the_equals_sign(still) -> None:
    _, emu = still
    ask(emu, "LG1")
    assert ask(emu, "CP") + ask(emu, "NP") == b"CP = 01\rNP = 10\r"


def test_commands_of_the_other_mode_are_invalid(still) -> None:
    _, emu = still
    assert ask(emu, "TO") == b"E2 TO Invalid\r"
    assert ask(emu, "LRN") == b"E2 LRN Invalid\r"
    ask(emu, "AM1")
    assert ask(emu, "HM") == b"E2 HM Invalid\r"
    assert ask(emu, "SMF") == b"E2 SM Invalid\r"
    assert ask(emu, "NP8") == b"E2 NP Invalid\r"
    assert ask(emu, "CP") == b"CPA\r"
    assert ask(emu, "XYZ") == b""  # not in the manual's list: ignored


def test_device_faults(still) -> None:
    clock, emu = still
    emu.inject("stall")
    ask(emu, "GO7")  # 1 -> 7: four down, stalls after two
    clock.t = 10 * STEP_S
    assert emu.selected_port() == 9
    emu.inject("lockup")
    assert ask(emu, "CP") == b"" and emu.poll() == b""
    emu.inject("power_cycle")
    assert ask(emu, "CP") == b"CP09\r"  # the rotor stays where it stopped
    with pytest.raises(ValueError, match="known: stall"):
        emu.inject("melt")


# -- the driver against the emulator ----------------------------------------------------------
WIRES = ["tcp"] + (["pty"] if sys.platform != "win32" else [])


@pytest.mark.parametrize("wire", WIRES)
def test_driver_selects_every_port_over_a_real_wire(wire: str) -> None:
    world = World(VirtualClock(speed=20.0))
    emu = ViciValveEmulator(world, "valve", positions=10)
    with serving(emu, world.lock, wire) as endpoint:
        driver = ViciValve(SerialTransport(endpoint.url, timeout=1.0), "valve", positions=10,
                           timeout=1.0)
        assert driver.connect() == "Dec 15 2011 15:02:20 UA_MAIN_CT"
        assert emu.reply_mode == 0  # connect silenced the replies to moves
        for port in (4, 9, 2, 10, 1):
            driver.select(port)
            assert emu.selected_port() == port
            assert driver.position() == port
        assert emu.cycles == 3 + 5 + 3 + 2 + 1  # shortest routes, ties forward: no extra moves
        driver.set_direction("R")
        driver.select(2)  # reverse only: 1 -> 10 -> ... -> 2
        assert emu.cycles == 14 + 9
        driver.home()
        assert emu.selected_port() == 1
        driver.transport.close()


def test_add_to_bench_serves_a_valve_the_bench_entry_describes() -> None:
    world = World(VirtualClock(speed=20.0))
    endpoints: list[TcpEndpoint] = []

    def serve(key: str, emulator: ViciValveEmulator) -> str:  # as SimBench._serve does
        endpoint = TcpEndpoint(key, emulator, world.lock)
        endpoint.faults = emulator.faults
        endpoint.start()
        endpoints.append(endpoint)
        return endpoint.url

    entry = add_to_bench(world, serve, "valve", positions=6)
    try:
        assert entry["driver"] == "vici" and entry["positions"] == 6
        assert entry["url"] == endpoints[0].url
        driver = ViciValve(SerialTransport(entry["url"], timeout=1.0), "valve",
                           positions=entry["positions"], timeout=1.0)
        driver.connect()
        driver.select(4)
        assert world.devices["valve"].selected_port() == 4
        assert world.devices["valve"].snapshot()["position"] == 4
        driver.transport.close()
    finally:
        for endpoint in endpoints:
            endpoint.stop()


def test_the_executors_valve_step_turns_the_emulated_valve_through_the_driver() -> None:
    """The `valve` step calls select(port) on the valve the bench names, here built by the
    driver registry from its bench-file entry and talking to the emulator over TCP."""
    world = World(VirtualClock(speed=20.0))
    emu = ViciValveEmulator(world, "valve", positions=10)
    steps = "steps:\n  - valve: {valve: valve, port: 7}\n  - valve: {valve: valve, port: 2}\n"
    with serving(emu, world.lock) as endpoint:
        document = yaml.safe_load(OFFLINE_BENCH.read_text())
        document["devices"]["valve"] = {"driver": "vici", "url": endpoint.url, "positions": 10,
                                        "timeout": "1 s"}
        bench = Bench.model_validate(document)
        transport = SerialTransport(endpoint.url, timeout=1.0)
        valve = DRIVERS["vici"].factory("valve", bench.devices["valve"], transport)
        runner, rig, records = make_runner(steps, bench=bench, devices={"valve": valve})
        assert rig.valves == {"valve": valve}
        rig.connect()
        assert runner.run() == RunState.COMPLETED
        rig.close()
    assert emu.selected_port() == 2
    assert emu.cycles == 4 + 5  # 1 -> 7 down four, 7 -> 2 forward five (a tie)
    assert [r["state"] for r in records if r["event"] == "safe_state"] == ["completed"]
