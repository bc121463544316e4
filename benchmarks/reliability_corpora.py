"""The corpora of benchmarks/reliability.py: drivers on emulated wires, mutated protocols and
hostile images, all generated in code (nothing large is committed)."""

from __future__ import annotations

import itertools
import os
import re
import struct
import time
import zlib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
BENCH = str(ROOT / "tests" / "data" / "bench_offline.yaml")  # validate only: never connects
Operation = tuple[str, Callable[[], Any], Callable[[Any], bool]]


# -- link faults --------------------------------------------------------------------------------
def link_faults(seeds: int, retries: int) -> list[tuple[str, float, int]]:
    """(fault, value, seed) of every trial of one operation."""
    trials = [("none", 0.0, 0), ("drop_reply", 1.0, 0), ("drop_reply", retries + 1.0, 0),
              ("split", 1.0, 0), ("split", 1.0, 1), ("slow", 0.1, 0), ("slow", 0.45, 0),
              ("lockup", 1.0, 0)]
    trials += [("garble", 1.0, seed) for seed in range(seeds)]
    trials += [("garble", 3.0, seed) for seed in range(seeds // 2)]
    return trials


class Rig:
    """One emulated device served on TCP and its driver; `operations()` with their truths."""

    name = ""
    retries = 2

    def __init__(self) -> None:
        from hardware_sim.clock import VirtualClock
        from hardware_sim.world import World

        self.world = World(VirtualClock(speed=1.0))
        self.endpoint: Any = None
        self.transport: Any = None

    def __enter__(self) -> Rig:
        return self

    def __exit__(self, *exc: object) -> None:
        self.transport.close()
        self.endpoint.stop()

    def link(self, emulator: Any) -> None:
        from drivers.transport import SerialTransport
        from hardware_sim.endpoints import TcpEndpoint

        self.endpoint = TcpEndpoint(self.name, emulator, self.world.lock)
        self.endpoint.start()
        self.transport = SerialTransport(self.endpoint.url, timeout=0.3).open()

    def arm(self, fault: str, value: float, seed: int) -> None:
        self.endpoint.faults.clear()
        self.endpoint.faults.rng.seed(seed)
        if fault != "none":
            self.endpoint.faults.arm(fault, value)

    def settle(self, fault: str, value: float) -> None:
        self.endpoint.faults.clear()
        if fault == "slow":
            time.sleep(value + 0.1)
        if not self.transport.is_open:
            self.transport.open()
        self.transport.flush_input()

    def operations(self) -> list[Operation]:
        raise NotImplementedError


def _cycle(values: list[Any]) -> Callable[[], Any]:
    it = itertools.cycle(values)
    return lambda: next(it)


class NewEraRig(Rig):
    name = "sample_pump"

    def __init__(self) -> None:
        super().__init__()
        from drivers.newera import NewEraPump
        from hardware_sim.newera import NewEraChain

        spec = {"name": self.name, "address": 0, "reagent": "sample", "diameter_mm": 4.699,
                "syringe_ul": 1000.0, "contents_ul": 500.0, "fresh": False}
        self.chain = NewEraChain(self.world, [spec])
        self.pump = self.chain.pumps[0]
        self.endpoint = self.chain.serve_tcp()
        from drivers.transport import SerialTransport

        self.transport = SerialTransport(self.endpoint.url, timeout=0.3).open()
        self.driver = NewEraPump(self.transport, 0, name=self.name)
        self.driver.connect(0)
        self.driver.set_diameter(12.45)

    def operations(self) -> list[Operation]:
        from hardware_sim.newera_pump import ne_float

        d, p, nvm = self.driver, self.pump, self.pump.nvm
        diameters, rates = _cycle([4.699, 12.45, 14.57]), _cycle([5.0, 12.5, 0.75])
        chosen: dict[str, float] = {}

        def set_diameter() -> None:
            chosen["dia"] = diameters()
            d.set_diameter(chosen["dia"])

        def set_rate() -> None:
            chosen["rate"] = rates()
            d.set_rate(chosen["rate"], "UM")
        return [
            ("diameter", d.diameter, lambda v: v == float(ne_float(nvm.diameter_mm))),
            ("rate", d.rate, lambda v: v == (float(ne_float(p.rate)), nvm.rate_units)),
            ("volume", d.volume, lambda v: v == (float(ne_float(nvm.volume)), nvm.volume_units)),
            ("direction", d.direction, lambda v: v == ("INF" if nvm.direction > 0 else "WDR")),
            ("status", lambda: d.status().status, lambda v: v == p.state),
            ("dispensed", d.dispensed, lambda v: v[:2] == (0.0, 0.0)),
            ("version", d.version, lambda v: v == "NE1000V3.928"),
            ("set_diameter", set_diameter, lambda v: nvm.diameter_mm == chosen["dia"]),
            ("set_rate", set_rate, lambda v: p.rate == chosen["rate"]),
        ]


class HarvardRig(Rig):
    name = "stain_pump"

    def __init__(self) -> None:
        super().__init__()
        from drivers.harvard import HarvardPump
        from drivers.transport import SerialTransport
        from hardware_sim.harvard import HarvardChain

        spec = {"name": self.name, "address": 0, "reagent": "stain", "diameter_mm": 4.699,
                "syringe_ul": 1000.0, "contents_ul": 500.0}
        self.chain = HarvardChain(self.world, [spec])
        self.pump = self.chain.pumps[0]
        self.endpoint = self.chain.serve_tcp()
        self.transport = SerialTransport(self.endpoint.url, timeout=0.3).open()
        self.driver = HarvardPump(self.transport, 0, name=self.name)
        self.driver.connect()

    def operations(self) -> list[Operation]:
        d, p = self.driver, self.pump
        diameters, rates = _cycle([4.699, 12.45, 14.57]), _cycle([5.0, 12.5, 0.75])
        chosen: dict[str, float] = {}

        def set_diameter() -> None:
            chosen["dia"] = diameters()
            d.set_diameter(chosen["dia"])

        def set_rate() -> None:
            chosen["rate"] = rates()
            d.set_infuse_rate(chosen["rate"])
        return [
            ("diameter", d.diameter, lambda v: abs(v - p.model.diameter_mm) < 5e-5),
            ("infuse_rate", d.infuse_rate, lambda v: abs(v - p.irate) <= 1e-4 * p.irate),
            ("prompt", lambda: d.poll().prompt, lambda v: v == p.state),
            ("version", d.version, lambda v: v.startswith("11 ELITE")),
            ("set_diameter", set_diameter, lambda v: p.model.diameter_mm == chosen["dia"]),
            ("set_rate", set_rate, lambda v: abs(p.irate - chosen["rate"]) < 1e-9),
        ]


class CoolLedRig(Rig):
    name = "led"

    def __init__(self) -> None:
        super().__init__()
        from drivers.coolled import CoolLed
        from hardware_sim.coolled import CoolLedEmulator

        self.emulator = CoolLedEmulator(self.world, self.name)
        self.link(self.emulator)
        self.driver = CoolLed(self.transport, name=self.name)
        self.driver.connect()

    def _lit(self) -> None:
        with self.world.lock:
            channel = self.emulator.channels["B"]
            channel.selected, channel.on, channel.intensity = True, True, 60

    def operations(self) -> list[Operation]:
        from drivers.coolled import ChannelState, format_css

        d, e = self.driver, self.emulator
        states = _cycle([{"A": ChannelState(True, True, 30), "B": ChannelState(False, False, 0)},
                         {"A": ChannelState(False, False, 30), "B": ChannelState(True, True, 75)}])
        chosen: dict[str, Any] = {}

        def set_state() -> None:
            chosen["state"] = states()
            d.set_state(chosen["state"])

        def all_off() -> bool:
            self._lit()
            return d.all_off()

        def wanted() -> bool:
            return all((e.channels[ch].selected, e.channels[ch].on, e.channels[ch].intensity)
                       == (s.selected, s.on, s.intensity) for ch, s in chosen["state"].items())
        return [
            ("state", d.state, lambda v: format_css(v) == e.css()),
            ("identify", d.identify, lambda v: v == e.model),
            ("set_state", set_state, lambda v: wanted()),
            ("all_off", all_off, lambda v: e.emission() == [] and isinstance(v, bool)),
        ]


class PriorRig(Rig):
    name = "stage"

    def __init__(self) -> None:
        super().__init__()
        from drivers.prior import ProScan
        from hardware_sim.prior import PriorEmulator

        self.emulator = PriorEmulator(self.world, self.name, r_at_end=False)
        self.link(self.emulator)
        self.driver = ProScan(self.transport, name=self.name)
        self.driver.connect()
        self.driver.move_to(120.0, -40.0)
        self.driver.wait_idle(10.0)

    def operations(self) -> list[Operation]:
        d, e = self.driver, self.emulator
        speeds = _cycle([50, 80, 100])
        chosen: dict[str, int] = {}

        def set_speed() -> None:
            chosen["speed"] = speeds()
            d.set_speed(chosen["speed"])

        def where() -> tuple[float, float, float]:
            with self.world.lock:
                return tuple(float(v) for v in e._position_now(self.world.now()))  # type: ignore[return-value]
        return [
            ("position", d.position, lambda v: v == where()),
            ("z", d.z, lambda v: v == where()[2]),
            ("busy", d.busy, lambda v: v == 0),
            ("speed", d.speed, lambda v: v == e.state.speeds["SMS"]),
            ("set_speed", set_speed, lambda v: e.state.speeds["SMS"] == chosen["speed"]),
        ]


def driver_rigs() -> Iterator[Rig]:
    for rig in (NewEraRig, HarvardRig, CoolLedRig, PriorRig):
        yield rig()


# -- protocols --------------------------------------------------------------------------------
HOSTILE_NUMBERS = ["nan", "inf", "-inf", "1e400", "9**9**9", "1e12", "-5", "5 (", "1e-320"]
_QUANTITY = re.compile(r"\b(\d+(?:\.\d+)?) ?(uL/min|uL|min|s|ms|um|%)(?![A-Za-z/])")
STRUCTURAL = {
    "duplicate steps": lambda t: t + "\nsteps:\n  - wait: 1 s\n",
    "duplicate key in a step": lambda t: t.replace("rate:", "rate: 1 uL/min, rate:", 1)
    if "{" in t else t + "\nname: again\n",
    "billion laughs": lambda t: _laughs() + t,
    "deep nesting": lambda t: t + "\ndescription: " + "[" * 5000 + "]" * 5000 + "\n",
    "surrogate name": lambda t: re.sub(r"(?m)^name:.*$", 'name: "\\\\ud800"', t, count=1)
    .replace('"\\\\ud800"', '"\\ud800 \\x1b[2J"') + "\nsteps: []\n",
    "format-spec label": lambda t: t.replace("steps:\n", "steps:\n  - prompt: '{x:>200000000}'\n",
                                            1),
    "fields 1e8": lambda t: t.replace("steps:\n", "steps:\n  - image: {zones: [CD9], channels: "
                                      "[AF647], fields: 100000000}\n", 1),
    "repeat 1e9": lambda t: t.replace("steps:\n", "steps:\n  - repeat: {times: 1000000000, steps: "
                                      "[{wait: 1 s}]}\n", 1),
    "grid 1e5 x 1e5": lambda t: t.replace("steps:\n", "steps:\n  - image: {zones: [CD9], channels:"
                                          " [AF647], grid: [100000, 100000]}\n", 1),
    "repeats of repeats": lambda t: t.replace("steps:\n", "steps:\n  - repeat: {times: 10000, "
                                              "steps: [{repeat: {times: 10000, steps: [{wait: "
                                              "1 s}]}}]}\n", 1),
    "2 MiB file": lambda t: t + "#" * (2 << 20),
    "binary": lambda t: "\x00\x01\x02" + t,
}


def _laughs(levels: int = 9) -> str:
    lines = ['a0: &a0 ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    lines += [f"a{n}: &a{n} [{', '.join([f'*a{n - 1}'] * 9)}]" for n in range(1, levels)]
    return "\n".join(lines) + "\n"


def protocol_cases(folder: Path, quick: bool) -> Iterator[tuple[str, Path, bool]]:
    """(label, path, hostile) of every protocol trial: the library as it is, then mutated."""
    library = sorted((ROOT / "protocols").glob("*.yaml"))
    for number, source in enumerate(library):
        text = source.read_text(encoding="utf-8")
        yield f"{source.name} as it is", _write(folder, f"ok{number}.yaml", text), False
        steps_at = text.find("\nsteps:")
        spots = [m for m in _QUANTITY.finditer(text) if m.start() > steps_at
                 and not _line_of(text, m.start()).lstrip().startswith("#")][: 3 if quick else 8]
        for spot_number, spot in enumerate(spots):
            for value in HOSTILE_NUMBERS:
                if value == "1e-320" and spot.group(2) != "uL/min":
                    continue  # a denormal volume or duration is 0 for every purpose
                mutated = text[: spot.start(1)] + value + text[spot.end(1):]
                name = f"m{number}_{spot_number}_{HOSTILE_NUMBERS.index(value)}.yaml"
                yield (f"{source.name}: {spot.group(0)} -> {value}",
                       _write(folder, name, mutated), True)
        for label, mutate in STRUCTURAL.items():
            name = f"s{number}_{label.replace(' ', '_')}.yaml"
            yield f"{source.name}: {label}", _write(folder, name, mutate(text)), True
    if hasattr(os, "mkfifo"):
        fifo = folder / "fifo.yaml"
        os.mkfifo(fifo)
        yield "a FIFO", fifo, True


def _line_of(text: str, index: int) -> str:
    start = text.rfind("\n", 0, index) + 1
    end = text.find("\n", index)
    return text[start: end if end >= 0 else len(text)]


def _write(folder: Path, name: str, text: str) -> Path:
    path = folder / name
    path.write_bytes(text.encode("utf-8", "surrogatepass"))
    return path


# -- images --------------------------------------------------------------------------------------
def tiff_declaring(width: int, height: int, strip: bytes) -> bytes:
    """A grey 8-bit zlib TIFF whose tags declare `width` x `height` pixels in one strip."""
    entries = [(256, 4, width), (257, 4, height), (258, 3, 8), (259, 3, 8), (262, 3, 1),
               (273, 4, 0), (277, 3, 1), (278, 4, height), (279, 4, len(strip))]
    data_at = 8 + 2 + 12 * len(entries) + 4
    out = bytearray(b"II*\x00" + struct.pack("<IH", 8, len(entries)))
    for tag, kind, value in entries:
        value = data_at if tag == 273 else value
        packed = struct.pack("<H", value) + b"\x00\x00" if kind == 3 else struct.pack("<I", value)
        out += struct.pack("<HHI", tag, kind, 1) + packed
    return bytes(out + struct.pack("<I", 0) + strip)


def image_cases(folder: Path) -> Iterator[tuple[str, Path, bool]]:
    """(label, path, hostile) of every image trial."""
    import cv2
    import tifffile

    rng = np.random.default_rng(17)
    good = folder / "good.tif"
    tifffile.imwrite(good, rng.poisson(100, (128, 128)).astype(np.uint16))
    yield "a 128 x 128 frame", good, False
    packer = zlib.compressobj(9)
    zeros = b"".join(packer.compress(bytes(1 << 24)) for _ in range(16)) + packer.flush()
    cases: dict[str, Callable[[Path], object]] = {
        "zlib bomb (256 Mpx declared)": lambda p: p.write_bytes(
            tiff_declaring(16384, 16384, zeros)),
        "1x1 tiff": lambda p: tifffile.imwrite(p, np.zeros((1, 1), np.uint16)),
        "1-bit tiff": lambda p: tifffile.imwrite(p, np.zeros((64, 64), bool)),
        "5-D tiff": lambda p: tifffile.imwrite(p, np.zeros((2, 2, 2, 32, 32), np.uint16)),
        "NaN float tiff": lambda p: tifffile.imwrite(p, np.full((32, 32), np.nan, np.float32)),
        "complex tiff": lambda p: tifffile.imwrite(p, np.zeros((32, 32), np.complex64)),
        "truncated tiff": lambda p: p.write_bytes(good.read_bytes()[:300]),
        "noise .tif": lambda p: p.write_bytes(rng.bytes(5000)),
        "noise .png": lambda p: p.with_suffix(".png").write_bytes(rng.bytes(5000)),
        "png declaring 1e10 px": lambda p: p.with_suffix(".png").write_bytes(
            _png_header(cv2, 100_000, 100_000)),
        "1x1 png": lambda p: cv2.imwrite(str(p.with_suffix(".png")), np.zeros((1, 1), np.uint8)),
        "empty file": lambda p: p.write_bytes(b""),
        "a directory": lambda p: p.mkdir(),
    }
    for number, (label, make) in enumerate(cases.items()):
        path = folder / f"img{number}.tif"
        make(path)
        yield label, path if path.exists() else path.with_suffix(".png"), True
    if hasattr(os, "mkfifo"):
        fifo = folder / "fifo.tif"
        os.mkfifo(fifo)
        yield "a FIFO", fifo, True


def _png_header(cv2: Any, width: int, height: int) -> bytes:
    png = cv2.imencode(".png", np.zeros((16, 16), np.uint8))[1].tobytes()
    return png[:16] + struct.pack(">II", width, height) + png[24:]
