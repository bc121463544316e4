"""The device entries of a bench file: one typed model per driver, parsed once.

Every entry names its `driver` and `url` (a port such as /dev/ttyUSB0 or COM3, a pyserial URL
such as socket://127.0.0.1:PORT, or for `opencv` a device index or a video path), plus the
settings of that driver. Each setting has one default, here; quantities take units
("4.699 mm", "1 mL", "0.5 s"); unknown keys and out-of-range values are refused with the file
and line (chipctl.config.bench). How each driver is built is chipctl.devices.registry.
"""

from __future__ import annotations

from typing import Annotated, Any, ClassVar, Literal, get_args

from pydantic import (
    AliasChoices,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    TypeAdapter,
    field_validator,
    model_validator,
)

from chipctl.config.units import UnitError, to_unit


def _quantity(unit: str) -> BeforeValidator:
    def convert(value: Any) -> Any:
        if value is None:
            return None
        try:
            return to_unit(value, unit)
        except UnitError as exc:
            raise ValueError(str(exc)) from exc

    return BeforeValidator(convert)


Millimetres = Annotated[float, _quantity("mm")]
Micrometres = Annotated[float, _quantity("um")]
Microlitres = Annotated[float, _quantity("uL")]
Seconds = Annotated[float, _quantity("s")]
Milliseconds = Annotated[float, _quantity("ms")]


