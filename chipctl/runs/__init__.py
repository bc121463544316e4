"""Runs: recording (run folders and manual sessions), the run index, crash recovery, export."""

from chipctl.runs.folder import RunFolder, RunNotFound, resolve_run
from chipctl.runs.frames import KeepPolicy, read_frame
from chipctl.runs.index import RunFilter, RunIndex
from chipctl.runs.manual import ManualRecord
from chipctl.runs.paths import default_runs_dir
from chipctl.runs.recorder import COUNT_COLUMNS, RunRecorder, write_json_atomic
from chipctl.runs.recovery import describe_interruption

__all__ = [
    "COUNT_COLUMNS",
    "KeepPolicy",
    "ManualRecord",
    "RunFilter",
    "RunFolder",
    "RunIndex",
    "RunNotFound",
    "RunRecorder",
    "default_runs_dir",
    "describe_interruption",
    "read_frame",
    "resolve_run",
    "write_json_atomic",
]
