"""The New Era driver and adapter against the emulated NE-1000 chain, over TCP and a pty."""

from __future__ import annotations

import pytest
from pumpsim import ne_spec, newera_bench, wait_stopped

from chipctl.config.devices import device_settings
from chipctl.devices.interfaces import SyringePump
from chipctl.devices.pumps import make_newera

SETTINGS = device_settings(
    "newera", address=0, reagent="sample",
    syringe={"inner_diameter": "4.699 mm", "volume": "1 mL", "contents": "0.5 mL"})


@pytest.mark.parametrize("wire", ["tcp", "pty"])
def test_infuse_volume_reads_back_dispensed(wire: str) -> None:
    with newera_bench(ne_spec("sample"), wire=wire) as (world, _chain, transport):
        pump = make_newera("sample", SETTINGS, transport)
        assert isinstance(pump, SyringePump)
        pump.connect()
        try:
            pump.infuse(120.0, 50.0)
            assert world.pumps["sample"].flow_ul_per_min(world.now()) == pytest.approx(120.0)
            wait_stopped(pump)
            assert pump.displaced_ul() == pytest.approx(50.0, abs=0.01)
            assert pump.syringe.contents_ul == pytest.approx(450.0, abs=0.01)
            assert world.pumps["sample"].contents_ul == pytest.approx(450.0, abs=1e-6)
            assert world.pumps["sample"].flow_ul_per_min(world.now()) == 0.0
        finally:
            pump.close()
