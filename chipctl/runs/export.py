"""Export of a run's counts table: CSV or Parquet (pyarrow)."""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

from chipctl.runs.recorder import COUNT_COLUMNS

FORMATS = ("csv", "parquet")


def export_counts(rows: list[dict[str, Any]], path: Path, fmt: str, run_id: str = "") -> Path:
    """Write the counts (with the run id as the first column) as CSV or Parquet."""
    columns = ["run_id", *COUNT_COLUMNS]
    records = [{"run_id": run_id, **{c: row.get(c) for c in COUNT_COLUMNS}} for row in rows]
    path.parent.mkdir(parents=True, exist_ok=True)
    if fmt == "csv":
        with path.open("w", encoding="utf-8", newline="") as handle:
            writer = csv.DictWriter(handle, columns)
            writer.writeheader()
            writer.writerows(records)
        return path
    if fmt == "parquet":  # pyarrow takes a while to import: only for a Parquet export
        try:
            import pyarrow as pa
            import pyarrow.parquet as pq
        except ImportError as exc:
            raise ValueError("Parquet export needs pyarrow: pip install 'chipctl[parquet]' "
                             "(or export --format csv)") from exc

        schema = pa.schema([
            ("run_id", pa.string()), ("t_s", pa.float64()), ("step", pa.int32()),
            ("zone", pa.string()), ("field", pa.int32()), ("channel", pa.string()),
            ("count", pa.int64()), ("true_count", pa.int64()), ("exposure_ms", pa.float64()),
            ("power_pct", pa.float64()), ("x_um", pa.float64()), ("y_um", pa.float64()),
            ("threshold", pa.float64()), ("noise_adu", pa.float64()), ("saturated", pa.int64()),
            ("psf_sigma_px", pa.float64()), ("estimated_count", pa.float64()),
        ])
        table = pa.Table.from_pylist(records, schema=schema)
        pq.write_table(table, path)
        return path
    raise ValueError(f"unknown export format {fmt!r}; use one of {', '.join(FORMATS)}")
