"""Reliability benchmark (issue 17, first part): faults on the wire and hostile files.

Run from the repository root:

    python -m benchmarks.reliability            # every corpus, a few minutes on 2 cores
    python -m benchmarks.reliability --quick    # fewer seeds, about a minute

Corpora, all generated here:
- replies: each driver (New Era, Harvard, CoolLED, Prior) against its emulator over TCP on
  127.0.0.1, each query or setting with its truth read from the emulator, under a garbled
  byte (a bit flipped in a payload byte, many seeds; once, or three replies in a row), a
  dropped reply, every try dropped, a reply split in two, a slow reply (within and beyond
  the timeout) and a lock-up (no replies);
- protocols: the protocol library's files mutated into absurd or hostile ones (NaN, inf,
  1e400, 9**9**9, denormal rates, huge counts, duplicate keys, alias bombs, deep nesting,
  format-spec labels, a FIFO), each run through `chipctl validate`;
- images: hostile image files (a zlib bomb, a FIFO, 1x1, 1-bit, 5-D, truncated, noise, a PNG
  header declaring 10^10 pixels) through `chipctl count`.

Each trial ends as one of: ok (the right value, or a valid file accepted), clear error (a
typed error naming the device, or exit 2 with a message at the file), unclear error (an
error naming the port, or exit 2 without FILE in the message), traceback (any other
exception), hang (no answer within HANG_S), wrong value accepted (a value that is not the
device's, or a hostile file accepted). The safe-state areas
(benchmarks/reliability_safety.py: faults x step kinds, kills by SIGTERM, SIGHUP, SIGINT,
SIGKILL at random moments) add: devices left on, and the worst time to safe state. The
target is 0 tracebacks, hangs, wrong values and devices left on, and a safe state within
1 s of the detection (SIGKILL: within the pumps' safe-mode timeout).

    python -m benchmarks.reliability --only safety   # just the safe-state areas
"""

from __future__ import annotations

import argparse
import contextlib
import io
import logging
import os
import random
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from benchmarks import reliability_corpora as corpora
from benchmarks import reliability_safety as safety

HANG_S = 20.0
OUTCOMES = ("ok", "clear error", "unclear error", "traceback", "hang", "wrong value")


def timed(call: Callable[[], Any], limit: float = HANG_S) -> tuple[str, Any]:
    """("done", result) | ("raised", exception) | ("hang", None), run on a thread."""
    box: dict[str, Any] = {}

    def run() -> None:
        try:
            box["result"] = call()
        except BaseException as exc:  # noqa: BLE001 - classified by the caller
            box["error"] = exc

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(limit)
    if thread.is_alive():
        return "hang", None
    if "error" in box:
        return "raised", box["error"]
    return "done", box.get("result")


# -- replies --------------------------------------------------------------------------------------
def reply_outcome(device: str, status: str, value: Any, truth: Callable[[Any], bool]) -> str:
    from drivers.errors import DeviceError

    if status == "hang":
        return "hang"
    if status == "raised":
        if isinstance(value, DeviceError):
            named = str(value).startswith(f"{device}: ") and "socket://" not in str(value)
            return "clear error" if named else "unclear error"
        return "traceback"
    return "ok" if truth(value) else "wrong value"


def reply_trials(seeds: int, log: list[str]) -> dict[str, Counter[str]]:
    """Every driver operation under every link fault; outcomes per driver."""
    table: dict[str, Counter[str]] = {}
    for rig in corpora.driver_rigs():
        counts: Counter[str] = Counter()
        with rig:
            for op_name, op, truth in rig.operations():
                for fault, value, seed in corpora.link_faults(seeds, rig.retries):
                    rig.arm(fault, value, seed)
                    status, result = timed(op)
                    outcome = reply_outcome(rig.name, status, result, truth)
                    counts[outcome] += 1
                    if outcome in ("unclear error", "traceback", "hang", "wrong value"):
                        log.append(f"replies {rig.name}.{op_name} {fault} seed {seed}: "
                                   f"{outcome}: {result!r}"[:300])
                    rig.settle(fault, value)
        table[rig.name] = counts
    return table


