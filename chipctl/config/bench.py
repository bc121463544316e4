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
  zones: {CD63: {antibody: anti-CD63, center_um: [5000, 0], size_um: [1000, 1000]}}
```
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from chipctl.config.micromanager import ROLE_KINDS, parse_settings
from chipctl.config.sourcefile import Problem, SourceError, line_of, load_yaml
from chipctl.config.units import UnitError, to_unit

KNOWN_DRIVERS = {
    "newera": "pump",
    "harvard": "pump",
    "coolled": "illuminator",
    "prior": "stage",
    "sim-camera": "camera",
    "opencv": "camera",
    "micromanager": "microscope",  # camera, stage and illuminator by its roles
}
WATER_VISCOSITY_PA_S = 1.0e-3


class DeviceSpec(BaseModel):
    """One device: its driver, where it is plugged in, and its settings."""

    model_config = ConfigDict(extra="allow", frozen=True)
    driver: str
    url: str

    @model_validator(mode="before")
    @classmethod
    def _micromanager_url(cls, data: Any) -> Any:
        """A Micro-Manager microscope is reached through its configuration, not a port."""
        if isinstance(data, dict) and data.get("driver") == "micromanager":
            return {"url": f"micromanager:{data.get('config', '')}", **data}
        return data

    @model_validator(mode="after")
    def _micromanager_settings(self) -> DeviceSpec:
        if self.driver == "micromanager":
            parse_settings(self.settings)
        return self

    @field_validator("driver")
    @classmethod
    def _known_driver(cls, value: str) -> str:
        if value not in KNOWN_DRIVERS:
            known = ", ".join(sorted(KNOWN_DRIVERS))
            raise ValueError(f"unknown driver {value!r}; known drivers: {known}")
        return value

    @field_validator("url")
    @classmethod
    def _url_given(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("url is empty; give a port (/dev/ttyUSB0, COM3) or socket://HOST:PORT")
        return value

    @property
    def kind(self) -> str:
        """pump, illuminator, stage or camera."""
        return KNOWN_DRIVERS[self.driver]

    @property
    def kinds(self) -> tuple[str, ...]:
        """Every kind the device serves (a Micro-Manager microscope: one per role)."""
        if self.driver == "micromanager":
            roles = self.settings.get("roles") or {}
            return tuple(dict.fromkeys(ROLE_KINDS[r] for r in roles if r in ROLE_KINDS))
        return (self.kind,)

    @property
    def settings(self) -> dict[str, Any]:
        """Everything but driver and url."""
        return dict(self.model_extra or {})


def _to(unit: str, value: Any) -> float:
    try:
        return to_unit(value, unit)
    except UnitError as exc:
        raise ValueError(str(exc)) from exc


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
        result = _to("um", value)
        if result <= 0:
            raise ValueError("must be positive")
        return result

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


class ChipSpec(BaseModel):
    """The chip: its channel, pressure limit and capture zones."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    name: str = "exosome capture chip"
    channel: ChannelSpec = ChannelSpec()
    pressure_limit_kpa: float = Field(default=100.0, alias="pressure_limit")
    capture_efficiency: float = 0.1
    zones: dict[str, ZoneSpec] = Field(default_factory=dict)

    @field_validator("pressure_limit_kpa", mode="before")
    @classmethod
    def _pressure(cls, value: Any) -> float:
        return _to("kPa", value)

    def max_flow_ul_min(self) -> float:
        """The highest flow rate the pressure limit allows."""
        per_ul_min = self.channel.pressure_kpa(1.0)
        return math.inf if per_ul_min <= 0 else self.pressure_limit_kpa / per_ul_min


class Bench(BaseModel):
    """A loaded, validated bench file."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    name: str = "bench"
    time_scale: float = Field(1.0, gt=0)
    devices: dict[str, DeviceSpec]
    chip: ChipSpec = ChipSpec()
    simulator: dict[str, Any] | None = None
    path: str = ""

    def of_kind(self, kind: str) -> dict[str, DeviceSpec]:
        """Devices of one kind (pump, illuminator, stage, camera) by name."""
        return {name: spec for name, spec in self.devices.items() if kind in spec.kinds}


def _problems(path: str, data: Any, error: ValidationError) -> list[Problem]:
    problems = []
    for item in error.errors():
        loc = [part for part in item["loc"] if not str(part).startswith("function-")]
        where = ".".join(str(part) for part in loc) or "bench"
        message = item["msg"].removeprefix("Value error, ")
        if item["type"] == "missing":
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
        return Bench.model_validate({**data, "path": name})
    except ValidationError as exc:
        raise SourceError(_problems(name, data, exc)) from exc
