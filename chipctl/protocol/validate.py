"""Check a protocol against a bench before anything moves, and estimate the run (dry run).

Checks: every pump, zone and light channel exists on the bench; no syringe is run dry or past
full (tracking what each step draws, in order); flow rates keep the chip under its pressure
limit (pressure = flow x the channel's hydraulic resistance); exposures are within what the
camera takes; imaging fields lie on their zone. Every problem names the file, line and step, and
every problem is reported, not just the first.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from chipctl.config.bench import Bench
from chipctl.config.devices import CameraSettings
from chipctl.config.sourcefile import Problem
from chipctl.protocol import model as steps
from chipctl.protocol.loader import MAX_STEPS, count_steps
from chipctl.protocol.model import ChannelSetting

MOVE_S = 2.0  # estimated stage move + settle per field
AUTOFOCUS_S = 150.0  # a coarse-to-fine z sweep per field (~2.5 min on the simulated ProScan)
VALVE_S = 5.0
DEFAULT_SENSOR = (2048, 2048)
EXPOSURE_RANGE_MS = (0.01, 10_000.0)  # the simulated sCMOS; a bench file may narrow it
MAX_RUN_S = 30 * 24 * 3600.0  # a run planned to last longer than a month is a mistake


@dataclass
class DryRun:
    """What a run will take: time, volumes, pressure, images."""

    steps: list[dict[str, Any]] = field(default_factory=list)
    duration_s: float = 0.0
    volume_by_pump_ul: dict[str, float] = field(default_factory=dict)
    volume_by_reagent_ul: dict[str, float] = field(default_factory=dict)
    peak_pressure_kpa: float = 0.0
    pressure_limit_kpa: float = 0.0
    images: int = 0
    bytes_per_frame: int = DEFAULT_SENSOR[0] * DEFAULT_SENSOR[1] * 2
    light_s_by_channel: dict[str, float] = field(default_factory=dict)  # exposure time lit
    light_dose_by_channel: dict[str, float] = field(default_factory=dict)  # power % x seconds

    def expose(self, channel: ChannelSetting, frames: int) -> None:
        """Book ``frames`` exposures in ``channel``: light time and dose (% power x s)."""
        seconds = frames * channel.exposure_ms / 1000
        name = channel.channel
        self.light_s_by_channel[name] = self.light_s_by_channel.get(name, 0.0) + seconds
        self.light_dose_by_channel[name] = (self.light_dose_by_channel.get(name, 0.0)
                                            + seconds * channel.power_pct)

    @property
    def storage_bytes(self) -> int:
        """Raw frame storage if every frame is kept (16-bit pixels)."""
        return self.images * self.bytes_per_frame

    def as_dict(self) -> dict[str, Any]:
        """JSON-able summary."""
        return {
            "steps": self.steps, "duration_s": round(self.duration_s, 1),
            "volume_by_pump_ul": {k: round(v, 3) for k, v in self.volume_by_pump_ul.items()},
            "volume_by_reagent_ul": {k: round(v, 3) for k, v in self.volume_by_reagent_ul.items()},
            "peak_pressure_kpa": round(self.peak_pressure_kpa, 2),
            "pressure_limit_kpa": round(self.pressure_limit_kpa, 2), "images": self.images,
            "storage_bytes": self.storage_bytes,
            "light_s_by_channel": {k: round(v, 3) for k, v in self.light_s_by_channel.items()},
            "light_dose_pct_s_by_channel": {k: round(v, 1)
                                            for k, v in self.light_dose_by_channel.items()},
        }


class _Checker:
    def __init__(self, protocol: steps.Protocol, bench: Bench) -> None:
        self.protocol, self.bench = protocol, bench
        self.problems: list[Problem] = []
        self.track_volumes = True
        self.plan = DryRun(pressure_limit_kpa=bench.chip.pressure_limit_kpa)
        pumps = bench.pumps
        self.contents = {name: s.syringe.contents_ul for name, s in pumps.items()}
        self.capacity = {name: s.syringe.volume_ul for name, s in pumps.items()}
        self.camera = bench.camera
        self.exposure_range = EXPOSURE_RANGE_MS
        if self.camera is not None:
            self.exposure_range = self.camera.exposure_range or EXPOSURE_RANGE_MS
            width, height = self._sensor(self.camera)
            self.plan.bytes_per_frame = width * height * 2

    @staticmethod
    def _sensor(camera: CameraSettings) -> tuple[int, int]:
        if camera.roi is not None:
            return camera.roi[2], camera.roi[3]
        return camera.sensor or DEFAULT_SENSOR

    def problem(self, step: steps.Step, message: str) -> None:
        self.problems.append(Problem(self.protocol.source, step.line, f"{step.label}: {message}"))

    # -- fluidics ---------------------------------------------------------------------------
    def flow(self, step: steps.Step, pump: str, rate: float, volume: float, direction: str,
             reagent: str = "") -> float:
        if not self._is_pump(step, pump):
            return 60.0 * volume / rate if rate else 0.0
        self._pressure(step, rate)
        self._draw(step, pump, volume if direction == "infuse" else -volume)
        if reagent in ("", "wash", "buffer"):
            reagent = self.bench.pumps[pump].reagent or pump
        self._add(self.plan.volume_by_pump_ul, pump, volume)
        self._add(self.plan.volume_by_reagent_ul, reagent, volume)
        return 60.0 * volume / rate

    def _pressure(self, step: steps.Step, rate: float, how: str = "") -> None:
        estimate = self.bench.chip.flow_pressure(rate)
        self.plan.peak_pressure_kpa = max(self.plan.peak_pressure_kpa, estimate.pressure_kpa)
        if estimate.over_limit:
            self.problem(step, f"{rate:g} uL/min{' ' + how if how else ''} drives "
                         f"{estimate.pressure_kpa:.0f} kPa through the chip, over its "
                         f"{estimate.limit_kpa:g} kPa limit "
                         f"(max {self.bench.chip.max_flow_ul_min():.1f} uL/min)")

    @staticmethod
    def _add(table: dict[str, float], key: str, volume: float) -> None:
        table[key] = table.get(key, 0.0) + volume

    def _is_pump(self, step: steps.Step, pump: str) -> bool:
        if pump not in self.bench.devices:
            self.problem(step, f"unknown pump '{pump}'; the bench has: "
                         f"{', '.join(self.bench.of_kind('pump')) or 'no pumps'}")
            return False
        if self.bench.devices[pump].kind != "pump":
            self.problem(step, f"'{pump}' is a {self.bench.devices[pump].kind}, not a pump")
            return False
        return True

    def _draw(self, step: steps.Step, pump: str, volume: float) -> None:
        if not self.track_volumes:
            return
        before = self.contents[pump]
        after = before - volume
        if after < -1e-9:
            self.problem(step, f"draws {volume:g} uL from {pump}, which holds only {before:g} uL "
                         "at that point: the syringe would run dry")
        elif after > self.capacity[pump] + 1e-9:
            self.problem(step, f"withdrawing {-volume:g} uL overfills {pump} "
                         f"({self.capacity[pump]:g} uL syringe holding {before:g} uL)")
        self.contents[pump] = min(max(after, 0.0), self.capacity[pump])

    # -- imaging ----------------------------------------------------------------------------
    def labels(self, step: steps.Step, labels: tuple[tuple[str, str], ...]) -> None:
        """Each stain label's dye is a channel the bench can image."""
        known = self._light_channels()
        for marker, dye in labels:
            if known and dye not in known:
                self.problem(step, f"labels: {marker} is labelled with '{dye}', which is no "
                             f"channel of the illuminator ({', '.join(known)})")

    def channels(self, step: steps.Step, channels: tuple[steps.ChannelSetting, ...]) -> None:
        known = self._light_channels()
        low, high = self.exposure_range
        for setting in channels:
            if setting.channel not in known:
                self.problem(step, f"unknown channel '{setting.channel}'; the illuminator has: "
                             f"{', '.join(known) or 'no channels'}")
            if not low <= setting.exposure_ms <= high:
                self.problem(step, f"exposure {setting.exposure_ms:g} ms is outside the camera's "
                             f"{low:g}-{high:g} ms")
            if not 0 <= setting.power_pct <= 100:
                self.problem(step, f"LED power {setting.power_pct:g} % is outside 0-100 %")

    def _light_channels(self) -> list[str]:
        light = self.bench.illuminator
        return [] if light is None else list(light.channels)

    def zone(self, step: steps.Step, zone: str) -> bool:
        if zone not in self.bench.chip.zones:
            self.problem(step, f"unknown capture zone '{zone}'; the chip has: "
                         f"{', '.join(self.bench.chip.zones) or 'no zones'}")
            return False
        return True

    def image(self, step: steps.Image) -> float:
        self._needs(step, "stage", "camera", "illuminator")
        self.channels(step, step.channels)
        zones = [z for z in step.zones if self.zone(step, z)]
        offsets = step.field_offsets()
        self._fields_apart(step, offsets)
        for zone in zones:
            self._fields_on_zone(step, zone, offsets)
        fields = len(zones) * len(offsets)
        self.plan.images += fields * len(step.channels) * step.exposures
        for channel in step.channels:
            self.plan.expose(channel, fields * step.exposures)
        exposure = step.exposures * sum(c.exposure_ms for c in step.channels) / 1000
        per_field = MOVE_S + exposure + (AUTOFOCUS_S if step.autofocus else 0)
        return fields * per_field

    def _field_um(self) -> tuple[float, float]:
        """The camera's field on the chip (um; 0 x 0 when its pixel size is not known)."""
        pixel = getattr(self.camera, "pixel_size_um", None) if self.camera is not None else None
        if not pixel:
            return 0.0, 0.0
        width, height = self._sensor(self.camera) if self.camera is not None else DEFAULT_SENSOR
        return width * pixel, height * pixel

    def _fields_apart(self, step: steps.Image, offsets: list[tuple[float, float]]) -> None:
        fw, fh = self._field_um()
        for i, (ax, ay) in enumerate(offsets):
            for bx, by in offsets[i + 1:]:
                if abs(ax - bx) < fw - 1e-6 and abs(ay - by) < fh - 1e-6:
                    self.problem(step, f"fields at offsets {(ax, ay)} and {(bx, by)} um overlap "
                                 f"(a field is {fw:g} x {fh:g} um): they would image the same "
                                 f"vesicles twice; use a field_spacing of at least {fw:g} um")
                    return

    def _fields_on_zone(self, step: steps.Image, zone: str,
                        offsets: list[tuple[float, float]]) -> None:
        width, height = self.bench.chip.zones[zone].size_um
        fw, fh = self._field_um()
        outside = [o for o in offsets if abs(o[0]) + fw / 2 > width / 2 + 1e-6
                   or abs(o[1]) + fh / 2 > height / 2 + 1e-6]
        if outside:
            self.problem(step, f"{len(outside)} field(s) leave zone {zone} ({width:g} x "
                         f"{height:g} um; a field is {fw:g} x {fh:g} um), e.g. offset "
                         f"{outside[0]} um; use a smaller field_spacing or fewer fields")

    def monitor(self, step: steps.Monitor) -> float:
        self._needs(step, "stage", "camera", "illuminator")
        self.zone(step, step.zone)
        self.channels(step, (step.channel,))
        if step.incubate_s > 0:  # nothing flows
            return self._counts(step, step.incubate_s)
        for flow in step.alongside:
            self.labels(step, flow.labels)
            self.flow(step, flow.pump, flow.rate_ul_min, flow.planned_volume_ul, flow.direction,
                      flow.reagent)
        if step.alongside:
            self._pressure(step, step.total_rate_ul_min, "together")
        duration = self.flow(step, step.flow.pump, step.flow.rate_ul_min,
                             step.flow.planned_volume_ul, step.flow.direction, step.flow.reagent)
        return self._counts(step, duration)

    def _counts(self, step: steps.Monitor, duration: float) -> float:
        """Book the frames a monitor takes over `duration` s; returns the duration."""
        counts = int(duration // step.interval_s) + 1
        self.plan.images += counts
        self.plan.expose(step.channel, counts)
        return duration

    def _needs(self, step: steps.Step, *kinds: str) -> None:
        for kind in kinds:
            if not self.bench.of_kind(kind):
                self.problem(step, f"needs a {kind}, and the bench has none")

    # -- dispatch ---------------------------------------------------------------------------
    def step(self, step: steps.Step) -> float:
        if isinstance(step, steps.Prime):
            return self.flow(step, step.pump, step.rate_ul_min, step.volume_ul, "infuse", "")
        if isinstance(step, steps.Flow):
            self.labels(step, step.labels)
            return self.flow(step, step.pump, step.rate_ul_min, step.planned_volume_ul,
                             step.direction, step.reagent)
        if isinstance(step, steps.Wait):
            return step.duration_s
        if isinstance(step, steps.Image):
            return self.image(step)
        if isinstance(step, steps.Monitor):
            return self.monitor(step)
        if isinstance(step, steps.Valve):
            if step.valve not in self.bench.of_kind("valve"):
                self.problem(step, f"unknown valve '{step.valve}'; the bench has no such valve")
            return VALVE_S
        if isinstance(step, steps.Prompt):
            return 0.0
        self.problem(step, f"cannot run a '{step.kind}' step")
        return 0.0


def check_protocol(protocol: steps.Protocol, bench: Bench,
                   track_volumes: bool = True) -> tuple[list[Problem], DryRun]:
    """All problems of running `protocol` on `bench`, and the dry-run estimate.

    `track_volumes=False` skips the syringe accounting (for a protocol with unreadable steps,
    whose volumes are not all known)."""
    checker = _Checker(protocol, bench)
    checker.track_volumes = track_volumes
    unrolled = count_steps(protocol.steps)
    if unrolled > MAX_STEPS:
        message = f"{unrolled:,} steps once every repeat is unrolled; at most {MAX_STEPS:,}"
        return [Problem(protocol.source, 0, message)], checker.plan
    for step in protocol.flat_steps():
        duration = checker.step(step)
        checker.plan.duration_s += duration
        checker.plan.steps.append({"label": step.label, "kind": step.kind, "line": step.line,
                                   "duration_s": round(duration, 1)})
    if not checker.plan.duration_s <= MAX_RUN_S:
        checker.problems.append(Problem(
            protocol.source, 0, f"the run would take {checker.plan.duration_s / 86400:,.1f} "
            f"days; at most {MAX_RUN_S / 86400:g} days (a rate or duration mistyped?)"))
    return list(dict.fromkeys(checker.problems)), checker.plan