# -- files ---------------------------------------------------------------------------------------
def file_outcome(status: str, code: Any, err: str, path: str, hostile: bool) -> str:
    if status == "hang":
        return "hang"
    if status == "raised" or "Traceback" in err:
        return "traceback"
    if code == 0:
        return "wrong value" if hostile else "ok"
    if code == 2:
        return "clear error" if path in err else "unclear error"
    return "unclear error"


@contextlib.contextmanager
def captured() -> Iterator[io.StringIO]:
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        yield err


def file_trials(kind: str, folder: Path, log: list[str], quick: bool) -> Counter[str]:
    """Validate every mutated protocol, or count every hostile image."""
    from chipctl.cli.main import main
    from chipctl.vision.count_cli import count_command

    counts: Counter[str] = Counter()
    cases = (corpora.protocol_cases(folder, quick) if kind == "protocols"
             else corpora.image_cases(folder))
    bench = corpora.BENCH
    for label, path, hostile in cases:
        with captured() as err:
            if kind == "protocols":
                status, code = timed(lambda p=path: main(["validate", str(p), "--bench", bench]))
            else:
                status, code = timed(lambda p=path: count_command([str(p)], True, None, None,
                                                                  None, None, io.StringIO()))
        outcome = file_outcome(status, code, err.getvalue(), str(path), hostile)
        counts[outcome] += 1
        if outcome in ("unclear error", "traceback", "hang", "wrong value"):
            log.append(f"{kind} {label}: {outcome}: {err.getvalue().strip()[:300]}")
    return counts


# -- report ----------------------------------------------------------------------------------------
Row = tuple[str, Counter[str], int | None, float | None]  # area, outcomes, left on, worst s


def print_table(rows: list[Row]) -> None:
    header = (f"{'area':<26}{'tried':>6}" + "".join(f"{o:>14}" for o in OUTCOMES)
              + f"{'left on':>9}{'worst s':>9}")
    print(header)
    print("-" * len(header))
    for name, counts, left_on, worst in rows:
        total = sum(counts.values())
        print(f"{name:<26}{total:>6}" + "".join(f"{counts[o]:>14}" for o in OUTCOMES)
              + f"{'-' if left_on is None else left_on:>9}"
              + f"{'-' if worst is None else f'{worst:.2f}':>9}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.reliability")
    parser.add_argument("--quick", action="store_true", help="fewer seeds (about a minute)")
    parser.add_argument("--seed", type=int, default=17)
    parser.add_argument("--only", choices=("files", "replies", "safety"), default=None)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.CRITICAL)  # the drivers' retry warnings are expected
    random.seed(args.seed)
    seeds = 4 if args.quick else 16
    started = time.monotonic()
    log: list[str] = []
    rows: list[Row] = []
    wanted = {args.only} if args.only else {"replies", "files", "safety"}
    with tempfile.TemporaryDirectory(prefix="chipctl-reliability-") as tmp:
        folder = Path(tmp)
        if "replies" in wanted:
            for name, counts in reply_trials(seeds, log).items():
                rows.append((f"replies: {name}", counts, None, None))
        if "files" in wanted:
            rows.append(("protocols (validate)",
                         file_trials("protocols", folder, log, args.quick), None, None))
            rows.append(("images (count)", file_trials("images", folder, log, args.quick),
                         None, None))
        if "safety" in wanted:
            for areas in (safety.fault_area(folder, log, args.quick),
                          safety.kill_area(folder, log, args.quick, args.seed)):
                rows += [(n, a.counts, a.left_on, a.worst_s) for n, a in areas.items()]
    print(f"chipctl reliability benchmark (seed {args.seed}, {seeds} garble seeds per "
          f"operation, python {sys.version.split()[0]}, {os.cpu_count()} cores)\n")
    print_table(rows)
    print(f"\n{time.monotonic() - started:.0f} s in all; worst s: slowest device's confirmed "
          "off after the detection (kills: signal to the simulator's pump stopped; SIGKILL by "
          f"its {safety.SAFE_MODE_S:g} s safe mode); target 1 s")
    if log:
        print("\nnot clear, not right:")
        for line in log[:40]:
            print("  " + line)
    bad = sum(c[o] for _, c, _, _ in rows for o in ("traceback", "hang", "wrong value"))
    bad += sum(on or 0 for _, _, on, _ in rows)
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
