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
import io
import math
from pathlib import Path
from typing import Any

import numpy as np

from chipctl.vision.model import CountResult, empty_spots

SPOT_COLUMNS = ["seq", "file", "step", "zone", "field", "channel", "x", "y", "amplitude", "snr",
                "photons", "crlb_x", "crlb_y", "multiplicity", "threshold"]
_MEASURES = (("amplitude", 3), ("snr", 3), ("photons", 1), ("crlb_x", 4), ("crlb_y", 4))
SPOTS_NAME = "spots.csv"


def spot_text(entry: dict[str, Any], result: CountResult) -> str:
    """The spots.csv lines of one frame (its frame-log entry and its count): the text
    csv.writer gives for one row per spot, its numbers rounded a column at a time."""
    spots = result.spots
    where = io.StringIO()
    csv.writer(where).writerow([entry.get(key) for key in SPOT_COLUMNS[:6]])
    head = where.getvalue()[:-2]  # the frame's own cells, without the "\r\n"
    columns = [decimals(spots["x"], 3, blank=False), decimals(spots["y"], 3, blank=False),
               *(decimals(spots[k], nd) for k, nd in _MEASURES),
               [str(m) for m in spots["multiplicity"].tolist()]]
    tail = f",{_cell(result.threshold, 3)}\r\n"
    return "".join(f"{head},{','.join(cells)}{tail}" for cells in zip(*columns, strict=True))


def decimals(values: np.ndarray, digits: int, blank: bool = True) -> list[str]:
    """Each value as csv writes ``round(float(v), digits)``; a non-finite value as ""
    (``blank``) or as Python spells it.

    Rounded in numpy: where v 10^digits lies below 10^9 and clear of a tie by more than its
    float error, the integer c nearest it is the correctly rounded one, so c / 10^digits is
    the double Python's round gives. The rest (near a tie, huge, not finite) is rounded by
    Python itself."""
    v = np.asarray(values, np.float64)
    scale = 10.0**digits
    with np.errstate(invalid="ignore", over="ignore"):
        scaled = v * scale
        c = np.rint(scaled)
        exact = np.isfinite(c) & (np.abs(c) < 1e9) & (0.5 - np.abs(scaled - c) > 1e-6)
    texts = list(map(repr, (np.where(exact, c, 0.0) / scale).tolist()))
    for k in np.flatnonzero(~exact).tolist():
        texts[k] = str(_cell(v[k], digits) if blank else round(float(v[k]), digits))
    return texts


def _cell(value: float, digits: int) -> float | str:
    return round(float(value), digits) if np.isfinite(value) else ""


def read_detections(path: Path) -> dict[int, CountResult]:
    """Per frame number (seq), the spots recorded for it (complete rows only)."""
    if not path.is_file():
        return {}
    text = path.read_text(encoding="utf-8", errors="replace")
    body = text[:text.rfind("\n") + 1]  # a row torn by a crash has no newline yet
    header = next(csv.reader([body[:body.find("\n")]]), []) if body else []
    if not header or any(k not in header for k in _REQUIRED):
        return {}
    table = _parsed(body, header)
    if table is None:
        table = _parsed_row_by_row(body, header)
    if table is None:
        return {}
    table[:, -1] = np.where(np.isnan(table[:, -1]), 1.0, table[:, -1])
    table = table[np.all(np.isfinite(table[:, :len(_REQUIRED)]), axis=1)]
    seq = table[:, 0].astype(np.int64)
    order = np.argsort(seq, kind="stable")
    frames, starts = np.unique(seq[order], return_index=True)
    out = {}
    for frame, index in zip(frames.tolist(), np.split(order, starts[1:]), strict=True):
        array = empty_spots(index.size)
        for k, name in enumerate((*_REQUIRED[1:], *_OPTIONAL), start=1):
            array[name] = table[index, k]
        out[int(frame)] = CountResult(index.size, array)
    return out


def _parsed(body: str, header: list[str]) -> np.ndarray | None:
    """The numeric columns (_REQUIRED, _OPTIONAL; a missing optional one NaN) by numpy's C
    parser; None when a row is not plain (quoted cells, a row torn in the middle)."""
    if '"' in body or body.count("\n") < 2:
        return None
    present = [k for k in (*_REQUIRED, *_OPTIONAL) if k in header]
    filled = body.replace(",,", ",nan,").replace(",,", ",nan,").replace(",\n", ",nan\n")
    try:
        values = np.loadtxt(io.StringIO(filled), delimiter=",", skiprows=1, ndmin=2,
                            usecols=[header.index(k) for k in present], dtype=float)
    except ValueError:
        return None
    return _columns(lambda k: values[:, present.index(k)], len(values), header)


def _parsed_row_by_row(body: str, header: list[str]) -> np.ndarray | None:
    """The same with Python's csv reader, keeping only rows of the header's length."""
    whole = [r for r in csv.reader(body.split("\n")[1:-1]) if len(r) == len(header)]
    if not whole:
        return None
    cells = list(zip(*whole, strict=True))
    return _columns(lambda k: _floats(cells[header.index(k)]), len(whole), header)


def _columns(column: Any, rows: int, header: list[str]) -> np.ndarray:
    return np.column_stack([column(k) if k in header else
                            np.full(rows, 1.0 if k == "multiplicity" else math.nan)
                            for k in (*_REQUIRED, *_OPTIONAL)])


def _floats(cells: tuple[str, ...]) -> np.ndarray:
    """A column of numbers; an empty or unreadable cell is NaN."""
    text = np.asarray(cells, dtype=str)
    text = np.where(text == "", "nan", text)
    try:
        return text.astype(float)
    except ValueError:
        return np.array([_number(c) for c in text.tolist()])


_REQUIRED = ("seq", "x", "y", "amplitude", "snr")
_OPTIONAL = ("photons", "crlb_x", "crlb_y", "multiplicity")


def _number(text: str) -> float:
    try:
        return float(text)
    except ValueError:
        return math.nan
