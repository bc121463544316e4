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
device's, or a hostile file accepted). The target is 0 in the last three columns. The
safe-state and kill columns come with the second part of issue 17.
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
def print_table(rows: list[tuple[str, Counter[str]]]) -> None:
    header = f"{'area':<22}{'tried':>7}" + "".join(f"{o:>15}" for o in OUTCOMES)
    print(header)
    print("-" * len(header))
    for name, counts in rows:
        total = sum(counts.values())
        print(f"{name:<22}{total:>7}" + "".join(f"{counts[o]:>15}" for o in OUTCOMES))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.reliability")
    parser.add_argument("--quick", action="store_true", help="fewer seeds (about a minute)")
    parser.add_argument("--seed", type=int, default=17)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.ERROR)  # the drivers' retry warnings are expected here
    random.seed(args.seed)
    seeds = 4 if args.quick else 16
    started = time.monotonic()
    log: list[str] = []
    rows: list[tuple[str, Counter[str]]] = []
    with tempfile.TemporaryDirectory(prefix="chipctl-reliability-") as tmp:
        folder = Path(tmp)
        for name, counts in reply_trials(seeds, log).items():
            rows.append((f"replies: {name}", counts))
        rows.append(("protocols (validate)", file_trials("protocols", folder, log, args.quick)))
        rows.append(("images (count)", file_trials("images", folder, log, args.quick)))
    print(f"chipctl reliability benchmark (seed {args.seed}, {seeds} garble seeds per "
          f"operation, python {sys.version.split()[0]}, {os.cpu_count()} cores)\n")
    print_table(rows)
    print(f"\n{time.monotonic() - started:.0f} s in all")
    if log:
        print("\nnot clear, not right:")
        for line in log[:40]:
            print("  " + line)
    bad = sum(c[o] for _, c in rows for o in ("traceback", "hang", "wrong value"))
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
