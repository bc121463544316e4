"""A microscope made of pymmcore-plus UniMMCore Python devices, for the Micro-Manager bridge tests.

The devices are what a Micro-Manager configuration loads with `#py pyDevice,LABEL,mm_devices,
CLASS` lines; UniMMCore builds each with no arguments, so they share one module-level SCENE: a
chip surface at a known Z with captured vesicles at known stage positions, each labelled in the
GFP and/or Cy5 channel. The camera renders what is in view at the stage position, focus, filter
position, light power and exposure (a Gaussian PSF widened by defocus, Poisson shot noise, read
noise, offset), independently of chipctl's counter. `SCENE.truth(...)` says how many labelled
vesicles a frame shows.
"""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from pymmcore_plus.experimental.unicore import (
    ShutterDevice,
    SimpleCameraDevice,
    StageDevice,
    StateDevice,
    XYStageDevice,
    pymm_property,
)

SENSOR = (96, 128)  # rows, columns
PIXEL_UM = 0.65
FILTERS = {0: "GFP", 1: "Cy5", 2: "Empty"}


@dataclass
class Scene:
    """The state every test device reads and writes (one microscope per test)."""

    seed: int = 0
    surface_z_um: float = 12.0
    rayleigh_um: float = 2.5  # defocus at which the PSF sigma grows by sqrt(2)
    x_um: float = 0.0
    y_um: float = 0.0
    z_um: float = 0.0
    light_open: bool = False
    power: float = 0.0  # the light's Intensity property, 0-100
    filter_state: int = 0
    xy_limit_um: float = 5000.0
    xy_shortfall_um: float = 0.0  # the XY stage stops this far short of its target in x
    snap_fault: str | None = None  # a message the camera raises instead of a frame
    snap_hang: threading.Event | None = None  # the camera waits on it before a frame
    busy_polls: int = 2  # a move keeps its drive busy for this many deviceBusy() asks
    moves: list[tuple[float, float]] = field(default_factory=list)
    xy: np.ndarray = field(default_factory=lambda: np.empty((0, 2)))
    labels: np.ndarray = field(default_factory=lambda: np.empty((0, 2), bool))

    def populate(self, per_field: float = 25.0, span_um: float = 400.0) -> None:
        """Vesicles uniformly over a square around the origin; GFP 70 %, Cy5 50 %."""
        rng = np.random.default_rng(self.seed)
        field_area = SENSOR[0] * SENSOR[1] * PIXEL_UM**2
        n = int(per_field * (2 * span_um) ** 2 / field_area)
        self.xy = rng.uniform(-span_um, span_um, (n, 2))
        self.labels = np.column_stack([rng.random(n) < 0.7, rng.random(n) < 0.5])

    def in_view(self, x_um: float, y_um: float, margin_px: float = 0.0) -> np.ndarray:
        """Which vesicles fall on the sensor with the stage at (x, y)."""
        half_w = (SENSOR[1] / 2 - margin_px) * PIXEL_UM
        half_h = (SENSOR[0] / 2 - margin_px) * PIXEL_UM
        return ((np.abs(self.xy[:, 0] - x_um) < half_w)
                & (np.abs(self.xy[:, 1] - y_um) < half_h))

    def truth(self, x_um: float, y_um: float, channel: str, margin_px: float = 0.0) -> int:
        """Labelled vesicles of `channel` (GFP or Cy5) in view at (x, y)."""
        column = {"GFP": 0, "Cy5": 1}[channel]
        return int(np.count_nonzero(self.in_view(x_um, y_um, margin_px)
                                    & self.labels[:, column]))

    def render(self, exposure_ms: float, rng: np.random.Generator) -> np.ndarray:
        """The camera frame (uint16 ADU) for the current stage, focus, filter and light."""
        h, w = SENSOR
        background_e = 30.0 * exposure_ms / 50.0
        photons = np.full((h, w), background_e)
        channel = FILTERS[self.filter_state]
        if self.light_open and channel in ("GFP", "Cy5"):
            column = 0 if channel == "GFP" else 1
            show = self.in_view(self.x_um, self.y_um, margin_px=-4) & self.labels[:, column]
            cols = (self.xy[show, 0] - self.x_um) / PIXEL_UM + (w - 1) / 2
            rows = (self.xy[show, 1] - self.y_um) / PIXEL_UM + (h - 1) / 2
            dz = self.z_um - self.surface_z_um
            sigma = 1.3 * np.sqrt(1 + (dz / self.rayleigh_um) ** 2)
            total_e = 1500.0 * exposure_ms / 50.0 * self.power / 100.0
            gy = np.exp(-((np.arange(h)[None, :] - rows[:, None]) ** 2) / (2 * sigma**2))
            gx = np.exp(-((np.arange(w)[None, :] - cols[:, None]) ** 2) / (2 * sigma**2))
            photons += (total_e / (2 * np.pi * sigma**2) * gy).T @ gx
        electrons = rng.poisson(photons) + rng.normal(0, 1.6, (h, w))
        return np.clip(np.rint(100 + electrons / 0.46), 0, 65535).astype(np.uint16)


SCENE = Scene()
SCENE_ENV = "CHIPCTL_TEST_MM_SCENE"  # "SEED,SURFACE_Z_UM": the scene of a chipctl subprocess


def reset(seed: int = 0, surface_z_um: float = 12.0) -> Scene:
    """A fresh scene for one test (the module-level SCENE is replaced in place); the same
    seed gives the same vesicles."""
    SCENE.__dict__.update(Scene(seed=seed, surface_z_um=surface_z_um).__dict__)
    SCENE.populate()
    return SCENE


