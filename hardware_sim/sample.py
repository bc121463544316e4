"""A sample file: the simulated sample in the sample syringe, described as a lab would.

    name: MSC-CM batch 7, 1:10
    concentration: 3.0e8 /mL          # particles per mL in the syringe
    size_nm: {median: 90, gsd: 1.5}   # log-normal diameter distribution
    markers: {CD9: 0.45, CD63: 0.75, CD81: 0.6}   # fraction carrying each marker
    co_expression: 0.5                # 0 = independent markers, 1 = maximally nested
    labelling_efficiency: 0.85        # fraction of marker-positive particles that get the dye
    free_protein: 12 ug/mL            # for the particle:protein ratio (MISEV2018)

Every key but `concentration` has a default (the simulator's default sample). Anything else
in the file, or a value out of its range, is a SampleError "FILE:LINE: message". The
simulator owns this format; chipctl only passes the path (`--sample FILE`).
"""

from __future__ import annotations

import math
import re
from pathlib import Path

import yaml

from hardware_sim.world import MARKERS, Reagent

MAX_BYTES = 64 * 1024
KEYS = ("name", "concentration", "size_nm", "markers", "co_expression",
        "labelling_efficiency", "free_protein", "labels")
_NUMBER = r"([-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?)"
CONCENTRATION = re.compile(_NUMBER + r"\s*(?:/\s*mL|per\s+mL)?\s*$", re.IGNORECASE)
PROTEIN_UNITS = {"ug/ml": 1.0, "mg/ml": 1000.0, "ng/ml": 1e-3, "g/l": 1000.0, "mg/l": 1.0}


class SampleError(ValueError):
    """A sample file that cannot be used: `FILE:LINE: message`."""

    def __init__(self, path: str | Path, line: int, message: str) -> None:
        super().__init__(f"{path}:{line}: {message}")


class _Reader:
    """Values of a composed YAML mapping, each with its line."""

    def __init__(self, path: Path, node: yaml.Node) -> None:
        self.path = path
        if not isinstance(node, yaml.MappingNode):
            raise self.error(node, "a sample file is a mapping of keys such as "
                             "'concentration: 1e8 /mL'")
        self.items: dict[str, yaml.Node] = {}
        for key, value in node.value:
            name = str(key.value)
            if name in self.items:
                raise self.error(key, f"'{name}' given twice")
            if name not in KEYS:
                raise self.error(key, f"unknown key '{name}'; known: {', '.join(KEYS)}")
            self.items[name] = value

    def error(self, node: yaml.Node, message: str) -> SampleError:
        return SampleError(self.path, node.start_mark.line + 1, message)

    def fraction(self, node: yaml.Node, what: str) -> float:
        value = _scalar_number(node)
        if value is None or not 0.0 <= value <= 1.0:
            raise self.error(node, f"{what} must be a fraction 0..1, got {node.value!r}")
        return value

    def positive(self, node: yaml.Node, what: str, low: float, high: float) -> float:
        value = _scalar_number(node)
        if value is None or not low <= value <= high:
            raise self.error(node, f"{what} must be a number {low:g}..{high:g}, "
                             f"got {node.value!r}")
        return value


def _scalar_number(node: yaml.Node) -> float | None:
    if not isinstance(node, yaml.ScalarNode):
        return None
    try:
        value = float(node.value)
    except ValueError:
        return None
    return value if math.isfinite(value) else None


def load_sample(path: str | Path) -> Reagent:
    """The sample syringe's reagent described by a sample file (SampleError if unusable)."""
    path = Path(path)
    try:
        if path.stat().st_size > MAX_BYTES:
            raise SampleError(path, 1, f"larger than {MAX_BYTES // 1024} KiB: not a sample file")
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise SampleError(path, 0, f"cannot read it: {exc.strerror or exc}") from exc
    except UnicodeDecodeError as exc:
        raise SampleError(path, 1, "not UTF-8 text") from exc
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 1 if mark is not None else 1
        raise SampleError(path, line, f"not valid YAML: {getattr(exc, 'problem', exc)}") from exc
    if node is None:
        raise SampleError(path, 1, "empty: give at least 'concentration: 1e8 /mL'")
    return _reagent(_Reader(path, node))


