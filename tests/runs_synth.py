"""A synthetic run whose answer is known: a bench file, a tetraspanin-panel protocol (its stain
step names the labels), and the events an executor would publish, from a sample of known
concentration and marker profile.

The truth is computed here, independently of chipctl.analysis: capture by each field from the
finite-difference solution of advection-diffusion between plates (benchmarks.analysis_truth,
Stokes-Einstein diffusivity of 100 nm vesicles), markers expressed independently, label
photons log-normal (some below the limit of detection), a small shift between the channels,
non-specific sticking on every zone. Frames are rendered with those vesicles and counted by the
project's counter, as a run counts them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.analysis_truth import CALIBRATION, graetz_pde, render
from chipctl.config.bench import Bench, load_bench
from chipctl.devices.interfaces import Frame
from chipctl.protocol import load_protocol
from chipctl.protocol.model import Protocol
from chipctl.run.counting import CountedFrame
from chipctl.run.events import RunEvents, record
from chipctl.vision import CountParams, count_frame

BENCH = """\
name: synthetic bench
devices:
  buffer_pump: {driver: newera, url: "socket://127.0.0.1:9", address: 0, reagent: buffer,
                syringe: {inner_diameter: 12.45 mm, volume: 5000 uL, contents: 5000 uL}}
  sample_pump: {driver: newera, url: "socket://127.0.0.1:9", address: 1, reagent: sample,
                syringe: {inner_diameter: 4.699 mm, volume: 1000 uL, contents: 800 uL}}
  stain_pump: {driver: newera, url: "socket://127.0.0.1:9", address: 2, reagent: stain,
               syringe: {inner_diameter: 4.699 mm, volume: 1000 uL, contents: 800 uL}}
  camera: {driver: sim-camera, url: "socket://127.0.0.1:9", pixel_size_um: 0.65,
           psf_sigma_px: 1.3, e_per_adu: 0.46, offset_adu: 100, read_noise_e: 1.6}
chip:
  channel: {width: 1000 um, height: 50 um, length: 20 mm}
  zones:
    CD9: {antibody: anti-CD9, center_um: [0, 0], size_um: [800, 800]}
    CD63: {antibody: anti-CD63, center_um: [1500, 0], size_um: [800, 800]}
    CD81: {antibody: anti-CD81, center_um: [3000, 0], size_um: [800, 800]}
    isotype: {antibody: isotype IgG, center_um: [4500, 0], size_um: [800, 800]}
"""

LABELS = {"CD9": "AF488", "CD63": "AF555", "CD81": "AF647"}
PROTOCOL = """\
schema_version: 1
name: Synthetic tetraspanin panel
steps:
  - prime: {pump: buffer_pump, volume: 20 uL, rate: 50 uL/min}
  - sample: {pump: sample_pump, rate: 4 uL/min, volume: 40 uL}
  - stain: {pump: stain_pump, rate: 2 uL/min, volume: 10 uL,
            labels: {CD9: AF488, CD63: AF555, CD81: AF647}}
  - image:
      zones: [CD9, CD63, CD81, isotype]
      grid: [2, 2]
      field_spacing: 350 um
      channels: [{channel: AF488, exposure: 50 ms, power: 50 %},
                 {channel: AF555, exposure: 60 ms, power: 60 %},
                 {channel: AF647, exposure: 70 ms, power: 70 %}]
"""

MARKERS = {"CD9": 0.5, "CD63": 0.8, "CD81": 0.7}
DYE_MARKER = {dye: marker for marker, dye in LABELS.items()}
SHIFT_PX = {"AF488": (0.0, 0.0), "AF555": (0.4, -0.3), "AF647": (-0.5, 0.2)}
FRAME_PX = 512
PIXEL_UM = 0.65
CHANNEL_W_UM, CHANNEL_H_UM = 1000.0, 50.0
SAMPLE_UL, SAMPLE_UL_MIN = 40.0, 4.0
DIAMETER_NM = 100.0
MEDIAN_PHOTONS, LOG_SD = 350.0, 0.5
OFFSETS = [(-175.0, -175.0), (175.0, -175.0), (-175.0, 175.0), (175.0, 175.0)]
PARAMS = CountParams(psf_sigma_px=1.3, calibration=CALIBRATION)


def write_inputs(folder: Path, protocol: str = PROTOCOL) -> tuple[Protocol, Bench]:
    """The bench file and protocol, written to `folder` and loaded."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "bench.yaml").write_text(BENCH)
    (folder / "panel.yaml").write_text(protocol)
    return load_protocol(folder / "panel.yaml"), load_bench(folder / "bench.yaml")


