"""A synthetic run for the run-store tests: a bench file, a tetraspanin-panel protocol, and the
events an executor would publish (frames, counts, pump records), generated from a known sample
concentration with the capture model of chipctl.analysis.capture."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from chipctl.analysis.capture import field_profile, transport_fraction
from chipctl.config.bench import Bench, load_bench
from chipctl.devices.interfaces import Frame
from chipctl.protocol import load_protocol
from chipctl.protocol.model import Protocol
from chipctl.run.events import RunEvents, record

BENCH = """\
name: synthetic bench
devices:
  buffer_pump: {driver: newera, url: "socket://127.0.0.1:9", address: 0, reagent: buffer,
                syringe: {inner_diameter: 12.45 mm, volume: 5000 uL, contents: 5000 uL}}
  sample_pump: {driver: newera, url: "socket://127.0.0.1:9", address: 1, reagent: sample,
                syringe: {inner_diameter: 4.699 mm, volume: 1000 uL, contents: 800 uL}}
  camera: {driver: sim-camera, url: "socket://127.0.0.1:9", pixel_size_um: 6.5}
chip:
  channel: {width: 1000 um, height: 50 um, length: 20 mm}
  capture_efficiency: 0.8
  zones:
    CD9: {antibody: anti-CD9, center_um: [0, 0], size_um: [800, 800]}
    CD63: {antibody: anti-CD63, center_um: [1500, 0], size_um: [800, 800]}
    CD81: {antibody: anti-CD81, center_um: [3000, 0], size_um: [800, 800]}
    isotype: {antibody: isotype IgG, center_um: [4500, 0], size_um: [800, 800]}
"""

PROTOCOL = """\
schema_version: 1
name: Synthetic tetraspanin panel
steps:
  - prime: {pump: buffer_pump, volume: 20 uL, rate: 50 uL/min}
  - sample: {pump: sample_pump, rate: 4 uL/min, volume: 40 uL}
  - wash: {pump: buffer_pump, rate: 20 uL/min, volume: 20 uL}
  - image:
      zones: [CD9, CD63, CD81, isotype]
      fields: 4
      field_spacing: 350 um
      channels: [{channel: AF488, exposure: 50 ms, power: 50 %},
                 {channel: AF555, exposure: 60 ms, power: 60 %},
                 {channel: AF647, exposure: 70 ms, power: 70 %}]
"""

MARKERS = {"CD9": 0.5, "CD63": 0.8, "CD81": 0.7}
DYE_MARKER = {"AF488": "CD9", "AF555": "CD63", "AF647": "CD81"}
FRAME_PX = 64
PIXEL_UM = 6.5


def write_inputs(folder: Path) -> tuple[Protocol, Bench]:
    """The bench file and protocol, written to `folder` and loaded."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "bench.yaml").write_text(BENCH)
    (folder / "panel.yaml").write_text(PROTOCOL)
    return load_protocol(folder / "panel.yaml"), load_bench(folder / "bench.yaml")


@dataclass
class SyntheticRun:
    """Drives RunEvents the way the executor does, with counts drawn from a known sample."""

    events: RunEvents
    bench: Bench
    concentration_per_ml: float = 2e6
    nonspecific: float = 0.02
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

    def expected(self, zone: str, channel: str, x_um: float) -> float:
        """Mean count in a field centred at x_um (4 uL/min x 40 uL of sample)."""
        spec = self.bench.chip.zones[zone]
        marker = zone if zone in MARKERS else None
        captured = MARKERS.get(marker or "", 0.0) + self.nonspecific
        labelled = MARKERS[DYE_MARKER[channel]] if marker != DYE_MARKER[channel] else 1.0
        if marker is None:
            labelled = MARKERS[DYE_MARKER[channel]]
        fraction = 0.8 * transport_fraction(4.0, 1000, 50, spec.size_um[0], across_um=800)
        per_zone = self.concentration_per_ml * 0.040 * fraction * captured * labelled
        half = FRAME_PX * PIXEL_UM / 2
        x0 = spec.center_um[0] - spec.size_um[0] / 2
        profile = field_profile(x_um - half, x_um + half, x0, spec.size_um[0])
        return per_zone * (2 * half) ** 2 / (spec.size_um[0] * spec.size_um[1]) * profile

    def image(self, step: int, fields: int = 4) -> None:
        """Frames and counts for every zone, field and channel."""
        for zone, spec in self.bench.chip.zones.items():
            for fld in range(fields):
                x = spec.center_um[0] + (-100 if fld % 2 == 0 else 100)
                y = spec.center_um[1] + (-100 if fld < 2 else 100)
                for channel, (exposure, power) in {"AF488": (50, 50), "AF555": (60, 60),
                                                   "AF647": (70, 70)}.items():
                    self.t += 1.0
                    self.snap(step, zone, fld, channel, x, y, exposure, power)

    def snap(self, step: int, zone: str, fld: int, channel: str, x: float, y: float,
             exposure: float, power: float) -> None:
        """One frame and its count, as the executor publishes them."""
        true = int(self.rng.poisson(self.expected(zone, channel, x)))
        counted = int(self.rng.binomial(true, 0.97))
        image = self.rng.poisson(100, (FRAME_PX, FRAME_PX)).astype(np.uint16)
        meta = {"time": self.t, "exposure_ms": exposure, "stage": {"x": x, "y": y, "z": 12.5},
                "channel": channel, "power_pct": power, "pixel_size_um": PIXEL_UM,
                "truth": {"count": true}, "zone": zone, "field": fld}
        self.events.frame.emit(Frame(image, meta))
        row = {"t_s": self.t, "step": step, "zone": zone, "field": fld, "channel": channel,
               "count": counted, "exposure_ms": exposure, "power_pct": power, "x_um": x,
               "y_um": y, "true_count": true}
        self.rows.append(row)
        self.events.counted.emit(row)

    def run(self, stop_after: int | None = None) -> None:
        """The panel: prime, sample, wash, image (stop after a number of steps if asked)."""
        steps = [("prime", lambda: self.pump("buffer_pump", 50, 20)),
                 ("sample", lambda: self.pump("sample_pump", 4, 40)),
                 ("wash", lambda: self.pump("buffer_pump", 20, 20)),
                 ("image", lambda: self.image(3))]
        self.events.state_changed.emit("running", "started")
        for index, (label, body) in enumerate(steps[:stop_after]):
            self.step(index, len(steps), label, body)
