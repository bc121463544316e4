"""What a recorded run gives the estimators, read once: the bench as it was, the frame geometry,
the last imaging of each zone and channel, the recorded spots (photons from the counter's
amplitude, with the camera gain and PSF the run counted with), each frame's detection
threshold, the labels, the sample that flowed and the sample entry (dilution, sizes).

Everything comes from the run's own records; nothing is counted again.
"""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from chipctl.analysis.capture import BenchCalibration, SampleFlow, bench_calibration, sample_flows
from chipctl.analysis.counts import Geometry, final_rows, geometry
from chipctl.analysis.labels import Labels, run_labels
from chipctl.analysis.provenance import dilution_factor, labelling, sizes
from chipctl.analysis.spots import SpotTable
from chipctl.analysis.transport import SizeDistribution
from chipctl.analysis.uncertainty import Factor
from chipctl.config.bench import Bench, load_bench
from chipctl.config.sourcefile import SourceError
from chipctl.runs.folder import RunFolder

DEFAULT_THRESHOLD = 3.4  # the counter's lowest adaptive threshold, for runs that did not record it


@dataclass
class RunEvidence:
    """A run's records as the estimators take them (``notes`` say what was missing)."""

    run: RunFolder
    bench: Bench | None
    geo: Geometry | None
    params: dict[str, Any]
    final: dict[tuple[str, str], list[dict[str, Any]]]
    spots: SpotTable | None
    e_per_adu: float | None
    psf_sigma_px: float
    labels: Labels
    flows: list[SampleFlow]
    sizes: SizeDistribution
    size_source: str
    dilution: float
    dilution_source: str
    calibration: BenchCalibration
    labelling: Factor | None = None
    notes: list[str] = field(default_factory=list)

    @classmethod
    def of(cls, run: RunFolder) -> RunEvidence:
        """Read a run folder (SourceError or SampleInfoError for an unusable entry)."""
        bench = load_run_bench(run)
        params = dict(run.info.get("parameters") or {})
        counting = run.info.get("counting") or {}
        calib = counting.get("calibration") or {}
        gain = calib.get("e_per_adu") or (bench.camera.e_per_adu if bench and bench.camera
                                          else None)
        psf = float(counting.get("psf_sigma_px") or 1.3)
        notes = []
        if gain is None:
            notes.append("camera gain not calibrated: photons are in ADU-scaled units")
        size_dist, size_source = sizes(params)
        factor, dilution_source = dilution_factor(params)
        cal = bench_calibration(bench) if bench is not None else BenchCalibration(None, "")
        return cls(run, bench, geometry(run.events, bench), params, final_rows(run.counts),
                   _spot_table(run, gain, psf), gain, psf, run_labels(run.events, params),
                   sample_flows(run.events, bench, params), size_dist, size_source, factor,
                   dilution_source, cal, labelling(params), notes)

    def threshold(self, row: dict[str, Any]) -> float:
        """A frame's detection threshold: as recorded, else the lowest SNR among its spots."""
        if row.get("threshold") is not None:
            return float(row["threshold"])
        if self.spots is not None:
            here = self.spots.select(str(row["zone"]), str(row["channel"]), int(row["step"]))
            snr = here.snr[here.field == int(row["field"])]
            if snr.size:
                return float(snr.min())
        return DEFAULT_THRESHOLD

    def frame_psf(self, rows: list[dict[str, Any]]) -> float:
        """The PSF sigma the frames were counted with (median of the recorded ones)."""
        used = [float(r["psf_sigma_px"]) for r in rows if r.get("psf_sigma_px")]
        return statistics.median(used) if used else self.psf_sigma_px

    @property
    def pixel_area_mm2(self) -> float:
        """Area of one pixel on the chip."""
        return (self.geo.pixel_size_um * 1e-3) ** 2 if self.geo else math.nan


def load_run_bench(run: RunFolder) -> Bench | None:
    """The bench file as it was when the run started (None if absent or unreadable)."""
    path = run.path / "bench.yaml"
    if not path.is_file() or not path.read_text(encoding="utf-8").strip():
        return None
    try:
        return load_bench(path)
    except SourceError:
        return None


def _spot_table(run: RunFolder, e_per_adu: float | None, psf: float) -> SpotTable | None:
    """The recorded detections (run.detections(): spots.csv, or a re-count's) with where each
    frame was taken (the frame log), photons from the amplitude (the matched filter's peak, the
    estimate the detection model describes); None for a run that recorded no detections."""
    detections = run.detections()
    if detections is None:
        return None
    where = {int(e["seq"]): e for e in run.events
             if e.get("event") == "frame" and e.get("seq") is not None}
    places: dict[str, list[Any]] = {k: [] for k in ("step", "zone", "field", "channel")}
    spots, counts = [], []
    for seq, result in detections.items():
        entry = where.get(seq)
        if entry is None or not result.count:
            continue
        for key, column in places.items():
            column.append(entry.get(key))
        spots.append(result.spots)
        counts.append(result.count)
    if not spots:
        return None
    try:
        return SpotTable.from_columns({k: np.repeat(np.asarray(v, object), counts)
                                       for k, v in places.items()},
                                      np.concatenate(spots), e_per_adu or 1.0, psf)
    except ValueError:
        return None
