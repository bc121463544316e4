"""Raw frames as OME-TIFF, written as they arrive.

Choice: one small OME-TIFF per frame (frames/NNNNN-ZONE-fFIELD-CHANNEL.ome.tif), written to a
temporary name and renamed into place. An OME-TIFF's OME-XML describes every plane of the
file, so a multi-frame file is only valid once it is closed; per-frame files are each complete
the moment they appear, so a controller killed mid-run loses at most the frame being written,
and every file opens on its own in Fiji (Bio-Formats), napari and tifffile. Per-frame metadata
sits in the OME-XML: the Plane carries time (DeltaT), stage position X/Y/Z and exposure; the
Channel its name; a MapAnnotation (namespace "chipctl") carries zone, field, step, LED power
and, on the simulator, the true vesicle count.
"""

from __future__ import annotations

import os
import re
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import tifffile

OME_NS = "{http://www.openmicroscopy.org/Schemas/OME/2016-06}"
ANNOTATION_NS = "chipctl"


@dataclass(frozen=True)
class KeepPolicy:
    """Which frames to keep: every Nth (1 = all, 0 = none)."""

    every: int = 1

    @classmethod
    def parse(cls, text: str | int) -> KeepPolicy:
        """"all", "none" or a positive integer N (keep every Nth frame)."""
        value = str(text).strip().lower()
        if value == "all":
            return cls(1)
        if value == "none":
            return cls(0)
        if value.isdigit() and int(value) > 0:
            return cls(int(value))
        raise ValueError(f"keep frames {text!r}: say all, none, or a number N (every Nth frame)")

    def keeps(self, seq: int) -> bool:
        """True if frame number `seq` (0-based) is kept."""
        return self.every > 0 and seq % self.every == 0


def _first(meta: dict[str, Any], *keys: str) -> Any:
    for key in keys:
        node: Any = meta
        for part in key.split("."):
            node = node.get(part) if isinstance(node, dict) else None
        if node is not None:
            return node
    return None


def frame_fields(meta: dict[str, Any]) -> dict[str, Any]:
    """The frame metadata the run keeps, from whichever keys the camera adapter used."""
    raw_truth = meta.get("truth")
    truth: dict[str, Any] = raw_truth if isinstance(raw_truth, dict) else {}
    return {
        "time_s": _first(meta, "time_s", "t_s", "time"),
        "x_um": _first(meta, "stage_x_um", "x_um", "stage.x"),
        "y_um": _first(meta, "stage_y_um", "y_um", "stage.y"),
        "z_um": _first(meta, "stage_z_um", "z_um", "z", "focus_um", "stage.z"),
        "channel": meta.get("channel"),
        "exposure_ms": _first(meta, "exposure_ms", "exposure"),
        "power_pct": _first(meta, "power_pct", "led_power_pct"),
        "zone": meta.get("zone"),
        "field": meta.get("field"),
        "exposure_index": meta.get("exposure_index"),  # of the field's exposures (frames: K)
        "pixel_size_um": meta.get("pixel_size_um"),
        "true_count": truth.get("count"),
        "focus_offset_um": truth.get("focus_offset_um"),
    }


def _safe(text: Any) -> str:
    return re.sub(r"[^A-Za-z0-9_.]+", "_", str(text))


def ome_metadata(info: dict[str, Any]) -> dict[str, Any]:
    """tifffile OME metadata for one YX frame."""
    plane: dict[str, float | str] = {}
    for key, attr, unit in (("time_s", "DeltaT", "s"), ("exposure_ms", "ExposureTime", "ms"),
                            ("x_um", "PositionX", "µm"), ("y_um", "PositionY", "µm"),
                            ("z_um", "PositionZ", "µm")):
        if info.get(key) is not None:
            plane[attr], plane[f"{attr}Unit"] = float(info[key]), unit
    meta: dict[str, Any] = {
        "axes": "YX", "Name": f"{info.get('zone')} field {info.get('field')} {info.get('channel')}",
        "Channel": {"Name": str(info.get("channel"))}, "Plane": plane,
        "MapAnnotation": {"Namespace": ANNOTATION_NS, "Value": {
            k: str(v) for k, v in info.items() if v is not None and k != "file"}},
    }
    if info.get("pixel_size_um"):
        size = float(info["pixel_size_um"])
        meta.update(PhysicalSizeX=size, PhysicalSizeXUnit="µm",
                    PhysicalSizeY=size, PhysicalSizeYUnit="µm")
    return meta


class FrameStore:
    """Writes kept frames into a run's frames/ folder."""

    def __init__(self, folder: Path, policy: KeepPolicy, pixel_size_um: float | None = None):
        self.folder, self.policy, self.pixel_size_um = folder, policy, pixel_size_um
        self.seen = 0
        self._unsynced: list[Path] = []

    def add(self, frame: Any, step: int | None = None) -> dict[str, Any]:
        """Keep (or skip) one chipctl.devices.interfaces.Frame; returns its log entry."""
        seq, self.seen = self.seen, self.seen + 1
        image = np.asarray(frame.image)
        info = {"seq": seq, "step": step, **frame_fields(dict(frame.metadata or {})),
                "height": int(image.shape[0]), "width": int(image.shape[-1])}
        if info["pixel_size_um"] is None:
            info["pixel_size_um"] = self.pixel_size_um
        if not self.policy.keeps(seq):
            return {**info, "file": None}
        self.folder.mkdir(exist_ok=True)
        name = f"{seq:05d}-{_safe(info['zone'])}-f{info['field']}-{_safe(info['channel'])}.ome.tif"
        path = self.folder / name
        tmp = path.with_name(f".{name}.part")
        tifffile.imwrite(tmp, image, ome=True, photometric="minisblack",
                         metadata=ome_metadata(info))
        os.replace(tmp, path)
        self._unsynced.append(path)
        return {**info, "file": f"frames/{name}"}

    def sync(self) -> None:
        """Force the frames written since the last sync onto the disk."""
        for path in self._unsynced:
            fd = os.open(path, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
        self._unsynced.clear()


def _number(text: str) -> Any:
    try:
        return int(text)
    except ValueError:
        try:
            return float(text)
        except ValueError:
            return None if text == "None" else text


def read_frame(path: str | Path) -> tuple[np.ndarray, dict[str, Any]]:
    """A frame written by FrameStore and its metadata (from the OME-XML)."""
    with tifffile.TiffFile(path) as tif:
        image = tif.asarray()
        xml = tif.ome_metadata or ""
    root = ET.fromstring(xml)
    meta: dict[str, Any] = {}
    for m in root.iter(f"{OME_NS}M"):
        meta[m.get("K", "")] = _number(m.text or "")
    plane = root.find(f".//{OME_NS}Plane")
    names = {"DeltaT": "time_s", "ExposureTime": "exposure_ms", "PositionX": "x_um",
             "PositionY": "y_um", "PositionZ": "z_um"}
    for attr, key in names.items():
        if plane is not None and plane.get(attr) is not None:
            meta[key] = float(plane.get(attr, "nan"))
    channel = root.find(f".//{OME_NS}Channel")
    if channel is not None:
        meta["channel"] = channel.get("Name")
    return image, meta
