"""The detections of every counted frame: spots.csv, one row per vesicle found.

Each row names its frame (`seq`, the frame's number in the run, and `file`, the kept OME-TIFF
or empty when the frame was not kept), where it was taken (step, zone, field, channel) and
the spot: x (column) and y (row) in pixels with (0, 0) at the centre of the top-left pixel,
amplitude (ADU above background at the peak), local SNR, photons (electrons), the Cramer-Rao
bounds of x and y (px), the multiplicity of a split detection and the frame's detection
threshold (local SNR; empty where not measured; older runs have no such columns). A frame
with no spots has no rows; which frames were counted is in counts.csv and the event log.
Reports read these instead of counting again.
"""

from __future__ import annotations

import csv
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np

from chipctl.vision.model import CountResult, empty_spots

SPOT_COLUMNS = ["seq", "file", "step", "zone", "field", "channel", "x", "y", "amplitude", "snr",
                "photons", "crlb_x", "crlb_y", "multiplicity", "threshold"]
_MEASURES = (("amplitude", 3), ("snr", 3), ("photons", 1), ("crlb_x", 4), ("crlb_y", 4))
SPOTS_NAME = "spots.csv"


def spot_rows(entry: dict[str, Any], result: CountResult) -> list[dict[str, Any]]:
    """The spots.csv rows of one frame (its frame-log entry and its count)."""
    where = {key: entry.get(key) for key in ("seq", "file", "step", "zone", "field", "channel")}
    threshold = _cell(result.threshold, 3)
    return [{**where, "x": round(float(s["x"]), 3), "y": round(float(s["y"]), 3),
             **{k: _cell(s[k], nd) for k, nd in _MEASURES}, "multiplicity": int(s["multiplicity"]),
             "threshold": threshold} for s in result.spots]


def _cell(value: float, digits: int) -> float | str:
    return round(float(value), digits) if np.isfinite(value) else ""


def read_detections(path: Path) -> dict[int, CountResult]:
    """Per frame number (seq), the spots recorded for it (complete rows only)."""
    if not path.is_file():
        return {}
    lines = path.read_text(encoding="utf-8", errors="replace").split("\n")[:-1]
    rows: dict[int, list[dict[str, float]]] = defaultdict(list)
    for row in csv.DictReader(lines):
        try:
            spot = {k: float(row[k]) for k in ("x", "y", "amplitude", "snr")}
            spot.update({k: _number(row.get(k)) for k in ("photons", "crlb_x", "crlb_y")})
            spot["multiplicity"] = int(row.get("multiplicity") or 1)
            rows[int(row["seq"])].append(spot)
        except (KeyError, TypeError, ValueError):
            continue  # a row torn by a crash
    return {seq: _result(spots) for seq, spots in rows.items()}


def _number(text: str | None) -> float:
    return float(text) if text else float("nan")


def _result(spots: list[dict[str, float]]) -> CountResult:
    array = empty_spots(len(spots))
    for name in spots[0] if spots else ():
        array[name] = [s[name] for s in spots]
    return CountResult(len(array), array)
