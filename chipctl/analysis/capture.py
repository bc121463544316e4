"""A run's capture: the sample that flowed (from the event log) and each zone's capture model
(chip geometry from the bench file, vesicle sizes from the sample entry), with the capture
efficiency from the mass-transport model (chipctl.analysis.transport) or, where the bench file
names one, a calibration file (chipctl.analysis.calibration), which overrides the model.

Never a number the simulator computed: the bench file carries geometry only.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from chipctl.analysis import transport
from chipctl.analysis.calibration import (
    CaptureCalibration,
    Tolerances,
    capture_factor,
    load_calibration,
)
from chipctl.analysis.uncertainty import Factor
from chipctl.config.bench import Bench, ZoneSpec


@dataclass(frozen=True)
class SampleFlow:
    """Sample volume pumped at one rate during one step, and the total flow through the chip
    meanwhile (other pumps of the same step, e.g. a monitor's stain, dilute the sample); then
    the protocol times (s) when every pump had stopped and when the next pump started (inf:
    none did), between which the sample stood over the zones as ``standing_share`` of the
    fluid (its share of the flow, less what other pumps pushed in after it stopped)."""

    step: int
    pump: str
    volume_ul: float
    rate_ul_min: float
    total_rate_ul_min: float
    stopped_s: float = math.inf
    resumed_s: float = math.inf
    standing_share: float = 1.0

    def segment(self, until_s: float = math.inf) -> transport.FlowSegment:
        """The capture model's view: the sample's volume at the chip's total flow rate, and
        its standing until the next flow or ``until_s`` (when the zone was imaged)."""
        standing = max(min(self.resumed_s, until_s) - self.stopped_s, 0.0)
        return transport.FlowSegment(self.total_rate_ul_min, self.volume_ul,
                                     standing if math.isfinite(standing) else 0.0,
                                     self.standing_share)


def sample_flows(events: list[dict[str, Any]], bench: Bench | None,
                 params: dict[str, Any]) -> list[SampleFlow]:
    """Sample volumes that flowed over the chip, by step, from the event log."""
    reagents = {n: s.reagent for n, s in (bench.pumps.items() if bench else [])}
    step, step_pump, step_reagent = -1, "", ""
    rates: dict[str, float] = {}  # pumps started in the current step
    out: list[tuple[SampleFlow, int]] = []  # with the event's place in the log
    for place, event in enumerate(events):
        kind, pump = event.get("event"), str(event.get("pump"))
        if kind == "step":
            step, step_pump = int(event.get("index", -1)), str(event.get("pump", ""))
            step_reagent, rates = str(event.get("reagent", "")), {}
        elif kind == "pump_start" and event.get("direction", "infuse") == "infuse":
            rates[pump] = float(event.get("rate_ul_min") or 0.0)
        elif kind == "pump_done":
            reagent = step_reagent if pump == step_pump and step_reagent else reagents.get(pump, "")
            if pump == params.get("sample_pump") or reagent.lower() == "sample":
                volume = abs(float(event.get("delivered_ul") or 0.0))
                rate = rates.get(pump, 0.0)
                if volume > 0 and rate > 0:
                    out.append((SampleFlow(step, pump, volume, rate,
                                           max(sum(rates.values()), rate)), place))
    return [_left_standing(flow, events, place, bench) for flow, place in out]


def _left_standing(flow: SampleFlow, events: list[dict[str, Any]], done: int,
                   bench: Bench | None) -> SampleFlow:
    """``flow`` with when it stood and its share of the standing fluid: the fluid over the
    zones is taken to be what the pumps push (no dead volume), so what other pumps push in
    after the sample stopped replaces it volume for volume (plug flow over the zones)."""
    stopped, resumed, pushed_ul = _standing(events, done)
    room = channel_ul(bench) if bench is not None else 0.0
    left = max(0.0, 1.0 - pushed_ul / room) if room > 0 else float(pushed_ul <= 0)
    return replace(flow, stopped_s=stopped, resumed_s=resumed,
                   standing_share=left * flow.rate_ul_min / flow.total_rate_ul_min)


def channel_ul(bench: Bench) -> float:
    """Volume of the channel over the zones (uL): its width x height x the zones' span along
    the flow (+x)."""
    zones = bench.chip.zones.values()
    if not zones:
        return 0.0
    start = min(z.center_um[0] - z.size_um[0] / 2 for z in zones)
    end = max(z.center_um[0] + z.size_um[0] / 2 for z in zones)
    ch = bench.chip.channel
    return ch.width_um * ch.height_um * (end - start) * 1e-9


def _standing(events: list[dict[str, Any]], done: int) -> tuple[float, float, float]:
    """After the sample pump's ``pump_done`` at ``events[done]``: when every pump had stopped,
    when the next pump started (inf: never), and the volume other pumps pushed meanwhile."""
    running = _running_at(events, done)
    sample_stop = stopped = _stop_time(events, done)
    pushed = 0.0
    for place in range(done + 1, len(events)):
        event = events[place]
        kind, pump = event.get("event"), str(event.get("pump"))
        if kind == "pump_done" and pump in running:
            running.discard(pump)
            end = _stop_time(events, place)
            pushed += _rate_of(events, place) * max(end - sample_stop, 0.0) / 60.0
            stopped = max(stopped, end)
        elif kind == "pump_start":
            if running:  # a flow began while another still ran: the sample was pushed on
                return math.inf, math.inf, math.inf
            return stopped, _time(event), pushed
    return (math.inf, math.inf, math.inf) if running else (stopped, math.inf, pushed)


def _running_at(events: list[dict[str, Any]], place: int) -> set[str]:
    """Pumps started and not yet done at ``events[place]`` (that event's pump excluded)."""
    running: set[str] = set()
    for event in events[:place + 1]:
        kind, pump = event.get("event"), str(event.get("pump"))
        if kind == "pump_start":
            running.add(pump)
        elif kind == "pump_done":
            running.discard(pump)
    return running


def _start_of(events: list[dict[str, Any]], done: int) -> dict[str, Any] | None:
    """The pump_start of the run that ``events[done]`` (a pump_done) ends."""
    pump = events[done].get("pump")
    return next((e for e in reversed(events[:done]) if e.get("event") == "pump_start"
                 and e.get("pump") == pump), None)


def _rate_of(events: list[dict[str, Any]], done: int) -> float:
    start = _start_of(events, done)
    return float(start.get("rate_ul_min") or 0.0) if start else 0.0


def _stop_time(events: list[dict[str, Any]], done: int) -> float:
    """When the pump of ``events[done]`` (its pump_done) stopped: its start plus the volume
    over the rate for a run without a pause (the done event is logged at the next poll, up to
    50 ms of wall time later, i.e. 15 s of protocol time at 300x), else the done event's time."""
    end = events[done]
    start = _start_of(events, done)
    rate = _rate_of(events, done)
    if start is None or rate <= 0 or len(end.get("segments") or [0, 0]) != 1:
        return _time(end)
    volume = abs(float(end.get("delivered_ul") or 0.0))
    return min(_time(end), _time(start) + 60.0 * volume / rate)


def _time(event: dict[str, Any]) -> float:
    """An event's protocol time (s; inf when the log has none)."""
    t = event.get("t_s")
    return float(t) if isinstance(t, int | float) else math.inf


def zone_model(bench: Bench, spec: ZoneSpec, sizes: transport.SizeDistribution
               ) -> transport.CaptureModel:
    """The zone's closed-form capture model: flow along +x (stage), the zone's x size its
    length, its y size its width (transport-limited: the reaction rate is not known)."""
    ch = bench.chip.channel
    return transport.CaptureModel(transport.Channel(ch.width_um, ch.height_um),
                                  transport.Zone(spec.size_um[0], spec.size_um[1],
                                                 spec.center_um), sizes)


@dataclass(frozen=True)
class BenchCalibration:
    """The calibration file a bench names (None: the model alone) and what to call it."""

    calibration: CaptureCalibration | None
    source: str

    def covers(self, zone: str) -> bool:
        """Whether the file calibrates this zone (its ratio then already holds the labelling
        efficiency of the reference run: seen vesicles over the model's captured ones)."""
        return self.calibration is not None and zone in self.calibration.zones


def bench_calibration(bench: Bench) -> BenchCalibration:
    """Load ``chip.calibration`` (relative to the bench file); SourceError names file:line."""
    name = bench.chip.calibration
    if not name:
        return BenchCalibration(None, "")
    path = Path(name)
    if not path.is_absolute() and bench.path:
        path = Path(bench.path).parent / path
    return BenchCalibration(load_calibration(path), str(path))


def tolerances(bench: Bench, size_rsd: float = Tolerances.size_rsd) -> Tolerances:
    """What the capture model's inputs may be off by: the chip's from the bench file (the
    maker's tolerance), the vesicle size's as entered (provenance.size_rsd), the rest as
    chipctl.analysis.calibration.Tolerances says."""
    tol = bench.chip.tolerance
    return Tolerances(height_um=tol.channel_height_um, width_um=tol.channel_width_um,
                      zone_length_um=tol.zone_size_um, zone_width_um=tol.zone_size_um,
                      size_rsd=size_rsd)


def zone_capture(model: transport.CaptureModel, flows: list[SampleFlow], zone: str,
                 cal: BenchCalibration, tol: Tolerances | None = None,
                 until_s: float = math.inf) -> Factor:
    """The zone's capture efficiency over the sample that flowed (and stood) before it was
    imaged at ``until_s``."""
    return capture_factor(model, [f.segment(until_s) for f in flows], zone, cal.calibration,
                          cal.source, tol or Tolerances())


def field_shares(model: transport.CaptureModel, flows: list[SampleFlow],
                 footprints: list[transport.Footprint], until_s: float = math.inf
                 ) -> list[float]:
    """Each field's share of the zone's capture (capture-weighted over the segments)."""
    segments = [f.segment(until_s) for f in flows]
    weights = [transport.captured_ul(model, s) for s in segments]
    total = sum(weights)
    if total <= 0:
        return [0.0 for _ in footprints]
    return [sum(w * transport.segment_field_share(model, s, fp) for w, s in
                zip(weights, segments, strict=True)) / total for fp in footprints]
