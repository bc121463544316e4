"""Opening a Micro-Manager core on a configuration file, and its errors as chipctl's.

`open_core` checks what the configuration needs before loading it, so that a missing piece is
named plainly: pymmcore-plus itself, a Micro-Manager installation (for C++ device adapters), or
one adapter (with the configuration's line). A configuration with Python devices (`#py
pyDevice,...` lines) is loaded into pymmcore-plus' UniMMCore, which runs C++ adapters and
Python devices side by side; any other into CMMCorePlus.

`mm_call` turns whatever a Micro-Manager call raises (pymmcore raises RuntimeError with the
core's message; a Python device may raise anything) into drivers.errors, naming the device.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from chipctl.config.devices import MicroManagerSettings
from drivers.errors import (
    DeviceDisconnected,
    DeviceError,
    DeviceTimeout,
    OutOfRange,
)

log = logging.getLogger(__name__)

INSTALL_PYMMCORE = "pip install 'chipctl[micromanager]' (pymmcore-plus)"
INSTALL_MM = ("install Micro-Manager 2.0 (https://micro-manager.org/Download_Micro-Manager_Latest"
              "_Release) or run 'mmcore install' (pymmcore-plus), or give mm_dir in the bench file")


class MicroManagerUnavailable(DeviceDisconnected):
    """Micro-Manager cannot be used as the bench file asks: something to install is missing,
    or the configuration does not load or lacks a device the roles name."""


@dataclass(frozen=True)
class ConfigDevice:
    """A `Device` (C++ adapter) or `#py pyDevice` (Python class) line of a configuration."""

    label: str
    library: str  # adapter name, or Python module
    device: str
    line: int
    python: bool


def config_devices(path: Path) -> list[ConfigDevice]:
    """The devices a Micro-Manager configuration file loads, with their lines."""
    found = []
    for number, raw in enumerate(path.read_text(encoding="utf-8", errors="replace")
                                 .splitlines(), start=1):
        line = raw.strip()
        python = line.startswith("#py ")
        if python:
            line = line[4:].strip()
        fields = [field.strip() for field in line.split(",")]
        if len(fields) >= 4 and fields[0] == ("pyDevice" if python else "Device"):
            found.append(ConfigDevice(fields[1], fields[2], fields[3], number, python))
    return found


def config_path(name: str, settings: MicroManagerSettings) -> Path:
    """The configuration file: as given, else in mm_dir, else beside the bench file."""
    path = Path(settings.config).expanduser()
    if not path.is_absolute():
        base = settings.mm_dir or settings.bench_dir or "."
        path = Path(base).expanduser() / path
    if not path.is_file():
        raise MicroManagerUnavailable(name, f"Micro-Manager configuration {path} not found")
    return path


@contextlib.contextmanager
def _quiet(logger_name: str) -> Iterator[None]:
    """pymmcore-plus logs its own advice when it finds no installation; chipctl gives one."""
    logger = logging.getLogger(logger_name)
    previous, logger.disabled = logger.disabled, True
    try:
        yield
    finally:
        logger.disabled = previous


def find_installation() -> str | None:
    """pymmcore-plus' search for a Micro-Manager installation (MICROMANAGER_PATH, `mmcore
    install`'s folder, the default install location); None if there is none."""
    from pymmcore_plus import find_micromanager

    with _quiet("pymmcore-plus"):
        return find_micromanager()


def _mm_dir(name: str, settings: MicroManagerSettings, adapters: list[ConfigDevice],
            find: Callable[[], str | None]) -> Path | None:
    """The Micro-Manager installation whose adapters the configuration needs (None if it
    needs none)."""
    if settings.mm_dir:
        mm_dir = Path(settings.mm_dir).expanduser()
        if not mm_dir.is_dir():
            raise MicroManagerUnavailable(name, f"mm_dir {mm_dir} is not a folder; {INSTALL_MM}")
        return mm_dir
    if not adapters:
        return None
    found = find()
    if not found:
        first = adapters[0]
        raise MicroManagerUnavailable(
            name, f"no Micro-Manager installation found for the device adapter "
                  f"{first.library!r} (configuration line {first.line}); {INSTALL_MM}")
    return Path(found)


def _check_adapters(name: str, core: Any, path: Path, adapters: list[ConfigDevice],
                    mm_dir: Path | None) -> None:
    available = set(core.getDeviceAdapterNames())
    for item in adapters:
        if item.library not in available:
            raise MicroManagerUnavailable(
                name, f"the Micro-Manager device adapter {item.library!r} ({path}:{item.line},"
                      f" device {item.label!r}) is not in {mm_dir}; install the Micro-Manager"
                      f" build that includes it, and the vendor's driver for the hardware")


def open_core(name: str, settings: MicroManagerSettings,
              find: Callable[[], str | None] = find_installation) -> Any:
    """A Micro-Manager core with the bench entry's configuration loaded; `find` locates the
    Micro-Manager installation when the bench file gives no mm_dir."""
    path = config_path(name, settings)
    try:
        from pymmcore_plus import CMMCorePlus
        from pymmcore_plus.experimental.unicore import UniMMCore
    except ImportError as exc:
        raise MicroManagerUnavailable(
            name, f"pymmcore-plus is not installed ({exc}); {INSTALL_PYMMCORE}") from exc
    devices = config_devices(path)
    adapters = [d for d in devices if not d.python]
    mm_dir = _mm_dir(name, settings, adapters, find)
    core_class = UniMMCore if any(d.python for d in devices) else CMMCorePlus
    # chipctl's core is Qt-free and the GUI crosses threads itself: the core's own events stay
    # psygnal even in the GUI process (pymmcore-plus would pick Qt signals, via qtpy, there).
    os.environ.setdefault("PYMM_SIGNALS_BACKEND", "psygnal")
    # With no C++ adapter to find, the configuration's folder stands in for an installation
    # (pymmcore-plus would otherwise search the disk for one and complain it found none).
    core = core_class(mm_path=str(mm_dir or path.parent))
    try:
        _check_adapters(name, core, path, adapters, mm_dir)
        try:
            core.loadSystemConfiguration(str(path))
        except Exception as exc:  # noqa: BLE001 - every load failure is reported the same way
            raise MicroManagerUnavailable(
                name, f"cannot load {path}: {_first_lines(exc)}") from exc
    except BaseException:
        with contextlib.suppress(Exception):
            core.unloadAllDevices()
        raise
    log.info("%s: loaded %s into %s", name, path, core_class.__name__)
    return core


def _first_lines(exc: BaseException, lines: int = 3) -> str:
    text = " ".join(str(exc).split("\n")[:lines]).strip()
    return text or type(exc).__name__


def as_device_error(device: str, what: str, exc: BaseException,
                    error: type[DeviceError] = DeviceError,
                    timeout: type[DeviceTimeout] = DeviceTimeout) -> DeviceError:
    """A Micro-Manager (or Python device) exception as a typed chipctl device error."""
    text = _first_lines(exc)
    lower = text.lower()
    message = f"{what}: {text}"
    if "timed out" in lower or "timeout" in lower:
        return timeout(device, message)
    if "no device with label" in lower or "not loaded" in lower or "not initialized" in lower:
        return DeviceDisconnected(device, message)
    if isinstance(exc, ValueError | KeyError | IndexError) or any(
            word in lower for word in ("out of range", "invalid", "not allowed", "limit")):
        return OutOfRange(device, message)
    return error(device, message)


@contextlib.contextmanager
def mm_call(device: str, what: str, error: type[DeviceError] = DeviceError,
            timeout: type[DeviceTimeout] = DeviceTimeout) -> Iterator[None]:
    """Run Micro-Manager calls; their exceptions leave as drivers.errors naming `device`."""
    try:
        yield
    except DeviceError:
        raise
    except Exception as exc:  # noqa: BLE001 - a device adapter may raise anything
        raise as_device_error(device, what, exc, error, timeout) from exc