def scene_env(scene: Scene) -> dict[str, str]:
    """The environment that gives a subprocess loading these devices the same scene."""
    return {SCENE_ENV: f"{scene.seed},{scene.surface_z_um}"}


if os.environ.get(SCENE_ENV):
    _seed, _surface = os.environ[SCENE_ENV].split(",")
    reset(int(_seed), float(_surface))


class ChipCamera(SimpleCameraDevice):
    """A 128 x 96 sCMOS camera looking at SCENE."""

    def __init__(self) -> None:
        super().__init__()
        self._exposure = 50.0
        self._rng = np.random.default_rng(SCENE.seed + 1)

    def sensor_shape(self) -> tuple[int, int]:
        return SENSOR

    def dtype(self) -> type:
        return np.uint16

    def get_exposure(self) -> float:
        return self._exposure

    def set_exposure(self, exposure: float) -> None:
        self._exposure = float(exposure)

    def snap(self, buffer: np.ndarray) -> dict[str, float]:
        if SCENE.snap_hang is not None:
            SCENE.snap_hang.wait(30)
        if SCENE.snap_fault:
            raise RuntimeError(SCENE.snap_fault)
        buffer[:] = SCENE.render(self._exposure, self._rng)
        return {"z_um": SCENE.z_um}


class ChipXYStage(XYStageDevice):
    """An XY stage with travel limits; each move is busy for a few polls."""

    def __init__(self) -> None:
        super().__init__()
        self._busy_left = 0

    def set_position_um(self, x: float, y: float) -> None:
        if max(abs(x), abs(y)) > SCENE.xy_limit_um:
            raise ValueError(f"({x}, {y}) um is beyond the travel limit +-{SCENE.xy_limit_um}")
        SCENE.x_um, SCENE.y_um = float(x) - SCENE.xy_shortfall_um, float(y)
        SCENE.moves.append((float(x), float(y)))
        self._busy_left = SCENE.busy_polls

    def get_position_um(self) -> tuple[float, float]:
        return SCENE.x_um, SCENE.y_um

    def busy(self) -> bool:
        self._busy_left -= 1
        return self._busy_left >= 0

    def set_origin_x(self) -> None:
        raise NotImplementedError

    def set_origin_y(self) -> None:
        raise NotImplementedError

    def home(self) -> None:
        SCENE.x_um = SCENE.y_um = 0.0

    def stop(self) -> None:
        self._busy_left = 0


class ChipFocus(StageDevice):
    """The Z drive (focus), in um."""

    def __init__(self) -> None:
        super().__init__()
        self._busy_left = 0

    def set_position_um(self, pos: float) -> None:
        SCENE.z_um = float(pos)
        self._busy_left = SCENE.busy_polls

    def get_position_um(self) -> float:
        return SCENE.z_um

    def busy(self) -> bool:
        self._busy_left -= 1
        return self._busy_left >= 0

    def set_origin(self) -> None:
        raise NotImplementedError

    def home(self) -> None:
        SCENE.z_um = 0.0

    def stop(self) -> None:
        self._busy_left = 0


class ChipLight(ShutterDevice):
    """An LED controller: open/closed, and an Intensity property in percent."""

    def get_open(self) -> bool:
        return SCENE.light_open

    def set_open(self, open: bool) -> None:  # noqa: A002 - the adapter API's name
        SCENE.light_open = bool(open)

    @pymm_property(limits=(0.0, 100.0), name="Intensity")
    def intensity(self) -> float:
        return SCENE.power

    @intensity.setter
    def intensity(self, value: float) -> None:
        SCENE.power = float(value)


class ChipFilter(StateDevice):
    """A three-position filter turret: GFP, Cy5, Empty."""

    def __init__(self) -> None:
        super().__init__(FILTERS)

    def get_state(self) -> int:
        return SCENE.filter_state

    def set_state(self, position: int) -> None:
        SCENE.filter_state = int(position)


CONFIG = """\
# A Micro-Manager configuration whose devices are Python classes (UniMMCore '#py' lines).
#py pyDevice,Camera,mm_devices,ChipCamera
#py pyDevice,XY,mm_devices,ChipXYStage
#py pyDevice,Z,mm_devices,ChipFocus
#py pyDevice,LED,mm_devices,ChipLight
#py pyDevice,Turret,mm_devices,ChipFilter
#py Property,Core,Initialize,1
# UniMMCore keeps Python devices out of the C++ pixel-size presets: key one on a Core setting
ConfigPixelSize,Res20x,Core,TimeoutMs,5000
PixelSize_um,Res20x,{pixel}
"""

BENCH = """\
name: Micro-Manager bench
devices:
  scope:
    driver: micromanager
    config: {config}
    roles: {{camera: Camera, xy: XY, focus: Z, light: LED, filter: Turret}}
    channels:
      AF488: {{filter: GFP, power_property: Intensity}}
      AF647: {{filter: Cy5, power_property: Intensity}}
    psf_sigma_px: 1.3
    e_per_adu: 0.46
chip:
  zones:
    CD63: {{antibody: anti-CD63, center_um: [0, 0], size_um: [300, 300]}}
    CD81: {{antibody: anti-CD81, center_um: [150, -100], size_um: [300, 300]}}
"""


def write_bench(folder: Path, config: str = CONFIG, pixel_um: float = PIXEL_UM,
                bench: str = BENCH) -> Path:
    """The Micro-Manager configuration and a bench file naming it, in `folder`."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "scope.cfg").write_text(config.format(pixel=pixel_um), encoding="utf-8")
    path = folder / "bench.yaml"
    path.write_text(bench.format(config="scope.cfg"), encoding="utf-8")
    return path