class Settings(BaseModel):
    """A closed set of settings: unknown keys are errors, values are frozen."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class DeviceSettings(Settings):
    """What every device entry has: its driver, where it is plugged in, the link's settings."""

    kind: ClassVar[str] = ""
    serial: ClassVar[bool] = True  # talks over a serial link (a SerialTransport)
    # settings that name another device of the bench: field -> the kind that device must be
    references: ClassVar[dict[str, str]] = {}
    driver: str
    url: str
    baudrate: int = Field(9600, gt=0)
    timeout_s: float = Field(1.0, gt=0)  # the link's read timeout

    @field_validator("url")
    @classmethod
    def _url_given(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("url is empty; give a port (/dev/ttyUSB0, COM3) or socket://HOST:PORT")
        return value

    @property
    def kinds(self) -> tuple[str, ...]:
        """Every kind of device this entry is (a Micro-Manager microscope: one per role)."""
        return (self.kind,)


class SyringeSettings(Settings):
    """The syringe on a pump. `contents` (what it holds at the start) defaults to full."""

    inner_diameter_mm: Millimetres = Field(4.699, gt=0, alias="inner_diameter")
    volume_ul: Microlitres = Field(1000.0, gt=0, alias="volume")
    contents_given_ul: Microlitres | None = Field(None, ge=0, alias="contents")

    @property
    def contents_ul(self) -> float:
        """What the syringe holds at the start of a run: as given, else full."""
        given = self.contents_given_ul
        return self.volume_ul if given is None else given

    @model_validator(mode="after")
    def _fits(self) -> SyringeSettings:
        if self.contents_ul > self.volume_ul + 1e-9:
            raise ValueError(f"contents {self.contents_ul:g} uL exceed the syringe's "
                             f"{self.volume_ul:g} uL")
        return self


class PumpSettings(DeviceSettings):
    """A syringe pump on an addressed serial line."""

    kind: ClassVar[str] = "pump"
    address: int = Field(0, ge=0, le=99)
    reagent: str = ""
    syringe: SyringeSettings = Field(default_factory=lambda: SyringeSettings.model_validate({}))


SAFE_MODE_S = 5.0  # the New Era default: stop within 5 s of the controller going silent


class NewEraSettings(PumpSettings):
    """New Era NE-1000 family. `safe_mode`: the pump stops if the controller is silent this
    long (1-255 s; 0 = Basic mode). On by default (SAFE_MODE_S): a controller killed even by
    SIGKILL leaves no pump running for longer; the driver's heartbeat keeps it fed."""

    driver: Literal["newera"]
    baudrate: int = Field(19200, gt=0)
    safe_mode_s: Seconds = Field(SAFE_MODE_S, ge=0, le=255, alias="safe_mode")

    @field_validator("safe_mode_s")
    @classmethod
    def _whole_seconds(cls, value: float) -> float:
        if value != int(value):
            raise ValueError(f"the pump counts whole seconds: write 0 (Basic mode) or 1-255 s, "
                             f"not {value:g} s")
        return value


class HarvardSettings(PumpSettings):
    """Harvard Apparatus Pump 11 Elite / PHD ULTRA."""

    driver: Literal["harvard"]
    baudrate: int = Field(115200, gt=0)


DEFAULT_LED_CHANNELS = {"AF488": "A", "AF555": "B", "AF647": "C"}


class CoolLedSettings(DeviceSettings):
    """CoolLED pE-300 / pE-4000: `channels` maps fluorescence channels to LED letters."""

    kind: ClassVar[str] = "illuminator"
    references: ClassVar[dict[str, str]] = {"triggered_by": "camera"}
    driver: Literal["coolled"]
    baudrate: int = Field(57600, gt=0)
    channels: dict[str, str] = Field(default_factory=lambda: dict(DEFAULT_LED_CHANNELS))
    timeout: Seconds = Field(0.5, gt=0)
    # The camera whose exposure output drives the LED's TTL trigger input (a channel selected
    # but off then lights only while that camera exposes); None: no trigger wiring.
    triggered_by: str | None = None

    @field_validator("channels")
    @classmethod
    def _letters(cls, value: dict[str, str]) -> dict[str, str]:
        if not value:
            raise ValueError("channels: name at least one, e.g. {AF488: A}")
        return {str(name): str(letter).upper() for name, letter in value.items()}


class TravelSettings(Settings):
    """Where a stage may go, in stage coordinates: each axis from its low to its high limit
    (`x: [-50 mm, 50 mm]`); an axis not given is bounded by the controller's limit switches
    only. A move outside is refused before it is sent, in a run and in manual work alike."""

    x_um: tuple[Micrometres, Micrometres] | None = Field(None, alias="x")
    y_um: tuple[Micrometres, Micrometres] | None = Field(None, alias="y")
    z_um: tuple[Micrometres, Micrometres] | None = Field(None, alias="z")

    @model_validator(mode="after")
    def _ordered(self) -> TravelSettings:
        for axis, limits in (("x", self.x_um), ("y", self.y_um), ("z", self.z_um)):
            if limits is not None and not limits[0] < limits[1]:
                raise ValueError(f"travel {axis}: write [low, high] with low below high")
        return self


class PriorSettings(DeviceSettings):
    """Prior ProScan III stage and focus; `travel` the soft limits of XY and focus."""

    kind: ClassVar[str] = "stage"
    driver: Literal["prior"]
    timeout: Seconds = Field(0.5, gt=0)
    ack_timeout: Seconds = Field(0.3, gt=0)
    speed_pct: int | None = Field(None, ge=1, le=100)
    xy_tolerance_um: Micrometres = Field(2.0, gt=0)
    z_tolerance_um: Micrometres = Field(0.5, gt=0)
    travel: TravelSettings | None = None


class CameraSettings(DeviceSettings):
    """A camera, and what the vesicle counter needs to know of it (PSF, calibration)."""

    kind: ClassVar[str] = "camera"
    pixel_size_um: Micrometres | None = Field(None, gt=0)
    exposure_ms: Milliseconds = Field(50.0, gt=0,
                                      validation_alias=AliasChoices("exposure", "exposure_ms"))
    gain: float | None = Field(None, gt=0)
    roi: tuple[int, int, int, int] | None = None  # x, y, width, height in sensor pixels
    binning: Literal[1, 2, 4] = 1
    sensor: tuple[int, int] | None = None  # width, height in pixels, for the dry run
    exposure_range: tuple[Milliseconds, Milliseconds] | None = None
    psf_sigma_px: float = Field(1.3, gt=0)
    e_per_adu: float | None = Field(None, gt=0)  # calibrated gain; None: estimated per frame
    offset_adu: float = Field(100.0, ge=0)
    read_noise_e: float = Field(1.6, ge=0)

    @field_validator("roi")
    @classmethod
    def _roi(cls, value: tuple[int, int, int, int] | None) -> tuple[int, int, int, int] | None:
        if value is not None and (min(value[:2]) < 0 or min(value[2:]) <= 0):
            raise ValueError("roi is [x, y, width, height] with x, y >= 0 and a positive size")
        return value


class SimCameraSettings(CameraSettings):
    """The simulator's camera; its pixel size is asked of the camera unless given."""

    driver: Literal["sim-camera"]
    gain: float = Field(1.0, gt=0)
    timeout: Seconds = Field(2.0, gt=0)


class OpenCvSettings(CameraSettings):
    """A UVC camera through OpenCV; `url` is a device index ("0"), a path or a stream URL."""

    serial: ClassVar[bool] = False
    driver: Literal["opencv"]
    pixel_size_um: Micrometres = Field(1.0, gt=0)


class ViciSettings(DeviceSettings):
    """A VICI Valco universal actuator on a Cheminert multiposition selector valve.
    `positions`: how many ports the bench expects (checked against the valve at connect)."""

    kind: ClassVar[str] = "valve"
    driver: Literal["vici"]
    positions: int | None = Field(None, ge=2, le=96)
    device_id: str | None = Field(None, pattern=r"^[0-9A-Z]$")
    timeout: Seconds = Field(0.5, gt=0)
    move_timeout: Seconds = Field(10.0, gt=0)


class MicroManagerRoles(Settings):
    """Device labels of a Micro-Manager configuration, by the role they play for chipctl."""

    camera: str | None = None
    xy: str | None = None
    focus: str | None = None
    light: str | None = None  # a shutter-type device: an LED or lamp controller, a shutter
    filter: str | None = None  # a state device: filter wheel or turret

    def labels(self) -> dict[str, str]:
        """role -> label, for the roles given."""
        return {role: label for role, label in self.model_dump().items() if label}


MM_ROLE_KINDS = {"camera": "camera", "xy": "stage", "focus": "stage", "light": "illuminator"}
"""Which kind of device each role makes the entry (`filter` serves the illuminator)."""


class MicroManagerChannel(Settings):
    """What turns on one fluorescence channel: a preset, a filter position, a power property."""

    preset: str | None = None  # a preset of the entry's channel_group
    filter: str | int | None = None  # a state label (or position) of the filter role
    power_property: str | None = None  # a property of the light role taking the power
    power_max: float = Field(default=100.0, gt=0)  # the property's value at 100 %


class MicroManagerSettings(CameraSettings):
    """A microscope run through Micro-Manager (pymmcore-plus): its configuration file (or
    mm_dir + config) and which of its devices plays which role. It is the bench's camera,
    stage and illuminator by its roles; `channels` maps the protocol's channel names to what
    selects them (`AF488: GFP` is short for `{filter: GFP}`); without them each label of the
    filter role is a channel. pixel_size_um serves only where Micro-Manager has no pixel size
    calibration. A relative config is read from mm_dir, else from the bench file's folder
    (`bench_dir`, which the bench loader fills in)."""

    kind: ClassVar[str] = "microscope"
    serial: ClassVar[bool] = False
    driver: Literal["micromanager"]
    url: str = "micromanager"
    config: str
    mm_dir: str | None = None
    bench_dir: str = ""
    roles: MicroManagerRoles
    channels: dict[str, MicroManagerChannel] = Field(default_factory=dict)
    channel_group: str | None = None
    xy_tolerance_um: Micrometres = Field(2.0, gt=0)
    z_tolerance_um: Micrometres = Field(0.5, gt=0)
    move_timeout_s: Seconds = Field(30.0, gt=0, alias="move_timeout")

    @field_validator("channels", mode="before")
    @classmethod
    def _shorthand(cls, value: Any) -> Any:
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
        """camera, stage and/or illuminator, by the roles mapped."""
        return tuple(dict.fromkeys(MM_ROLE_KINDS[r] for r in self.roles.labels()
                                   if r in MM_ROLE_KINDS))


DeviceSpec = Annotated[
    NewEraSettings | HarvardSettings | CoolLedSettings | PriorSettings | SimCameraSettings
    | OpenCvSettings | ViciSettings | MicroManagerSettings,
    Field(discriminator="driver"),
]
"""One device entry of a bench file, typed by its driver."""

_SPEC = TypeAdapter(DeviceSpec)
DRIVER_SETTINGS: dict[str, type[DeviceSettings]] = {
    get_args(model.model_fields["driver"].annotation)[0]: model
    for model in (NewEraSettings, HarvardSettings, CoolLedSettings, PriorSettings,
                  SimCameraSettings, OpenCvSettings, ViciSettings, MicroManagerSettings)
}
"""Driver name -> its settings model (the names the bench file accepts)."""


def device_settings(driver: str, url: str = "test://", **settings: Any) -> DeviceSettings:
    """One device entry from keyword settings (as a bench file would give them)."""
    return _SPEC.validate_python({"driver": driver, "url": url, **settings})
