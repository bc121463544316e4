"""The step vocabulary. Every protocol, file or script, becomes a tuple of these frozen steps.

Units inside the model are fixed: uL, uL/min, seconds, ms, um, percent. `line` is where the step
stands in its source file (0 for steps built by a script), so messages can name it.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Literal

Direction = Literal["infuse", "withdraw"]


@dataclass(frozen=True)
class Step:
    """Common to every step: a label for people and the source line."""

    label: str = ""
    line: int = field(default=0, compare=False)

    @property
    def kind(self) -> str:
        """The step's name in protocol files (prime, flow, ...)."""
        return type(self).__name__.lower()


@dataclass(frozen=True)
class Prime(Step):
    """Fill the lines from a pump's syringe up to the chip."""

    pump: str = ""
    volume_ul: float = 0.0
    rate_ul_min: float = 0.0


@dataclass(frozen=True)
class Flow(Step):
    """Pump a reagent through the chip: by volume, or for a duration."""

    pump: str = ""
    rate_ul_min: float = 0.0
    volume_ul: float | None = None
    duration_s: float | None = None
    direction: Direction = "infuse"
    reagent: str = ""  # sample, buffer, block, stain, wash: what the step means to the biologist
    labels: tuple[tuple[str, str], ...] = ()  # (marker, dye): which antibody carries which dye

    @property
    def label_channels(self) -> dict[str, str]:
        """Marker -> dye (the imaging channel that reads it) of a stain's detection antibodies."""
        return dict(self.labels)

    @property
    def planned_volume_ul(self) -> float:
        """The volume this step moves."""
        if self.volume_ul is not None:
            return self.volume_ul
        return self.rate_ul_min * (self.duration_s or 0.0) / 60.0

    @property
    def planned_duration_s(self) -> float:
        """How long the step pumps."""
        if self.duration_s is not None:
            return self.duration_s
        return 60.0 * (self.volume_ul or 0.0) / self.rate_ul_min if self.rate_ul_min else 0.0


@dataclass(frozen=True)
class Valve(Step):
    """Turn a selector valve to a port."""

    valve: str = ""
    port: int = 1


@dataclass(frozen=True)
class Wait(Step):
    """Incubate: wait with the fluidics still."""

    duration_s: float = 0.0


@dataclass(frozen=True)
class ChannelSetting:
    """One fluorescence channel of an image: LED channel, exposure and power."""

    channel: str
    exposure_ms: float = 50.0
    power_pct: float = 50.0


