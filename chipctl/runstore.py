"""Run folders (kept for existing imports; the run store lives in chipctl.runs)."""

from chipctl.runs.paths import default_runs_dir
from chipctl.runs.recorder import COUNT_COLUMNS, RunRecorder, write_json_atomic

__all__ = ["COUNT_COLUMNS", "RunRecorder", "default_runs_dir", "write_json_atomic"]