def diffusivity_um2_s(diameter_nm: float) -> float:
    """Stokes-Einstein in water at 25 C (written out here, not taken from chipctl)."""
    return 1.380649e-23 * 298.15 / (3 * math.pi * 0.89e-3 * diameter_nm * 1e-9) * 1e12


@lru_cache(maxsize=64)
def collected(along_um: float) -> float:
    """Fraction of a stream a capture wall collects over its first ``along_um`` (PDE)."""
    if along_um <= 0:
        return 0.0
    u = SAMPLE_UL_MIN * 1e9 / 60 / (CHANNEL_W_UM * CHANNEL_H_UM)
    xi = diffusivity_um2_s(DIAMETER_NM) * along_um / (u * CHANNEL_H_UM**2)
    return graetz_pde(xi, n=400, steps=500)


@dataclass
class SyntheticRun:
    """Drives RunEvents the way the executor does, with frames rendered from a known sample."""

    events: RunEvents
    bench: Bench
    concentration_per_ml: float = 4e6
    nonspecific_per_mm2: float = 40.0
    seed: int = 1
    t: float = 0.0
    rows: list[dict[str, Any]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.rng = np.random.default_rng(self.seed)

    def step(self, index: int, total: int, label: str, body: Any) -> None:
        """One step with its start and finish signals."""
        self.events.step_started.emit(index, total, label)
        self.events.record.emit(record("step_started", index=index, label=label))
        body()
        self.events.step_finished.emit(index, label)
        self.events.record.emit(record("step_finished", index=index, label=label))

    def pump(self, name: str, rate: float, volume: float) -> None:
        """A flow: pump_start then pump_done with the full volume."""
        self.events.record.emit(record("pump_start", t_s=self.t, pump=name, direction="infuse",
                                       rate_ul_min=rate, volume_ul=volume))
        self.t += 60 * volume / rate
        self.events.record.emit(record("pump_done", t_s=self.t, pump=name, delivered_ul=volume))

    def expected(self, zone: str, x_um: float) -> float:
        """Mean specific vesicles captured in a field centred at x_um (before marker share)."""
        spec = self.bench.chip.zones[zone]
        if spec.is_control:
            return 0.0
        half = FRAME_PX * PIXEL_UM / 2
        lead = spec.center_um[0] - spec.size_um[0] / 2
        a, b = x_um - half - lead, x_um + half - lead
        a, b = min(max(a, 0.0), spec.size_um[0]), min(max(b, 0.0), spec.size_um[0])
        across = 2 * half / CHANNEL_W_UM
        share = (collected(round(b, 3)) - collected(round(a, 3))) * across
        return self.concentration_per_ml * SAMPLE_UL * 1e-3 * share * MARKERS[zone]

    def vesicles(self, zone: str, x_um: float) -> dict[str, np.ndarray]:
        """The field's vesicles: positions (px) and which markers each carries."""
        area_mm2 = (FRAME_PX * PIXEL_UM / 1000) ** 2
        n_spec = int(self.rng.poisson(self.expected(zone, x_um)))
        n_ns = int(self.rng.poisson(self.nonspecific_per_mm2 * area_mm2))
        n = n_spec + n_ns
        xy = np.column_stack([self.rng.uniform(4, FRAME_PX - 4, n),
                              self.rng.uniform(4, FRAME_PX - 4, n)])
        has = {m: self.rng.random(n) < p for m, p in MARKERS.items()}
        if zone in has:
            has[zone][:n_spec] = True
        return {"xy": xy, **has}

    def image(self, step: int) -> None:
        """Frames and counts for every zone, field and channel."""
        for zone, spec in self.bench.chip.zones.items():
            for fld, (dx, dy) in enumerate(OFFSETS, start=1):
                x, y = spec.center_um[0] + dx, spec.center_um[1] + dy
                vesicles = self.vesicles(zone, x)
                for channel, (exposure, power) in {"AF488": (50, 50), "AF555": (60, 60),
                                                   "AF647": (70, 70)}.items():
                    self.t += 1.0
                    self.snap(step, zone, fld, channel, (x, y), exposure, power, vesicles)

    def snap(self, step: int, zone: str, fld: int, channel: str, at: tuple[float, float],
             exposure: float, power: float, vesicles: dict[str, np.ndarray]) -> None:
        """One frame, counted, published as the run's counting publishes it."""
        on = vesicles[DYE_MARKER[channel]]
        xy = vesicles["xy"][on] + np.asarray(SHIFT_PX[channel])
        photons = self.rng.lognormal(math.log(MEDIAN_PHOTONS), LOG_SD, int(on.sum()))
        frame = render(xy, photons, self.rng, (FRAME_PX, FRAME_PX))
        result = count_frame(frame.image, PARAMS)
        meta = {"time": self.t, "exposure_ms": exposure, "stage": {"x": at[0], "y": at[1],
                                                                    "z": 12.5},
                "channel": channel, "power_pct": power, "pixel_size_um": PIXEL_UM,
                "truth": {"count": int(on.sum())}, "zone": zone, "field": fld}
        row = {"t_s": self.t, "step": step, "zone": zone, "field": fld, "channel": channel,
               "count": int(result.count), "exposure_ms": exposure, "power_pct": power,
               "x_um": at[0], "y_um": at[1], "true_count": int(on.sum()), **result.measures()}
        self.events.frame.emit(CountedFrame(frame.image, meta, result, row))
        self.rows.append(row)
        self.events.counted.emit(row)

    def run(self, stop_after: int | None = None) -> None:
        """The panel: prime, sample, stain, image (stop after a number of steps if asked)."""
        steps = [("prime", lambda: self.pump("buffer_pump", 50, 20)),
                 ("sample", lambda: self.pump("sample_pump", SAMPLE_UL_MIN, SAMPLE_UL)),
                 ("stain", lambda: self.pump("stain_pump", 2, 10)),
                 ("image", lambda: self.image(3))]
        self.events.state_changed.emit("running", "started")
        for index, (label, body) in enumerate(steps[:stop_after]):
            self.step(index, len(steps), label, body)


KINETICS = """\
schema_version: 1
name: Synthetic capture kinetics
steps:
  - monitor:
      zone: CD63
      channel: {channel: AF555, exposure: 50 ms, power: 40 %}
      flow: {pump: sample_pump, rate: 2 uL/min, volume: 40 uL}
      interval: 1 min
"""


def kinetics_counts(events: RunEvents, plateau: float, k_per_min: float, seed: int = 3,
                    minutes: int = 20, x_um: float = 1500.0, start: int = 0) -> None:
    """A monitor step on one field from ``start`` vesicles: arrivals of a first-order approach
    to ``start + plateau`` with rate constant ``k_per_min`` (Poisson increments; a negative
    ``plateau`` loses vesicles), counted every minute."""
    rng = np.random.default_rng(seed)
    events.step_started.emit(0, 1, "monitor")
    events.record.emit(record("pump_start", t_s=0.0, pump="sample_pump", direction="infuse",
                              rate_ul_min=2.0, volume_ul=40.0))
    count = start
    for minute in range(1, minutes + 1):
        mean = plateau * (math.exp(-k_per_min * (minute - 1)) - math.exp(-k_per_min * minute))
        count += int(math.copysign(rng.poisson(abs(mean)), mean))
        meta = {"time": 60.0 * minute, "stage": {"x": x_um, "y": 0.0, "z": 12.5},
                "channel": "AF555", "pixel_size_um": PIXEL_UM, "zone": "CD63", "field": 1}
        events.frame.emit(Frame(np.zeros((FRAME_PX, FRAME_PX), np.uint16), meta))
        events.counted.emit({"t_s": 60.0 * minute, "step": 0, "zone": "CD63", "field": 1,
                             "channel": "AF555", "count": count, "x_um": x_um, "y_um": 0.0})
    events.record.emit(record("pump_done", t_s=60.0 * minutes, pump="sample_pump",
                              delivered_ul=40.0))
    events.step_finished.emit(0, "monitor")

