"""What each syringe holds as a run pumps: so an interrupted run can tell the operator what
is left in every syringe (and what was being pumped when it stopped)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from chipctl.config.bench import Bench


@dataclass
class SyringeState:
    """One pump's syringe: its reagent, what it held at the start and what has left it."""

    pump: str
    reagent: str = ""
    volume_ul: float | None = None
    start_ul: float | None = None
    pumped_ul: float = 0.0  # net volume infused out of the syringe (withdraw counts negative)
    in_flight: dict[str, Any] | None = field(default=None)

    @property
    def contents_ul(self) -> float | None:
        """What the syringe holds now, if its starting contents were known."""
        return None if self.start_ul is None else round(self.start_ul - self.pumped_ul, 3)

    def as_dict(self) -> dict[str, Any]:
        """JSON-able, with the current contents."""
        return {**asdict(self), "contents_ul": self.contents_ul}


class SyringeLedger:
    """Running account of every syringe, driven by the executor's pump records."""

    def __init__(self, syringes: dict[str, SyringeState]) -> None:
        self.syringes = syringes

    @classmethod
    def from_bench(cls, bench: Bench) -> SyringeLedger:
        """Starting contents from the bench file (syringe: {volume, contents}, reagent)."""
        return cls({name: SyringeState(name, spec.reagent, spec.syringe.volume_ul,
                                       spec.syringe.contents_ul)
                    for name, spec in bench.pumps.items()})

    def snapshot(self) -> dict[str, dict[str, Any]]:
        """Every syringe, JSON-able."""
        return {name: state.as_dict() for name, state in self.syringes.items()}

    def apply(self, event: dict[str, Any]) -> dict[str, Any] | None:
        """Update from one record; returns the syringe's new state if it changed."""
        kind, name = event.get("event"), event.get("pump")
        state = self.syringes.get(str(name)) if name is not None else None
        if state is None or kind not in ("pump_start", "pump_hold", "pump_done"):
            return None
        if kind == "pump_start":
            state.in_flight = {"direction": event.get("direction", "infuse"),
                               "rate_ul_min": event.get("rate_ul_min"),
                               "volume_ul": event.get("volume_ul"), "t_s": event.get("t_s")}
            return None
        if kind == "pump_hold":
            if state.in_flight is not None:
                state.in_flight["delivered_ul"] = event.get("delivered_ul")
            return None
        state.pumped_ul = round(state.pumped_ul + float(event.get("delivered_ul") or 0.0), 4)
        state.in_flight = None
        return state.as_dict()


def syringes_from_events(events: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """The last known state of every syringe, replayed from a run's event log."""
    states: dict[str, dict[str, Any]] = {}
    for event in events:
        kind = event.get("event")
        if kind in ("run_started", "run_ended") and isinstance(event.get("syringes"), dict):
            states = {k: dict(v) for k, v in event["syringes"].items()}
        elif kind == "syringe" and event.get("pump") in states:
            states[event["pump"]] = {k: v for k, v in event.items() if k not in ("event", "wall")}
        elif kind == "pump_start" and event.get("pump") in states:
            states[event["pump"]]["in_flight"] = {
                "direction": event.get("direction", "infuse"), "volume_ul": event.get("volume_ul"),
                "rate_ul_min": event.get("rate_ul_min"), "t_s": event.get("t_s")}
        elif kind == "pump_hold" and event.get("pump") in states:
            flight = states[event["pump"]].get("in_flight") or {}
            flight["delivered_ul"] = event.get("delivered_ul")
            states[event["pump"]]["in_flight"] = flight
    return states
