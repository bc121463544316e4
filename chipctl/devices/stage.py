"""The stage as the engine sees it: a Prior ProScan III, XY and Z focus in um.

A target outside the stage's soft travel limits (the bench file's `travel`) is refused with a
StageFault before anything is sent; beyond them the controller's limit switches stop the
stage, and `wait_idle` reports that as a StageFault too (with the limit latch).
"""

from __future__ import annotations

from chipctl.config.devices import PriorSettings, TravelSettings
from chipctl.devices.interfaces import reported_firmware
from drivers.errors import StageFault, StageReset
from drivers.prior import ProScan
from drivers.transport import SerialTransport


def outside_travel(travel: TravelSettings | None, *, x_um: float | None = None,
                   y_um: float | None = None, z_um: float | None = None) -> str | None:
    """Why a target is outside the travel limits, or None if it is inside them (or there are
    none for its axes)."""
    if travel is None:
        return None
    for axis, value, limits in (("x", x_um, travel.x_um), ("y", y_um, travel.y_um),
                                ("z", z_um, travel.z_um)):
        if value is not None and limits is not None and not limits[0] <= value <= limits[1]:
            return (f"{axis} {value:g} um is outside the stage's travel limits "
                    f"({limits[0]:g} to {limits[1]:g} um)")
    return None


class PriorStage:
    """Stage over a ProScan III: XY and Z in um; wait_idle checks the stage got there."""

    def __init__(
        self,
        name: str,
        driver: ProScan,
        *,
        xy_tolerance_um: float = 2.0,
        z_tolerance_um: float = 0.5,
        speed_pct: int | None = None,
        travel: TravelSettings | None = None,
    ) -> None:
        self.name = name
        self.travel = travel
        self.driver = driver
        self.firmware: str | None = None
        self.xy_tolerance_um = xy_tolerance_um
        self.z_tolerance_um = z_tolerance_um
        self.speed_pct = speed_pct
        self._target_xy: tuple[float, float] | None = None
        self._target_z: float | None = None

    def connect(self) -> None:
        """Open the link in standard mode; apply the configured speed."""
        self.driver.connect()
        self.firmware = reported_firmware(self.driver.version)
        if self.speed_pct is not None:
            self.driver.set_speed(self.speed_pct)

    def close(self) -> None:
        """Close the link."""
        self.driver.close()

    def move_to(self, x_um: float, y_um: float) -> None:
        """Start an XY move; wait_idle() to know it arrived. StageFault, with nothing sent, for
        a target outside the travel limits."""
        why = outside_travel(self.travel, x_um=x_um, y_um=y_um)
        if why:
            raise StageFault(self.name, why)
        self._target_xy = (float(x_um), float(y_um))
        self.driver.move_to(x_um, y_um)

    def position(self) -> tuple[float, float]:
        """(x, y) um."""
        x, y, _ = self.driver.position()
        return x, y

    def focus_to(self, z_um: float) -> None:
        """Start a Z move (StageFault, with nothing sent, outside the travel limits)."""
        why = outside_travel(self.travel, z_um=z_um)
        if why:
            raise StageFault(self.name, why)
        self._target_z = float(z_um)
        self.driver.focus_to(z_um)

    def focus(self) -> float:
        """Z um."""
        return self.driver.z()

    def wait_idle(self, timeout_s: float = 30.0) -> None:
        """Wait until nothing moves; StageFault if the stage stopped short of its target,
        StageReset if the controller was reset since connect (back in compatibility mode: its
        origin, and every position after, is lost)."""
        self.driver.wait_idle(timeout_s)
        if self.driver.compatibility_mode() != 0:
            self._target_xy = self._target_z = None
            raise StageReset(self.name, "the controller is back in compatibility mode: it "
                             "was reset (power cycle?) and its origin is lost")
        x, y, z = self.driver.position()
        if self._target_xy is not None:
            tx, ty = self._target_xy
            if max(abs(x - tx), abs(y - ty)) > self.xy_tolerance_um:
                latch = self.driver.limit_latch()
                raise StageFault(
                    self.name,
                    f"XY stopped at ({x:g}, {y:g}) um, target ({tx:g}, {ty:g}); "
                    f"limit latch {latch}",
                )
        if self._target_z is not None and abs(z - self._target_z) > self.z_tolerance_um:
            raise StageFault(self.name, f"Z stopped at {z:g} um, target {self._target_z:g}")
        self._target_xy = self._target_z = None

    def halt(self) -> None:
        """Stop every axis now and forget the targets."""
        self._target_xy = self._target_z = None
        self.driver.stop()

    def set_filter(self, position: int, wheel: int = 1, timeout_s: float = 10.0) -> None:
        """Turn a filter wheel and wait until it is there."""
        self.driver.move_filter(wheel, position)
        self.driver.wait_idle(timeout_s)
        if self.driver.filter_position(wheel) != position:
            raise StageFault(self.name, f"filter wheel {wheel} did not reach {position}")

    def set_shutter(self, is_open: bool, shutter: int = 1) -> None:
        """Open or close a shutter on the controller."""
        self.driver.set_shutter(shutter, is_open)


def make_prior(name: str, settings: PriorSettings, transport: SerialTransport) -> PriorStage:
    """A Prior ProScan III from its bench-file entry (timeouts, speed, tolerances)."""
    driver = ProScan(transport, name=name, timeout=settings.timeout,
                     ack_timeout=settings.ack_timeout)
    return PriorStage(name, driver, xy_tolerance_um=settings.xy_tolerance_um,
                      z_tolerance_um=settings.z_tolerance_um, speed_pct=settings.speed_pct,
                      travel=settings.travel)
