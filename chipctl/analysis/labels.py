"""Which channel reads which zone: the protocol's stain step says which marker's detection
antibody carries which dye (``labels: {CD9: AF488, CD63: AF555, CD81: AF647}``), and a capture
zone's antibody names its marker. A zone is read in its own marker's label channel and never
in a guessed one: without a label for its marker it gets no concentration, and the report says
why.

Runs recorded before protocols carried labels may give them as the run parameter ``labels``
(``--info labels=AF488=CD9,AF555=CD63``: dye = marker, the old form); the protocol wins.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from chipctl.config.bench import Bench, ZoneSpec

_ANTI = re.compile(r"^\s*(anti[-\s]?)", re.IGNORECASE)


@dataclass(frozen=True)
class Labels:
    """Marker -> dye, and where that came from (for the report's method section)."""

    dyes: dict[str, str]
    source: str

    def channel_of(self, marker: str) -> str | None:
        """The dye (channel) that images a marker (case-insensitive), or None."""
        wanted = marker.lower()
        return next((d for m, d in self.dyes.items() if m.lower() == wanted), None)

    def marker_of(self, channel: str) -> str | None:
        """The marker a channel's dye reports, or None."""
        return next((m for m, d in self.dyes.items() if d == channel), None)


def zone_marker(spec: ZoneSpec) -> str:
    """The marker a capture zone's antibody binds: "anti-CD63" -> "CD63"."""
    return _ANTI.sub("", spec.antibody).strip()


def _legacy(text: str) -> dict[str, str]:
    """The old run parameter: "AF488=CD9, AF555=CD63" (dye = marker) -> marker -> dye."""
    pairs = (item.replace(":", "=").partition("=") for item in text.split(","))
    return {v.strip(): k.strip() for k, sep, v in pairs if sep and k.strip() and v.strip()}


def run_labels(events: list[dict[str, Any]], params: dict[str, Any]) -> Labels:
    """The run's labels: from its protocol's stain steps (as recorded in the step events),
    else from the run parameter ``labels``."""
    dyes: dict[str, str] = {}
    where = []
    for event in events:
        if event.get("event") == "step" and isinstance(event.get("labels"), dict):
            dyes.update({str(m): str(d) for m, d in event["labels"].items()})
            line = event.get("line")
            where.append(f"step {int(event.get('index', 0)) + 1}"
                         + (f" (line {line})" if line else ""))
    if dyes:
        return Labels(dyes, "protocol stain " + ", ".join(dict.fromkeys(where)))
    legacy = _legacy(str(params.get("labels") or ""))
    if legacy:
        return Labels(legacy, "run parameter 'labels'")
    return Labels({}, "none: the protocol's stain step names no labels")


def zone_channels(bench: Bench, labels: Labels) -> dict[str, str | None]:
    """Per antibody zone, the channel of its marker's label (None: no label for it)."""
    return {name: labels.channel_of(zone_marker(spec))
            for name, spec in bench.chip.zones.items() if not spec.is_control}
