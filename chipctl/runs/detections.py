"""The detections of every counted frame: spots.csv, one row per vesicle found.

Each row names its frame (`seq`, the frame's number in the run, and `file`, the kept OME-TIFF
or empty when the frame was not kept), where it was taken (step, zone, field, channel) and
the spot: x (column) and y (row) in pixels with (0, 0) at the centre of the top-left pixel,
amplitude (ADU above background at the peak) and local SNR. A frame with no spots has no
rows; which frames were counted is in counts.csv and the event log. Reports read these
instead of counting again.
"""

from __future__ import annotations

import csv
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np

from chipctl.vision.model import SPOT_DTYPE, CountResult

SPOT_COLUMNS = ["seq", "file", "step", "zone", "field", "channel", "x", "y", "amplitude", "snr"]
SPOTS_NAME = "spots.csv"


def spot_rows(entry: dict[str, Any], result: CountResult) -> list[dict[str, Any]]:
    """The spots.csv rows of one frame (its frame-log entry and its count)."""
    where = {key: entry.get(key) for key in ("seq", "file", "step", "zone", "field", "channel")}
    return [{**where, "x": round(float(s["x"]), 3), "y": round(float(s["y"]), 3),
             "amplitude": round(float(s["amplitude"]), 3), "snr": round(float(s["snr"]), 3)}
            for s in result.spots]


def read_detections(path: Path) -> dict[int, CountResult]:
    """Per frame number (seq), the spots recorded for it (complete rows only)."""
    if not path.is_file():
        return {}
    lines = path.read_text(encoding="utf-8", errors="replace").split("\n")[:-1]
    rows: dict[int, list[tuple[float, float, float, float]]] = defaultdict(list)
    for row in csv.DictReader(lines):
        try:
            rows[int(row["seq"])].append((float(row["x"]), float(row["y"]),
                                          float(row["amplitude"]), float(row["snr"])))
        except (KeyError, TypeError, ValueError):
            continue  # a row torn by a crash
    return {seq: _result(spots) for seq, spots in rows.items()}


def _result(spots: list[tuple[float, float, float, float]]) -> CountResult:
    array = np.array(spots, dtype=SPOT_DTYPE)
    return CountResult(len(array), array)
