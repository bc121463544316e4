"""A run's memory per field: the tetraspanin panel (48 frames of 2048 x 2048) through chipctl's
Engine on the simulated bench, no GUI, printing the process's resident memory (RSS) at every
count, the frames waiting to be counted at the most, and the peak growth over the start.

    python -m benchmarks.run_memory                # the library's tetraspanin panel, 100x
    python -m benchmarks.run_memory --keep all     # every frame written to the run folder too

Reference (issue 15): before the run's counting bounded the frames waiting to be counted
(chipctl.run.counting.PENDING_BYTES), the pipeline's 64-frame queue held up to ~370 MB of
frames during the panel's image step (RSS +370 MB at its peak).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from benchmarks.gui_soak import rss_mb
from chipctl.config.bench import load_bench
from chipctl.engine import Engine
from chipctl.protocol.script import load_any
from chipctl.run.events import RunEvents
from chipctl.simlaunch import SimulatedBench

ROOT = Path(__file__).resolve().parents[1]


def main(argv: list[str] | None = None) -> int:
    """Run the protocol once and print its memory figures."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks.run_memory",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("--protocol", type=Path,
                        default=ROOT / "protocols" / "tetraspanin_panel.yaml")
    parser.add_argument("--speed", type=float, default=100.0)
    parser.add_argument("--keep", default="none", help="frames the run keeps (none, all, N)")
    args = parser.parse_args(argv)
    protocol = load_any(args.protocol)
    with tempfile.TemporaryDirectory() as tmp, SimulatedBench(speed=args.speed, seed=1) as sim:
        engine = Engine(load_bench(sim.bench_path), runs_dir=Path(tmp) / "runs",
                        keep_frames=args.keep)
        engine.connect()
        events = RunEvents()
        start = rss_mb()
        marks: list[tuple[float, int]] = []

        def waiting() -> int:  # frames the run's counting holds (the executor's FrameCounting)
            counting = getattr(engine.runner.engine, "counting", None) if engine.runner else None
            return int(counting.pending_frames) if counting is not None else 0

        events.counted.connect(lambda _row: marks.append((rss_mb(), waiting())))
        events.prompt.connect(lambda _message: engine.runner.confirm() if engine.runner else None)
        began = time.monotonic()
        runner = engine.start_run(protocol, {p.name: p.default or "memory" for p in
                                             protocol.parameters}, events=events)
        runner.wait(3600)
        engine.close()
    print(f"{args.protocol.name} at {args.speed:g}x, keep {args.keep}: {runner.state.value} "
          f"in {time.monotonic() - began:.0f} s wall, {len(marks)} counts")
    for n, (rss, pending) in enumerate(marks):
        if n % 4 == 0 or n == len(marks) - 1:
            print(f"  count {n + 1:3d}: RSS {rss:6.0f} MB, {pending} frames waiting")
    peak = max((m[0] for m in marks), default=start)
    print(f"RSS at the start {start:.0f} MB, peak {peak:.0f} MB (+{peak - start:.0f} MB); "
          f"frames waiting to be counted at most {max((m[1] for m in marks), default=0)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