@dataclass(frozen=True)
class Image(Step):
    """Image capture zones in one or more channels and count vesicles in every frame.

    Fields per zone: explicit `positions` (um offsets from the zone's centre) if given, else a
    `grid` (rows, columns) `field_spacing_um` apart, else `fields_per_zone` fields on a near-square
    grid centred on the zone. `exposures` (`frames: K` in a file) exposures are taken of each
    field in each channel, registered for drift, summed and counted once.
    """

    zones: tuple[str, ...] = ()
    channels: tuple[ChannelSetting, ...] = ()
    fields_per_zone: int = 1
    field_spacing_um: float = 350.0  # more than a 333 um field (40x): fields never overlap
    autofocus: bool = False
    grid: tuple[int, int] | None = None
    positions: tuple[tuple[float, float], ...] = ()
    exposures: int = 1

    def field_offsets(self) -> list[tuple[float, float]]:
        """Offsets (um) of every field from its zone's centre, in imaging order."""
        if self.positions:
            return list(self.positions)
        if self.grid is not None:
            rows, cols = self.grid
            count = rows * cols
        else:
            count = self.fields_per_zone
            cols = max(1, math.ceil(math.sqrt(count)))
            rows = math.ceil(count / cols)
        spacing = self.field_spacing_um
        return [((i % cols - (cols - 1) / 2) * spacing, (i // cols - (rows - 1) / 2) * spacing)
                for i in range(count)]

    @property
    def frames(self) -> int:
        """Frames this step takes (every exposure of every field and channel)."""
        return len(self.zones) * len(self.field_offsets()) * len(self.channels) * self.exposures


@dataclass(frozen=True)
class Monitor(Step):
    """Count vesicles on one zone in real time while a flow runs, or while the fluid stands.

    The flow's volume (or duration) is the budget; with `incubate_s` nothing flows and the
    incubation's length is (the fluid that flowed last stands over the zones: capture by
    diffusion, a stop-flow measurement). With `until_plateau` the flow stops early
    once the last `plateau_points` counts rise by less than `plateau_tolerance_pct` percent of
    the latest count (and at least `plateau_min_count` vesicles are seen). `alongside` flows
    (e.g. the detection antibody, for labelling while capturing) run for as long as the main
    flow; their planned duration is the main flow's.
    """

    zone: str = ""
    channel: ChannelSetting = ChannelSetting("")
    flow: Flow = Flow()
    alongside: tuple[Flow, ...] = ()
    interval_s: float = 30.0
    until_plateau: bool = False
    plateau_points: int = 4
    plateau_tolerance_pct: float = 5.0
    plateau_min_count: int = 10
    incubate_s: float = 0.0  # > 0: no flow, count while the fluid stands this long

    @property
    def flows(self) -> tuple[Flow, ...]:
        """The main flow, then the flows alongside it (none while incubating)."""
        return () if self.incubate_s > 0 else (self.flow, *self.alongside)

    @property
    def total_rate_ul_min(self) -> float:
        """Everything flowing into the chip at once (infusing)."""
        return sum(f.rate_ul_min for f in self.flows if f.direction == "infuse")


@dataclass(frozen=True)
class Prompt(Step):
    """Ask the operator to do something and wait for confirmation."""

    message: str = ""


@dataclass(frozen=True)
class Repeat(Step):
    """Run a block of steps several times."""

    times: int = 1
    steps: tuple[Step, ...] = ()


@dataclass(frozen=True)
class Parameter:
    """A per-run parameter (sample name, dilution, operator), set when the run starts."""

    name: str
    default: str | None = None
    description: str = ""
    line: int = field(default=0, compare=False)

    @property
    def required(self) -> bool:
        """True when the run cannot start without a value."""
        return self.default is None

    def __iter__(self) -> Iterator[str]:
        """(name, default) unpacking, as dialogs prefill a form ("" when required)."""
        return iter((self.name, "" if self.default is None else self.default))


class ParameterError(ValueError):
    """Run parameters that do not fit the protocol's declarations."""


@dataclass(frozen=True)
class Protocol:
    """A complete protocol as it will run."""

    name: str
    steps: tuple[Step, ...]
    schema_version: int = 1
    description: str = ""
    parameters: tuple[Parameter, ...] = ()
    source: str = ""
    source_text: str = ""
    sha256: str = ""

    def resolve_parameters(self, given: dict[str, str]) -> dict[str, str]:
        """Defaults overlaid with `given`; ParameterError lists unknown and missing ones."""
        declared = {p.name: p for p in self.parameters}
        problems = [f"unknown parameter '{name}'"
                    + (f"; this protocol takes: {', '.join(declared)}" if declared else
                       "; this protocol declares no parameters")
                    for name in given if name not in declared]
        values = {p.name: p.default for p in self.parameters if p.default is not None}
        values.update(given)
        problems += [f"parameter '{p.name}' is required ({p.description or 'no default'}); "
                     f"give it with --param {p.name}=VALUE"
                     for p in self.parameters if p.required and p.name not in given]
        if problems:
            raise ParameterError("; ".join(problems))
        return {k: str(v) for k, v in values.items()}

    def flat_steps(self) -> list[Step]:
        """Steps with every Repeat unrolled, in execution order."""
        return list(_unroll(self.steps))


def _unroll(steps: tuple[Step, ...]) -> list[Step]:
    out: list[Step] = []
    for step in steps:
        if isinstance(step, Repeat):
            for _ in range(step.times):
                out.extend(_unroll(step.steps))
        else:
            out.append(step)
    return out
