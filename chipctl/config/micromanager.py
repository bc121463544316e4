"""The bench-file entry of a Micro-Manager microscope (`driver: micromanager`).

```yaml
scope:
  driver: micromanager
  config: C:/Program Files/Micro-Manager-2.0/MMConfig_ti2.cfg   # or mm_dir + config
  roles: {camera: HamamatsuHam_DCAM, xy: XYStage, focus: ZDrive, light: Spectra,
          filter: FilterTurret}
  channels:                       # chipctl's channel names -> what selects them
    AF488: {filter: GFP, power_property: Cyan_Level}
    AF647: {preset: Cy5}           # a preset of `channel_group`
  channel_group: Channel
  pixel_size_um: 0.65             # only if Micro-Manager has no pixel size calibration
```

Roles name device labels of the configuration. `camera` makes the entry a camera, `xy` and
`focus` a stage, `light` (a shutter-type device: an LED or lamp controller, or a shutter) an
illuminator; `filter` is a state device (filter wheel or turret) the channels turn. A relative
`config` is read from `mm_dir` when given, else from the bench file's folder.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from chipctl.config.units import UnitError, to_unit

ROLE_KINDS = {"camera": "camera", "xy": "stage", "focus": "stage", "light": "illuminator"}
"""Which chipctl device kind each role provides (`filter` serves the illuminator's channels)."""


def _quantity(value: Any, unit: str) -> float | None:
    if value is None:
        return None
    try:
        return to_unit(value, unit)
    except UnitError as exc:
        raise ValueError(str(exc)) from exc


class Roles(BaseModel):
    """Device labels of the Micro-Manager configuration, by the role they play."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    camera: str | None = None
    xy: str | None = None
    focus: str | None = None
    light: str | None = None
    filter: str | None = None

    def labels(self) -> dict[str, str]:
        """role -> label, for the roles given."""
        return {role: label for role, label in self.model_dump().items() if label}


class ChannelMap(BaseModel):
    """What turns on one fluorescence channel: a preset, a filter position, a power property."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    preset: str | None = None  # a preset of the entry's channel_group
    filter: str | int | None = None  # a state label (or position) of the filter role
    power_property: str | None = None  # a property of the light role taking the power
    power_max: float = Field(default=100.0, gt=0)  # the property's value at 100 %


class MicroManagerSettings(BaseModel):
    """A `micromanager` device entry, validated."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)
    config: str
    mm_dir: str | None = None
    roles: Roles
    channels: dict[str, ChannelMap] = Field(default_factory=dict)
    channel_group: str | None = None
    pixel_size_um: float | None = Field(None, gt=0)
    exposure_ms: float = Field(50.0, gt=0, alias="exposure")
    roi: tuple[int, int, int, int] | None = None
    binning: int | None = Field(None, ge=1)
    xy_tolerance_um: float = Field(2.0, gt=0)
    z_tolerance_um: float = Field(0.5, gt=0)
    move_timeout_s: float = Field(30.0, gt=0, alias="move_timeout")
    # what the counter and the dry run read of a camera (chipctl.engine, protocol.validate)
    psf_sigma_px: float = Field(1.3, gt=0)
    e_per_adu: float | None = Field(None, gt=0)
    offset_adu: float = Field(100.0, ge=0)
    read_noise_e: float = Field(1.6, ge=0)
    exposure_range: tuple[float, float] | None = None
    sensor: tuple[int, int] | None = None

    @field_validator("pixel_size_um", mode="before")
    @classmethod
    def _pixel(cls, value: Any) -> float | None:
        return _quantity(value, "um")

    @field_validator("exposure_ms", mode="before")
    @classmethod
    def _exposure(cls, value: Any) -> float | None:
        return _quantity(value, "ms")

    @field_validator("xy_tolerance_um", "z_tolerance_um", mode="before")
    @classmethod
    def _length(cls, value: Any) -> float | None:
        return _quantity(value, "um")

    @field_validator("move_timeout_s", mode="before")
    @classmethod
    def _duration(cls, value: Any) -> float | None:
        return _quantity(value, "s")

    @field_validator("channels", mode="before")
    @classmethod
    def _shorthand(cls, value: Any) -> Any:
        """`AF488: GFP` is short for `AF488: {filter: GFP}`."""
        if isinstance(value, dict):
            return {k: {"filter": v} if isinstance(v, str | int) else v for k, v in value.items()}
        return value

    @model_validator(mode="after")
    def _consistent(self) -> MicroManagerSettings:
        labels = self.roles.labels()
        if not labels:
            raise ValueError("roles: map at least one role (camera, xy, focus, light, filter)")
        for name, channel in self.channels.items():
            if channel.filter is not None and "filter" not in labels:
                raise ValueError(f"channels.{name} names a filter but roles has no filter")
            if channel.power_property and "light" not in labels:
                raise ValueError(f"channels.{name} sets a power property but roles has no light")
            if channel.preset and not self.channel_group:
                raise ValueError(f"channels.{name} names a preset: give channel_group too")
        return self

    @property
    def kinds(self) -> tuple[str, ...]:
        """The chipctl device kinds this microscope provides (camera, stage, illuminator)."""
        return tuple(dict.fromkeys(ROLE_KINDS[r] for r in self.roles.labels() if r in ROLE_KINDS))


def parse_settings(settings: dict[str, Any]) -> MicroManagerSettings:
    """The settings of a bench entry (everything but `driver` and `url`), validated;
    ValueError lists every problem as `field: message`."""
    try:
        return MicroManagerSettings.model_validate(settings)
    except ValidationError as exc:
        raise ValueError("; ".join(_problem(item) for item in exc.errors())) from None


def _problem(item: Any) -> str:
    loc = ".".join(str(part) for part in item["loc"])
    message = str(item["msg"]).removeprefix("Value error, ")
    if item["type"] == "missing":
        return f"missing field '{loc}'"
    if item["type"] == "extra_forbidden":
        return f"unknown field '{loc}'"
    return f"{loc}: {message}" if loc else message
