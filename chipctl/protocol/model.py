"""The step vocabulary. Every protocol, file or script, becomes a tuple of these frozen steps.

Units inside the model are fixed: uL, uL/min, seconds, ms, um, percent. `line` is where the step
stands in its source file (0 for steps built by a script), so messages can name it.
"""

from __future__ import annotations

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
    """Image capture zones in one or more channels and count vesicles in every frame."""

    zones: tuple[str, ...] = ()
    channels: tuple[ChannelSetting, ...] = ()
    fields_per_zone: int = 1
    field_spacing_um: float = 300.0
    autofocus: bool = False


@dataclass(frozen=True)
class Monitor(Step):
    """Count vesicles on one zone in real time while a flow runs."""

    zone: str = ""
    channel: ChannelSetting = ChannelSetting("")
    flow: Flow = Flow()
    interval_s: float = 30.0
    until_plateau: bool = False


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
class Protocol:
    """A complete protocol as it will run."""

    name: str
    steps: tuple[Step, ...]
    schema_version: int = 1
    description: str = ""
    parameters: tuple[tuple[str, str], ...] = ()
    source: str = ""
    source_text: str = ""
    sha256: str = ""

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
