"""The bench file: which devices are where, the chip on the microscope, and the time scale.

```yaml
name: my bench
time_scale: 1              # simulated seconds per wall second; 1 on a real bench
devices:
  sample_pump: {driver: newera, url: /dev/ttyUSB0, address: 0,
                syringe: {inner_diameter: 4.699 mm, volume: 1 mL}, reagent: sample}
  camera: {driver: sim-camera, url: "socket://127.0.0.1:40000", pixel_size_um: 0.65}
chip:
  channel: {width: 1 mm, height: 50 um, length: 20 mm}
  pressure_limit: 100 kPa
  calibration: cd63-liposomes.yaml   # optional: `chipctl calibrate` output; overrides the model
  tolerance: {channel_height: 2 um, channel_width: 10 um, zone_size: 10 um}  # optional, 1 sd
  zones: {CD63: {antibody: anti-CD63, center_um: [5000, 0], size_um: [1000, 1000]}}
```
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from chipctl.config.devices import (
    DRIVER_SETTINGS,
    CameraSettings,
    CoolLedSettings,
    DeviceSettings,
    DeviceSpec,
    MicroManagerSettings,
    PumpSettings,
)
from chipctl.config.sourcefile import Problem, SourceError, line_of, load_yaml
from chipctl.config.units import UnitError, to_unit

WATER_VISCOSITY_PA_S = 1.0e-3


def _to(unit: str, value: Any) -> float:
    try:
        return to_unit(value, unit)
    except UnitError as exc:
        raise ValueError(str(exc)) from exc


def _um(value: Any, *, zero: bool = False) -> float:
    """A length in um: positive (or, with `zero`, zero or more)."""
    result = _to("um", value)
    if result < 0 or (result == 0 and not zero):
        raise ValueError("must be zero or more" if zero else "must be positive")
    return result


class ZoneSpec(BaseModel):
    """A capture zone: its antibody and where it lies in stage coordinates (um)."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    antibody: str
    center_um: tuple[float, float]
    size_um: tuple[float, float] = (1000.0, 1000.0)

    @property
    def is_control(self) -> bool:
        """True for an isotype (negative) control zone."""
        return "isotype" in self.antibody.lower() or "igg" in self.antibody.lower()


class ChannelSpec(BaseModel):
    """The flow channel: a rectangular duct (for hydraulic resistance and pressure)."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    width_um: float = Field(default=1000.0, alias="width")
    height_um: float = Field(default=50.0, alias="height")
    length_um: float = Field(default=20000.0, alias="length")

    @field_validator("width_um", "height_um", "length_um", mode="before")
    @classmethod
    def _length(cls, value: Any) -> float:
        return _um(value)

    def resistance_pa_s_per_m3(self) -> float:
        """Hydraulic resistance of a rectangular channel (w > h), water at 25 °C."""
        w, h, length = (self.width_um * 1e-6, self.height_um * 1e-6, self.length_um * 1e-6)
        w, h = max(w, h), min(w, h)
        shape = 1 - 0.63 * h / w
        return 12 * WATER_VISCOSITY_PA_S * length / (w * h**3 * shape)

    def pressure_kpa(self, flow_ul_min: float) -> float:
        """Pressure drop across the channel at a flow rate."""
        q_m3_s = flow_ul_min * 1e-9 / 60
        return self.resistance_pa_s_per_m3() * q_m3_s / 1000


class ChipTolerance(BaseModel):
    """How far a chip as made may stray from its drawing (one standard deviation, the maker's
    datasheet): the capture model's uncertainty takes these."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    channel_height_um: float = Field(default=2.0, alias="channel_height")
    channel_width_um: float = Field(default=10.0, alias="channel_width")
    zone_size_um: float = Field(default=10.0, alias="zone_size")

    @field_validator("channel_height_um", "channel_width_um", "zone_size_um", mode="before")
    @classmethod
    def _length(cls, value: Any) -> float:
        return _um(value, zero=True)