def _reagent(r: _Reader) -> Reagent:
    items = r.items
    if "concentration" not in items:
        raise SampleError(r.path, 1, "missing 'concentration', e.g. 'concentration: 1e8 /mL'")
    median, gsd = _size(r, items.get("size_nm"))
    return Reagent(
        "sample",
        vesicles_per_ml=_concentration(r, items["concentration"]),
        markers=_markers(r, items.get("markers")),
        labels=_labels(r, items.get("labels")),
        size_median_nm=median,
        size_gsd=gsd,
        co_expression=(r.fraction(items["co_expression"], "co_expression")
                       if "co_expression" in items else 0.0),
        labelling_efficiency=(r.fraction(items["labelling_efficiency"], "labelling_efficiency")
                              if "labelling_efficiency" in items else 1.0),
        free_protein_ug_ml=_protein(r, items.get("free_protein")),
        description=_name(r, items.get("name")),
    )


def _name(r: _Reader, node: yaml.Node | None) -> str:
    if node is None:
        return "sample"
    if not isinstance(node, yaml.ScalarNode) or not str(node.value).strip():
        raise r.error(node, "name must be text")
    text = "".join(ch for ch in str(node.value) if ch.isprintable())[:200]
    return text


def _concentration(r: _Reader, node: yaml.Node) -> float:
    match = CONCENTRATION.match(str(node.value).strip()) if isinstance(node, yaml.ScalarNode) \
        else None
    value = float(match.group(1)) if match else math.nan
    if not (math.isfinite(value) and 0 < value <= 1e13):
        raise r.error(node, f"concentration must be particles per mL above 0 and at most "
                      f"1e13, e.g. '3.0e8 /mL'; got {node.value!r}")
    return value


def _size(r: _Reader, node: yaml.Node | None) -> tuple[float, float]:
    if node is None:
        return 100.0, 1.0
    if not isinstance(node, yaml.MappingNode):
        raise r.error(node, "size_nm is {median: NM, gsd: G}, e.g. {median: 90, gsd: 1.5}")
    values = {str(k.value): v for k, v in node.value}
    unknown = set(values) - {"median", "gsd"}
    if unknown or "median" not in values:
        raise r.error(node, "size_nm is {median: NM, gsd: G} (gsd 1 = one size)")
    median = r.positive(values["median"], "size_nm.median", 20.0, 1000.0)
    gsd = r.positive(values["gsd"], "size_nm.gsd", 1.0, 3.0) if "gsd" in values else 1.0
    return median, gsd


def _markers(r: _Reader, node: yaml.Node | None) -> dict[str, float]:
    if node is None:
        return {"CD9": 0.5, "CD63": 0.8, "CD81": 0.7}
    if not isinstance(node, yaml.MappingNode):
        raise r.error(node, "markers maps each marker to a fraction, e.g. {CD9: 0.45}")
    markers: dict[str, float] = {}
    for key, value in node.value:
        if key.value not in MARKERS:
            raise r.error(key, f"unknown marker '{key.value}'; the chip knows "
                          f"{', '.join(MARKERS)}")
        markers[str(key.value)] = r.fraction(value, f"markers.{key.value}")
    return markers


def _labels(r: _Reader, node: yaml.Node | None) -> tuple[str, ...]:
    if node is None:
        return ()
    if not isinstance(node, yaml.SequenceNode) or any(
            not isinstance(v, yaml.ScalarNode) or v.value not in ("AF488", "AF555", "AF647")
            for v in node.value):
        raise r.error(node, "labels (a pre-labelled sample) lists dyes: AF488, AF555, AF647")
    return tuple(str(v.value) for v in node.value)


def _protein(r: _Reader, node: yaml.Node | None) -> float:
    if node is None:
        return 0.0
    text = str(node.value).strip() if isinstance(node, yaml.ScalarNode) else ""
    match = re.match(_NUMBER + r"\s*([a-zA-Z]+/[a-zA-Z]+)\s*$", text)
    unit = match.group(2).lower() if match else ""
    if match is None or unit not in PROTEIN_UNITS:
        raise r.error(node, f"free_protein is a concentration with its unit, e.g. "
                      f"'12 ug/mL' ({', '.join(PROTEIN_UNITS)}); got {node.value!r}")
    value = float(match.group(1)) * PROTEIN_UNITS[unit]
    if not (math.isfinite(value) and 0 <= value <= 1e6):
        raise r.error(node, f"free_protein out of range: {node.value!r}")
    return value
