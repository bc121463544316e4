"""Emulated Harvard Apparatus Pump 11 Elite / PHD ULTRA daisy chain (Ultra command set).

Wire format (device_protocols.md 1.2). Host to pump: `[addr][@]<command>[ <args>]<CR>`,
commands case-insensitive and abbreviable to four letters. Pump to host: data lines
`<LF>[NN:]text<CR>`, then the prompt `<LF>[NN]<prompt>` (`:` `>` `<` `*` `T*`), followed by
XON in polling mode. A command sent with an address prefix is answered with the two-digit
prefix; one sent without goes to address 0 and is answered without. With polling off, a pump
that reaches its target prints `T*` by itself.

Faults: `stall` and `power_cycle` on a pump (all when none is named); link faults through
self.faults on the endpoint.
"""

from __future__ import annotations

import functools
import re
from typing import Any

from hardware_sim.endpoints import PtyEndpoint, TcpEndpoint
from hardware_sim.faults import LINK_FAULTS, FaultInjector
from hardware_sim.harvard_pump import HarvardSimPump, UltraError, command_error, resolve
from hardware_sim.syringe import SyringePumpModel
from hardware_sim.world import World

XON = b"\x11"
DEVICE_FAULTS = ("stall", "power_cycle")
_LINE = re.compile(r"\s*@?\s*(\d{1,2})?\s*@?\s*([A-Za-z]*)\s*(.*?)\s*")


class HarvardChain:
    """Emulated Pump 11 Elite pumps daisy-chained on one port.

    `pumps`: one dict per pump with `name`, `address`, `reagent`, `diameter_mm`,
    `syringe_ul`, `contents_ul`. Each model is registered in world.pumps and world.devices.
    """

    def __init__(self, world: World, pumps: list[dict[str, Any]]) -> None:
        self.world = world
        self.faults = FaultInjector()
        self.pumps: dict[int, HarvardSimPump] = {}
        self.by_name: dict[str, HarvardSimPump] = {}
        self._buffer = b""
        for spec in pumps:
            model = SyringePumpModel(
                name=spec["name"],
                reagent=spec.get("reagent", ""),
                diameter_mm=float(spec.get("diameter_mm", 4.699)),
                syringe_ul=float(spec.get("syringe_ul", 1000.0)),
                contents_ul=float(spec.get("contents_ul", 0.0)),
                now=world.clock.now,
            )
            pump = HarvardSimPump(int(spec.get("address", 0)), model)
            self.pumps[pump.address] = pump
            self.by_name[model.name] = pump
            model.injector = functools.partial(self._inject_one, model.name)
            world.pumps[model.name] = model
            world.devices[model.name] = model

    def _inject_one(self, name: str, fault: str, value: float = 1.0) -> None:
        self.inject(fault, value, pump=name)

    def inject(self, fault: str, value: float = 1.0, pump: str | None = None) -> None:
        """Arm a device fault (`stall`, `power_cycle`) on `pump` (default all) or a link fault."""
        with self.world.lock:
            if fault in DEVICE_FAULTS:
                targets = [self.by_name[pump]] if pump else list(self.pumps.values())
                for target in targets:
                    target.stall() if fault == "stall" else target.power_cycle()
            elif fault in LINK_FAULTS:
                self.faults.arm(fault, value)
            else:
                known = ", ".join(DEVICE_FAULTS + LINK_FAULTS)
                raise ValueError(f"unknown fault {fault!r}; known: {known}")

    def serve_tcp(self, port: int = 0) -> TcpEndpoint:
        """Serve the chain on a TCP port (started); link faults go through self.faults."""
        endpoint = TcpEndpoint("harvard", self, self.world.lock, port)
        endpoint.faults = self.faults
        endpoint.start()
        return endpoint

    def serve_pty(self, link: str | None = None) -> PtyEndpoint:
        """Serve the chain on a pseudo-terminal (started)."""
        endpoint = PtyEndpoint("harvard", self, self.world.lock, link)
        endpoint.faults = self.faults
        endpoint.start()
        return endpoint

    # -- the Emulator face ----------------------------------------------------------------------
    def connected(self) -> bytes:
        """Nothing is printed when a host opens the port."""
        return b""

    def poll(self) -> bytes:
        """Unsolicited prompts (target reached) of pumps with polling off."""
        out = b""
        for pump in self.pumps.values():
            pump.sync()
            if pump.unsolicited:
                prefix = f"{pump.address:02d}" if pump.address else ""
                out += f"\n{prefix}{pump.unsolicited}".encode()
                pump.unsolicited = ""
        return out

    def receive(self, data: bytes) -> bytes:
        """Bytes from the host; the replies to every line completed by them."""
        self._buffer = (self._buffer + data.replace(b"\n", b""))[-512:]
        out = b""
        while b"\r" in self._buffer:
            line, self._buffer = self._buffer.split(b"\r", 1)
            out += self._line(line.decode("latin-1"))
        return out

    def _line(self, text: str) -> bytes:
        match = _LINE.fullmatch(text)
        if match is None:
            return b""
        address_text, word, args = match.groups()
        pump = self.pumps.get(int(address_text) if address_text else 0)
        if pump is None:
            return b""  # nobody at that address: silence
        prefixed = address_text is not None
        try:
            command = resolve(word) if word else ""
            if command is None:
                raise command_error("Unknown command")
            lines = pump.execute(command, args)
        except UltraError as error:
            lines = error.lines
        pump.unsolicited = ""  # the prompt below says it
        return self._format(pump, lines, prefixed)

    def _format(self, pump: HarvardSimPump, lines: list[str], prefixed: bool) -> bytes:
        head = f"{pump.address:02d}" if prefixed else ""
        body = "".join(f"\n{head}{':' if head else ''}{line}\r" for line in lines)
        return f"{body}\n{head}{pump.state}".encode() + (XON if pump.poll else b"")
