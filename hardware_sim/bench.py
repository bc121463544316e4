"""The simulated bench: builds the world, its emulated devices and their wires, and writes the
bench file a controller loads to find them.

Default bench: two New Era NE-1000 pumps on one RS-232 port (buffer at address 0, sample at
address 1), a Harvard Pump 11 Elite with the detection-antibody cocktail, a CoolLED pE-300
(AF488 / AF555 / AF647), a Prior ProScan III stage with focus, and a simulated sCMOS camera
over a four-zone chip (anti-CD9, anti-CD63, anti-CD81, isotype control), and a VICI
Cheminert selector valve (10 ports) on a universal actuator.
"""

from __future__ import annotations

import contextlib
import threading
import time
from pathlib import Path
from typing import Any

import yaml

from hardware_sim.chip import default_chip
from hardware_sim.clock import VirtualClock
from hardware_sim.control import ControlServer
from hardware_sim.endpoints import PtyEndpoint, TcpEndpoint
from hardware_sim.manufacturing import Tolerance, as_built_chip, syringes_as_built
from hardware_sim.optics import Optics
from hardware_sim.world import Reagent, World

# MSC-conditioned medium (~1e9 small EVs/mL after 2,000 x g clearing) diluted 1:10 in PBS, so
# that a few uL leave a countable density (~1 vesicle per 100 um^2) on a zone; CD63 and CD81 on
# most vesicles, CD9 on about half.
DEFAULT_REAGENTS = {
    "sample": Reagent("sample", vesicles_per_ml=1e8,
                      markers={"CD9": 0.5, "CD63": 0.8, "CD81": 0.7}),
    "buffer": Reagent("buffer"),
    "stain": Reagent("stain", labels=("AF488", "AF555", "AF647")),
}
PUMP_CHAIN: list[dict[str, Any]] = [  # one RS-232 port, two addresses
    {"name": "buffer_pump", "address": 0, "reagent": "buffer", "diameter_mm": 12.45,
     "syringe_ul": 5000.0, "contents_ul": 5000.0},
    {"name": "sample_pump", "address": 1, "reagent": "sample", "diameter_mm": 4.699,
     "syringe_ul": 1000.0, "contents_ul": 1000.0},
]
HARVARD_PUMPS: list[dict[str, Any]] = [
    {"name": "stain_pump", "address": 0, "reagent": "stain", "diameter_mm": 4.699,
     "syringe_ul": 1000.0, "contents_ul": 500.0},
]
LED_CHANNELS = {"AF488": "A", "AF555": "B", "AF647": "C"}
INTEGRATOR_IDLE_S = 0.02  # the chip's integrator, caught up, looks again after this
PIXEL_SIZE_UM = 0.1625  # 6.5 um sCMOS pixels behind a 40x / 0.95 objective: 333 um fields


