"""What the engine needs of each kind of device, in the lab's units.

Driver adapters (built by chipctl.devices.rig from the bench file) satisfy these protocols;
the executor and the GUI only ever talk to these. Volumes in uL, flow rates in uL/min,
positions in um, exposure in ms, LED power in percent. Device faults surface as
drivers.errors exceptions.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

import numpy as np

from drivers.errors import DeviceError


@dataclass
class Syringe:
    """A syringe on a pump and a running account of what it holds."""

    inner_diameter_mm: float
    volume_ul: float
    contents_ul: float = 0.0
    reagent: str = ""


@runtime_checkable
class Device(Protocol):
    """Every device: a name, connect and close."""

    name: str

    def connect(self) -> None: ...

    def close(self) -> None: ...


@runtime_checkable
class SyringePump(Device, Protocol):
    """A syringe pump. infuse/withdraw start pumping and return; poll is_running()."""

    syringe: Syringe

    def infuse(self, rate_ul_min: float, volume_ul: float | None = None) -> None: ...

    def withdraw(self, rate_ul_min: float, volume_ul: float | None = None) -> None: ...

    def stop(self) -> None: ...

    def is_running(self) -> bool: ...

    def displaced_ul(self) -> float:
        """Net volume pushed out since the last infuse/withdraw started (withdraw < 0)."""
        ...


@runtime_checkable
class Valve(Device, Protocol):
    """A rotary selector valve: one common port connected to one of its ports."""

    @property
    def ports(self) -> range:
        """The port numbers the valve accepts."""
        ...

    def select(self, port: int) -> None:
        """Turn to `port` and return once it is there."""
        ...

    def position(self) -> int:
        """The port the common port is connected to."""
        ...


@runtime_checkable
class Illuminator(Device, Protocol):
    """An LED illuminator with named fluorescence channels (e.g. AF488, AF555, AF647)."""

    channels: tuple[str, ...]

    def light(self, channel: str, power_pct: float) -> None:
        """Turn `channel` on at `power_pct` percent, every other channel off."""
        ...

    def dark(self) -> None:
        """Every channel off."""
        ...

    def state(self) -> dict[str, tuple[bool, float]]:
        """channel -> (on, power %)."""
        ...


@runtime_checkable
class Stage(Device, Protocol):
    """XY stage and Z focus, in um."""

    def move_to(self, x_um: float, y_um: float) -> None: ...

    def position(self) -> tuple[float, float]: ...

    def focus_to(self, z_um: float) -> None: ...

    def focus(self) -> float: ...

    def wait_idle(self, timeout_s: float = 30.0) -> None: ...

    def halt(self) -> None: ...


@dataclass
class Frame:
    """One camera frame and its metadata (time, exposure, ROI, and on the simulator, truth)."""

    image: np.ndarray
    metadata: dict[str, Any] = field(default_factory=dict)


@runtime_checkable
class Camera(Device, Protocol):
    """A camera delivering uint16 frames."""

    pixel_size_um: float
    exposure_ms: float

    def snap(self, timeout_s: float = 5.0) -> Frame: ...


def reported_firmware(query: Callable[[], str]) -> str | None:
    """What a device reports of its firmware, for the run record (None if it will not say)."""
    try:
        return query() or None
    except DeviceError:
        return None
