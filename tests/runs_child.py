"""A controller to kill: records a synthetic run, saying on stdout what it has written."""

from __future__ import annotations

import sys
import time
from pathlib import Path

from chipctl.run.events import RunEvents
from chipctl.runs import RunRecorder
from tests.runs_synth import SyntheticRun, write_inputs


def main(root: str) -> None:
    protocol, bench = write_inputs(Path(root) / "inputs")
    events = RunEvents()
    recorder = RunRecorder(Path(root) / "runs", protocol, bench, {"sample": "doomed"})
    recorder.attach(events)
    events.step_finished.connect(lambda i, label: print(f"STEP {i}", flush=True))
    events.counted.connect(lambda row: (print(f"COUNT {row['count']}", flush=True),
                                        time.sleep(0.02)))
    events.record.connect(lambda e: time.sleep(0.05) if e["event"] == "pump_done" else None)
    print(f"FOLDER {recorder.folder}", flush=True)
    SyntheticRun(events, bench).run()
    time.sleep(60)  # never finishes on its own before the test kills it


if __name__ == "__main__":
    main(sys.argv[1])
