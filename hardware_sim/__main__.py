"""python -m hardware_sim: serve the simulated bench until terminated.

Prints one line `ready` once every device accepts connections and the bench file is written.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import threading
from collections.abc import Sequence


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the simulator."""
    parser = argparse.ArgumentParser(prog="python -m hardware_sim",
                                     description="Serve a simulated exosome-chip bench.")
    parser.add_argument("--bench-out", default="sim-bench.yaml", metavar="FILE",
                        help="where to write the bench file (default sim-bench.yaml)")
    parser.add_argument("--speed", type=float, default=1.0,
                        help="simulated seconds per wall-clock second (default 1)")
    parser.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    parser.add_argument("--sample", metavar="FILE",
                        help="a sample file describing the simulated sample (README)")
    parser.add_argument("--pty", action="store_true",
                        help="serve devices on pseudo-terminals instead of TCP (POSIX)")
    parser.add_argument("--exit-with-parent", action="store_true",
                        help="stop when standard input closes (the parent process ended)")
    parser.add_argument("-v", "--verbose", action="store_true", help="log wire traffic")
    args = parser.parse_args(argv)
    if args.speed <= 0:
        parser.error("--speed must be positive")
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.WARNING)

    from hardware_sim.bench import SimBench
    from hardware_sim.sample import SampleError, load_sample

    try:
        sample = load_sample(args.sample) if args.sample else None
    except SampleError as exc:
        print(f"python -m hardware_sim: invalid sample file:\n{exc}", file=sys.stderr)
        return 2
    bench = SimBench(speed=args.speed, seed=args.seed, use_pty=args.pty, sample=sample).start()
    path = bench.write_bench_file(args.bench_out)
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    if args.exit_with_parent:
        threading.Thread(target=_set_at_end_of_input, args=(stop,), daemon=True).start()
    print(f"bench file: {path}", flush=True)
    print("ready", flush=True)
    try:
        while not stop.wait(0.5):
            pass
    finally:
        bench.stop()
    return 0


def _set_at_end_of_input(stop: threading.Event) -> None:
    """Wait for standard input to close, then set `stop`: a parent that dies, even by SIGKILL,
    closes our input, so no orphaned simulator keeps serving."""
    try:
        while os.read(sys.stdin.fileno(), 4096):
            pass
    except OSError:  # no usable standard input: treat it as closed
        pass
    stop.set()


if __name__ == "__main__":
    sys.exit(main())
