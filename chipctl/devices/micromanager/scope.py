"""A microscope run through Micro-Manager: one bench device, several roles.

`make_micromanager` is the factory the rig calls for `driver: micromanager`. The device it
returns loads the configuration on connect() and unloads it on close(); its `roles` (camera,
stage, illuminator) are what the rig hands the executor, autofocus and the GUI when they ask
for a device of that kind.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Mapping
from typing import Any

from chipctl.config.devices import MicroManagerSettings
from chipctl.devices.micromanager.core import MicroManagerUnavailable, mm_call, open_core
from chipctl.devices.micromanager.roles import role_adapters

CoreOpener = Callable[[str, MicroManagerSettings], Any]

# role -> the Micro-Manager device types it accepts (pymmcore_plus.DeviceType values)
ROLE_TYPES = {"camera": ("CameraDevice",), "xy": ("XYStageDevice",), "focus": ("StageDevice",),
              "light": ("ShutterDevice",), "filter": ("StateDevice",)}


class MicroManagerScope:
    """The devices of one Micro-Manager configuration, in the roles the bench file maps.

    `core` is the loaded CMMCorePlus (or UniMMCore) while connected, else None. `model` and
    `firmware` describe Micro-Manager and the mapped devices for the run record.
    """

    def __init__(self, name: str, settings: MicroManagerSettings,
                 open_core: CoreOpener = open_core) -> None:
        self.name, self.settings = name, settings
        self._open_core = open_core
        self.core: Any = None
        self.model: str | None = None
        self.firmware: str | None = None
        self.roles: Mapping[str, Any] = role_adapters(self, settings)

    def connect(self) -> None:
        """Load the configuration, check the roles' devices, set up every role."""
        self.core = self._open_core(self.name, self.settings)
        try:
            with mm_call(self.name, "turn AutoShutter off"):
                self.core.setAutoShutter(False)
            self._check_roles()
            for role in self.roles.values():
                role.connect()
            self._describe()
        except BaseException:
            self.close()
            raise

    def _check_roles(self) -> None:
        from pymmcore_plus import DeviceType

        loaded = [str(label) for label in self.core.getLoadedDevices()]
        for role, label in self.settings.roles.labels().items():
            wanted = [DeviceType[name] for name in ROLE_TYPES[role]]
            if label not in loaded:
                raise MicroManagerUnavailable(
                    self.name, f"roles.{role}: no device {label!r} in {self.settings.config};"
                               f" its devices: {', '.join(loaded)}")
            found = DeviceType(int(self.core.getDeviceType(label)))
            if found not in wanted:
                raise MicroManagerUnavailable(
                    self.name, f"roles.{role}: {label!r} is a {found.name}, not a"
                               f" {' or '.join(w.name for w in wanted)}")

    def _describe(self) -> None:
        core = self.core
        self.model = f"Micro-Manager {core.getVersionInfo()} ({core.getAPIVersionInfo()})"
        self.firmware = "; ".join(
            f"{role}={label} ({core.getDeviceLibrary(label)}/{core.getDeviceName(label)})"
            for role, label in self.settings.roles.labels().items())

    def stage_metadata(self) -> dict[str, float]:
        """The xy and focus roles' positions, for a frame's metadata (stage_x_um, ...)."""
        stage = self.roles.get("stage")
        out: dict[str, float] = {}
        if stage is None:
            return out
        if stage.xy is not None:
            out["stage_x_um"], out["stage_y_um"] = stage.position()
        if stage.focus_drive is not None:
            out["stage_z_um"] = stage.focus()
        return out

    def close(self) -> None:
        """Stop the camera, unload every device and let the core go; never raises."""
        camera = self.roles.get("camera")
        if camera is not None:
            with contextlib.suppress(Exception):
                camera.stop()
        core, self.core = self.core, None
        if core is not None:
            with contextlib.suppress(Exception):
                core.unloadAllDevices()
            with contextlib.suppress(Exception):
                _unregister_callback(core)


def _unregister_callback(core: Any) -> None:
    """Detach the core from its Python callback relay.

    NOTE: a core in a reference cycle is destroyed by the interpreter's last collection, when
    the relay it would call is already torn down; MMCore's destructor then aborts the process
    ("FATAL: exception not rethrown", exit 134) after every run had ended well. Without a
    callback registered it is destroyed quietly. (CMMCorePlus forbids registerCallback, so
    this calls pymmcore's own.)
    """
    import pymmcore

    pymmcore.CMMCore.registerCallback(core, None)


def make_micromanager(name: str, settings: MicroManagerSettings,
                      transport: object = None) -> MicroManagerScope:
    """A `micromanager` bench entry (the registry's factory; it talks to no serial port)."""
    return MicroManagerScope(name, settings)