class ChipSpec(BaseModel):
    """The chip: its channel, pressure limit, capture zones and the maker's tolerance."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    name: str = "exosome capture chip"
    channel: ChannelSpec = ChannelSpec()
    pressure_limit_kpa: float = Field(default=100.0, alias="pressure_limit")
    calibration: str | None = None  # a capture calibration file (relative to the bench file)
    tolerance: ChipTolerance = ChipTolerance()
    capture_efficiency: float | None = None  # refused: capture is computed, never entered
    zones: dict[str, ZoneSpec] = Field(default_factory=dict)

    @field_validator("capture_efficiency", mode="before")
    @classmethod
    def _no_entered_capture(cls, value: Any) -> None:
        if value is not None:
            raise ValueError("chipctl computes capture efficiency from the chip geometry, flow "
                             "and vesicle size (or a calibration file: chip.calibration); "
                             "remove this line")
        return None

    @field_validator("pressure_limit_kpa", mode="before")
    @classmethod
    def _pressure(cls, value: Any) -> float:
        return _to("kPa", value)

    def max_flow_ul_min(self) -> float:
        """The highest flow rate the pressure limit allows."""
        per_ul_min = self.channel.pressure_kpa(1.0)
        return math.inf if per_ul_min <= 0 else self.pressure_limit_kpa / per_ul_min

    def flow_pressure(self, flow_ul_min: float) -> FlowPressure:
        """The estimated pressure a total flow rate drives through the chip, against the
        limit: the one place the chip pressure limit is checked (dry run and run alike)."""
        pressure = self.channel.pressure_kpa(flow_ul_min)
        return FlowPressure(flow_ul_min, pressure, self.pressure_limit_kpa,
                            pressure > self.pressure_limit_kpa)


@dataclass(frozen=True)
class FlowPressure:
    """A flow rate's estimated chip pressure and whether it is over the chip's limit."""

    flow_ul_min: float
    pressure_kpa: float
    limit_kpa: float
    over_limit: bool


class Bench(BaseModel):
    """A loaded, validated bench file."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    name: str = "bench"
    time_scale: float = Field(1.0, gt=0)
    devices: dict[str, DeviceSpec]
    chip: ChipSpec = ChipSpec()
    simulator: dict[str, Any] | None = None
    path: str = ""

    @model_validator(mode="before")
    @classmethod
    def _micromanager_folder(cls, data: Any) -> Any:
        """A Micro-Manager entry's relative config is found beside the bench file."""
        if not isinstance(data, dict) or not isinstance(data.get("devices"), dict):
            return data
        folder = str(Path(data["path"]).parent) if data.get("path") else ""
        devices = {name: {"bench_dir": folder, **entry}
                   if isinstance(entry, dict) and entry.get("driver") == "micromanager"
                   else entry for name, entry in data["devices"].items()}
        return {**data, "devices": devices}

    def of_kind(self, kind: str) -> dict[str, DeviceSettings]:
        """Devices of one kind (pump, illuminator, stage, camera, valve) by name."""
        return {name: spec for name, spec in self.devices.items() if kind in spec.kinds}

    @property
    def pumps(self) -> dict[str, PumpSettings]:
        """The pumps' settings by name."""
        return {n: s for n, s in self.devices.items() if isinstance(s, PumpSettings)}

    @property
    def camera(self) -> CameraSettings | None:
        """The (first) camera's settings, if the bench has a camera."""
        return next((s for s in self.devices.values()
                     if isinstance(s, CameraSettings) and "camera" in s.kinds), None)

    @property
    def illuminator(self) -> CoolLedSettings | MicroManagerSettings | None:
        """The (first) illuminator's settings, if the bench has one."""
        return next((s for s in self.devices.values() if isinstance(s, CoolLedSettings)
                     or isinstance(s, MicroManagerSettings) and "illuminator" in s.kinds), None)


def _location(loc: tuple[Any, ...]) -> list[Any]:
    """The path into the file (a device entry's driver tag, which pydantic adds, left out)."""
    parts = [part for part in loc if not str(part).startswith("function-")]
    if len(parts) > 2 and parts[0] == "devices" and parts[2] in DRIVER_SETTINGS:
        del parts[2]
    return parts


def _problems(path: str, data: Any, error: ValidationError) -> list[Problem]:
    problems = []
    for item in error.errors():
        loc = _location(item["loc"])
        where = ".".join(str(part) for part in loc) or "bench"
        message = item["msg"].removeprefix("Value error, ")
        if item["type"] == "union_tag_invalid":
            known = ", ".join(sorted(DRIVER_SETTINGS))
            message = f"unknown driver {item['ctx']['tag']!r}; known drivers: {known}"
            loc = [*loc, "driver"]
            where = ".".join(str(part) for part in loc)
        elif item["type"] == "union_tag_not_found":
            message = "missing field 'driver'"
        elif item["type"] == "missing":
            message = f"missing field '{loc[-1]}'"
            where = ".".join(str(part) for part in loc[:-1]) or "bench"
        elif item["type"] == "extra_forbidden":
            message = f"unknown field '{loc[-1]}'"
        problems.append(Problem(path, line_of(data, loc), f"{where}: {message}"))
    return problems


def load_bench(path: str | Path) -> Bench:
    """Load and validate a bench file; every problem is reported with its line."""
    name = str(path)
    data = load_yaml(path, "bench file")
    if not isinstance(data, dict):
        raise SourceError([Problem(name, getattr(data, "line", 1), "a bench file is a mapping")])
    if "devices" in data and not data["devices"]:
        raise SourceError([Problem(name, line_of(data, ["devices"]), "devices: none listed")])
    try:
        bench = Bench.model_validate({**data, "path": name})
    except ValidationError as exc:
        raise SourceError(_problems(name, data, exc)) from exc
    problems = _reference_problems(name, data, bench)
    if problems:
        raise SourceError(problems)
    return bench


def _reference_problems(path: str, data: Any, bench: Bench) -> list[Problem]:
    """A setting that names another device (an LED's `triggered_by` camera) must name a
    device of the bench of the kind it needs."""
    problems = []
    for name, spec in bench.devices.items():
        for field, kind in spec.references.items():
            target = getattr(spec, field)
            if target is None:
                continue
            other = bench.devices.get(target)
            if other is not None and kind in other.kinds:
                continue
            candidates = ", ".join(sorted(bench.of_kind(kind))) or "none"
            what = (f"no device is named {target!r}" if other is None
                    else f"{target!r} is a {' and '.join(other.kinds)}, not a {kind}")
            problems.append(Problem(path, line_of(data, ["devices", name, field]),
                                    f"devices.{name}.{field}: {what}; the bench's {kind}s: "
                                    f"{candidates}"))
    return problems