class SimBench:
    """A running simulated bench."""

    def __init__(self, speed: float = 1.0, seed: int = 0, use_pty: bool = False,
                 sample: Reagent | None = None, tolerance: Tolerance | None = None) -> None:
        """`sample`: what the sample syringe holds (hardware_sim.sample.load_sample), by
        default DEFAULT_REAGENTS' sample; `tolerance`: how far the chip and syringes as built
        stray from their drawing (hardware_sim.manufacturing; NOMINAL: not at all)."""
        reagents = dict(DEFAULT_REAGENTS)
        if sample is not None:
            reagents["sample"] = sample
        self.world = World(VirtualClock(speed), seed=seed, reagents=reagents)
        self.drawing = default_chip(seed=seed)  # what the bench file says
        self.tolerance = Tolerance() if tolerance is None else tolerance
        self.world.chip = as_built_chip(self.drawing, seed, self.tolerance)
        self.use_pty = use_pty
        self.endpoints: dict[str, TcpEndpoint | PtyEndpoint] = {}
        self.device_endpoint: dict[str, str] = {}
        self.entries: dict[str, dict[str, Any]] = {}
        self.emulators: dict[str, Any] = {}
        self.control = ControlServer(self)
        self._stopping = threading.Event()
        self._integrator: threading.Thread | None = None
        self._build()

    # -- construction -----------------------------------------------------------------------
    def _serve(self, key: str, emulator: Any) -> str:
        if self.use_pty:
            endpoint: TcpEndpoint | PtyEndpoint = PtyEndpoint(key, emulator, self.world.lock)
        else:
            endpoint = TcpEndpoint(key, emulator, self.world.lock)
        faults = getattr(emulator, "faults", None)
        if faults is not None:
            endpoint.faults = faults
        self.endpoints[key] = endpoint
        self.emulators[key] = emulator
        return endpoint.url

    def _add(self, name: str, port_key: str, entry: dict[str, Any]) -> None:
        self.entries[name] = entry
        self.device_endpoint[name] = port_key

    def _build(self) -> None:
        from hardware_sim.camera import SimCameraEmulator
        from hardware_sim.coolled import CoolLedEmulator
        from hardware_sim.harvard import HarvardChain
        from hardware_sim.newera import NewEraChain
        from hardware_sim.prior import PriorEmulator
        from hardware_sim.vici import add_to_bench

        seed, tol = self.world.seed, self.tolerance
        url = self._serve("newera", NewEraChain(self.world, syringes_as_built(PUMP_CHAIN, seed, 0,
                                                                              tol)))
        for pump in PUMP_CHAIN:
            self._add(pump["name"], "newera", _pump_entry("newera", url, pump))
        url = self._serve("harvard", HarvardChain(self.world,
                                                  syringes_as_built(HARVARD_PUMPS, seed, 1, tol)))
        for pump in HARVARD_PUMPS:
            self._add(pump["name"], "harvard", _pump_entry("harvard", url, pump))
        url = self._serve("led", CoolLedEmulator(self.world, "led", model="pE-300"))
        self._add("led", "led", {"driver": "coolled", "url": url, "channels": LED_CHANNELS,
                             "triggered_by": "camera"})
        url = self._serve("stage", PriorEmulator(self.world, "stage"))
        self._add("stage", "stage", {"driver": "prior", "url": url})
        optics = Optics(pixel_size_um=PIXEL_SIZE_UM)
        camera = SimCameraEmulator(self.world, "camera", optics=optics, stage="stage",
                                   illuminator="led")
        url = self._serve("camera", camera)
        self._add("camera", "camera", _camera_entry(url, optics))
        self._add("valve", "valve", add_to_bench(self.world, self._serve, "valve"))

    def endpoint_of(self, device: str) -> TcpEndpoint | PtyEndpoint | None:
        """The wire a device is served on."""
        key = self.device_endpoint.get(device, device)
        return self.endpoints.get(key)

    # -- life cycle -------------------------------------------------------------------------
    def start(self) -> SimBench:
        """Start serving every device and the control channel, and the chip's integrator."""
        for endpoint in self.endpoints.values():
            endpoint.start()
        self.control.start()
        self._stopping.clear()
        self._integrator = threading.Thread(target=self._integrate, name="chip", daemon=True)
        self._integrator.start()
        return self

    def stop(self) -> None:
        """Stop every wire and the integrator."""
        self._stopping.set()
        for endpoint in self.endpoints.values():
            endpoint.stop()
        with contextlib.suppress(OSError):
            self.control.stop()
        if self._integrator is not None:
            self._integrator.join(5)

    def _integrate(self) -> None:
        """Keep the chip's capture up with the clock, a grid cell per turn of the chip's lock
        (a camera exposure or the light waits for one cell at most, and no device waits for
        it at all: a dense sample at a high speed factor may lag the clock for a while)."""
        while not self._stopping.is_set():
            if self.world.advance(max_cells=1):
                self._stopping.wait(INTEGRATOR_IDLE_S)
            else:
                time.sleep(0)  # let a thread waiting for the chip's lock take it

    def bench_document(self) -> dict[str, Any]:
        """The bench file's content."""
        return {
            "name": "simulated bench",
            "time_scale": self.world.clock.speed,
            "devices": self.entries,
            "chip": _chip_entry(self.drawing, self.tolerance),
            "simulator": {"control": self.control.address, "token": self.control.token,
                          "seed": self.world.seed},
        }

    def write_bench_file(self, path: str | Path) -> Path:
        """Write the bench file (atomically) and return its path."""
        target = Path(path)
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_suffix(".tmp")
        tmp.touch(mode=0o600)  # it holds the control channel's token: the owner's alone
        tmp.chmod(0o600)
        tmp.write_text("# Written by hardware_sim: the simulated bench.\n"
                       + yaml.safe_dump(self.bench_document(), sort_keys=False), encoding="utf-8")
        tmp.replace(target)
        return target


def _camera_entry(url: str, optics: Optics) -> dict[str, Any]:
    # The counter is told the optics and the camera calibration, as a lab would measure them.
    return {
        "driver": "sim-camera", "url": url, "pixel_size_um": optics.pixel_size_um,
        "psf_sigma_px": round(optics.sigma_um("AF555") / optics.pixel_size_um, 3),
        "offset_adu": optics.offset_adu, "e_per_adu": optics.e_per_adu,
        "read_noise_e": optics.read_noise_e,
    }


def _pump_entry(driver: str, url: str, pump: dict[str, Any]) -> dict[str, Any]:
    return {
        "driver": driver, "url": url, "address": pump["address"], "reagent": pump["reagent"],
        "syringe": {"inner_diameter": f"{pump['diameter_mm']} mm",
                    "volume": f"{pump['syringe_ul']:g} uL",
                    "contents": f"{pump['contents_ul']:g} uL"},
    }


def _chip_entry(chip: Any, tolerance: Tolerance) -> dict[str, Any]:
    zones = {
        zone.name: {
            "antibody": f"anti-{zone.antibody}" if zone.antibody else "isotype IgG",
            "center_um": [zone.x_um, zone.y_um],
            "size_um": [zone.width_um, zone.height_um],
        }
        for zone in chip.zones
    }
    return {
        "name": "simulated four-zone capture chip",
        "channel": {"width": f"{chip.channel_width_um:g} um",
                    "height": f"{chip.channel_height_um:g} um", "length": "20 mm"},
        "pressure_limit": "100 kPa",  # what a lab knows of its chip; no simulated physics
        "tolerance": tolerance.bench_entry(),  # the maker's, as its datasheet states it
        "zones": zones,
    }
