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

import re
from typing import Any

from hardware_sim.harvard_pump import HarvardSimPump, UltraError, command_error, resolve
from hardware_sim.pumpchain import PumpChain
from hardware_sim.world import World

XON = b"\x11"
_LINE = re.compile(r"\s*@?\s*(\d{1,2})?\s*@?\s*([A-Za-z]*)\s*(.*?)\s*")


class HarvardChain(PumpChain[HarvardSimPump]):
    """Emulated Pump 11 Elite pumps daisy-chained on one port.

    `pumps`: one dict per pump with `name`, `address`, `reagent`, `diameter_mm`,
    `syringe_ul`, `contents_ul`. Each model is registered in world.pumps and world.devices.
    """

    endpoint_name = "harvard"

    def __init__(self, world: World, pumps: list[dict[str, Any]]) -> None:
        super().__init__(world, pumps,
                         lambda spec, model: HarvardSimPump(int(spec.get("address", 0)), model))

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
