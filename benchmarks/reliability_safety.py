"""The safe-state areas of benchmarks/reliability.py (issue 17, second part).

- faults x steps: a run on the simulated bench (in this process, devices on TCP), a fault
  injected through the simulator's control channel while a step of one kind runs (a lost,
  garbled or locked-up link, an unplugged New Era pump, a pump stall or power cycle, a stage
  power cycle), the run left to end;
- kills: `chipctl run` as a child process on the simulated bench, sent SIGTERM, SIGHUP, SIGINT
  or SIGKILL at a random moment of a flow.

Each trial ends as: ok (a link fault the drivers rode out: the run completed), clear error
(the run stopped, its reason naming the device), unclear error, traceback, hang, wrong value
(a device fault the run did not notice) and, counted on top, device left on (a pump moving or
a light emitting, by the simulator's own state, once the run ended, or, with a New Era pump
unreachable or a SIGKILL, once its safe-mode timeout passed). The time to safe state is the
slowest device's confirmation in the run's `safe_stop` record (from the detection: the stop
starts when the fault is detected) and, for the kills, from the signal to the simulator's pump
stopping, on the simulator's clock.
"""

from __future__ import annotations

import json
import random
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

SPEED = 20.0  # the simulated clock during these trials
SAFE_MODE_S = 5.0  # the New Era default the bench files get
HANG_S = 60.0
PROTOCOL_HEAD = "schema_version: 1\nname: safety trial\nsteps:\n"
STEPS = {
    "prime (New Era)": "  - prime: {pump: buffer_pump, volume: 40 uL, rate: 40 uL/min}\n",
    "flow (Harvard)": "  - flow: {pump: stain_pump, rate: 10 uL/min, volume: 10 uL}\n",
    "image": ("  - image: {zones: [CD63], fields: 8, channels: [{channel: AF555, exposure: "
              "100 ms, power: 100 %}]}\n"),
}
LINK = [("drop_reply", 1.0), ("drop_reply", 3.0), ("garble", 3.0), ("lockup", 1.0)]
FAULTS: dict[str, list[tuple[str, str, float]]] = {
    "prime (New Era)": [("buffer_pump", f, v) for f, v in LINK]
    + [("buffer_pump", "unplug", 1.0), ("buffer_pump", "stall", 1.0),
       ("buffer_pump", "power_cycle", 1.0)],
    "flow (Harvard)": [("stain_pump", f, v) for f, v in LINK]
    + [("stain_pump", "stall", 1.0), ("stain_pump", "power_cycle", 1.0)],
    "image": [("led", f, v) for f, v in LINK] + [("stage", f, v) for f, v in LINK]
    + [("stage", "power_cycle", 1.0), ("camera", "drop_reply", 1.0)],
}
DEVICE_FAULTS = ("stall", "power_cycle")
KILLS = ("SIGTERM", "SIGHUP", "SIGINT", "SIGKILL")
LONG_FLOW = "  - prime: {pump: buffer_pump, volume: 200 uL, rate: 20 uL/min}\n"


@dataclass
class Area:
    """One row of the table: outcomes, devices left on and the worst time to safe state."""

    counts: Counter[str] = field(default_factory=Counter)
    left_on: int = 0
    worst_s: float = 0.0

    def add(self, outcome: str, left_on: bool, seconds: float) -> None:
        self.counts[outcome] += 1
        self.left_on += int(left_on)
        self.worst_s = max(self.worst_s, seconds)


def _control(bench: Any, payload: dict[str, Any]) -> dict[str, Any]:
    from hardware_sim.control import request

    return request(bench.control.address, payload, token=bench.control.token)


def _left_on(bench: Any) -> list[str]:
    devices = _control(bench, {"cmd": "status"})["devices"]
    pumps = [n for n, s in devices.items() if "infused_ul" in s and s["running"]]
    lights = [n for n, s in devices.items() if s.get("emission")]
    return pumps + lights


def _sim_bench(folder: Path, seed: int) -> tuple[Any, Path]:
    from hardware_sim.bench import SimBench

    bench = SimBench(speed=SPEED, seed=seed).start()
    path = bench.write_bench_file(folder / "bench.yaml")
    document = yaml.safe_load(path.read_text())
    document["devices"]["camera"]["roi"] = [768, 768, 512, 512]  # as the tests image
    path.write_text(yaml.safe_dump(document, sort_keys=False))
    return bench, path


# -- faults x steps ----------------------------------------------------------------------------
def fault_trial(folder: Path, step: str, device: str, fault: str, value: float,
                seed: int) -> tuple[str, bool, float, str]:
    """(outcome, left on, worst seconds to safe state, note) of one faulted run."""
    from chipctl.config.bench import load_bench
    from chipctl.engine import Engine
    from chipctl.protocol import parse_protocol
    from chipctl.run.events import RunEvents

    bench, path = _sim_bench(folder, seed)
    try:
        engine = Engine(load_bench(path), runs_dir=folder / "runs", keep_frames="none",
                        lock_dir=folder / "locks")
        engine.connect()
        events = RunEvents()
        records: list[dict[str, Any]] = []
        events.record.connect(records.append)
        armed = threading.Event()

        def on_step(index: int, total: int, label: str) -> None:
            def arm() -> None:
                time.sleep(0.3)  # into the step
                _control(bench, {"cmd": "fault", "device": device, "fault": fault,
                                 "value": value})
                armed.set()
            threading.Thread(target=arm, daemon=True).start()

        events.step_started.connect(on_step)
        protocol = parse_protocol(PROTOCOL_HEAD + STEPS[step], "trial.yaml")
        runner = engine.start_run(protocol, {}, events)
        finished = runner.wait(HANG_S).finished
        if finished and fault == "unplug":
            time.sleep(SAFE_MODE_S + 1.5)  # the pump's own watchdog, beyond the host's reach
        on = _left_on(bench)
        engine.close() if finished else None
    finally:
        bench.stop()
    stops = [r for r in records if r["event"] == "safe_stop"]
    worst = max((d["seconds"] for s in stops for d in s["devices"] if d["confirmed"]),
                default=0.0)
    if not finished:
        return "hang", bool(on), worst, "run still going"
    return _fault_outcome(runner.state.value, runner.reason, fault, armed.is_set(),
                          engine.bench), bool(on), worst, f"{runner.state.value}: {runner.reason}"


def _fault_outcome(state: str, reason: str, fault: str, armed: bool, bench: Any) -> str:
    if reason.startswith("internal error"):
        return "traceback"
    if state == "completed":
        return "wrong value" if fault in DEVICE_FAULTS and armed else "ok"
    named = any(name in reason for name in bench.devices) and "socket://" not in reason
    return "clear error" if named else "unclear error"


def fault_area(folder: Path, log: list[str], quick: bool) -> dict[str, Area]:
    """Every fault on every step kind; one Area per step kind."""
    areas: dict[str, Area] = {}
    for step, faults in FAULTS.items():
        area = areas.setdefault(f"faults: {step}", Area())
        for index, (device, fault, value) in enumerate(faults[::2] if quick else faults):
            trial = folder / f"{step.split()[0]}-{index}"
            trial.mkdir()
            outcome, on, worst, note = fault_trial(trial, step, device, fault, value, index)
            area.add(outcome, on, worst)
            if outcome not in ("ok", "clear error") or on or worst > 1.0:
                log.append(f"faults {step} {device} {fault}: {outcome}, left on {on}, "
                           f"{worst:.2f} s: {note}"[:300])
    return areas


# -- kills -------------------------------------------------------------------------------------
def kill_trial(folder: Path, sig: str, rng: random.Random) -> tuple[str, bool, float, str]:
    """(outcome, left on, seconds from the signal to the pump stopped, note)."""
    bench, path = _sim_bench(folder, rng.randrange(1000))
    protocol = folder / "long.yaml"
    protocol.write_text(PROTOCOL_HEAD + LONG_FLOW)
    child = subprocess.Popen(
        [sys.executable, "-m", "chipctl.cli.main", "run", str(protocol), "--bench", str(path),
         "--runs-dir", str(folder / "runs"), "--yes"],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        if not _until(lambda: "buffer_pump" in _left_on(bench), HANG_S):
            return "hang", False, 0.0, "the pump never started"
        time.sleep(rng.uniform(0.1, 2.0))  # a random moment of the flow
        sent_at = _control(bench, {"cmd": "status"})["time_s"]
        child.send_signal(getattr(signal, sig))
        try:
            _, err = child.communicate(timeout=HANG_S)
        except subprocess.TimeoutExpired:
            return "hang", bool(_left_on(bench)), 0.0, "chipctl did not exit"
        limit = SAFE_MODE_S + 3.0 if sig == "SIGKILL" else 1.0
        _until(lambda: not _left_on(bench), limit)
        on = bool(_left_on(bench))
        pump = _control(bench, {"cmd": "status"})["devices"]["buffer_pump"]
        seconds = max(0.0, (pump["ended_at_s"] - sent_at) / SPEED)
    finally:
        child.kill()
        bench.stop()
    return _kill_outcome(sig, child.returncode, err.decode(errors="replace"), folder), on, \
        seconds, f"exit {child.returncode}, pump ended {pump['ended']!r}"


def _kill_outcome(sig: str, code: int, err: str, folder: Path) -> str:
    if "Traceback" in err:
        return "traceback"
    if sig == "SIGKILL":
        return "clear error"  # nothing to say: the run folder is marked interrupted later
    runs = [p for p in (folder / "runs").iterdir() if (p / "run.json").exists()]
    info = json.loads((runs[0] / "run.json").read_text()) if runs else {}
    recorded = info.get("status") == "aborted" and "interrupted" in info.get("reason", "")
    return "clear error" if code == 1 and recorded else "unclear error"


def _until(condition: Callable[[], bool], wall_s: float) -> bool:
    deadline = time.monotonic() + wall_s
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


def kill_area(folder: Path, log: list[str], quick: bool, seed: int) -> dict[str, Area]:
    """Each signal at random moments of a flow; one Area per signal."""
    rng = random.Random(seed)
    areas: dict[str, Area] = {}
    for sig in KILLS:
        area = areas.setdefault(f"kills: {sig}", Area())
        for index in range(2 if quick else 4):
            trial = folder / f"{sig}-{index}"
            trial.mkdir()
            outcome, on, seconds, note = kill_trial(trial, sig, rng)
            area.add(outcome, on, seconds)
            target = SAFE_MODE_S + 1.0 if sig == "SIGKILL" else 1.0
            if outcome not in ("ok", "clear error") or on or seconds > target:
                log.append(f"kills {sig} #{index}: {outcome}, left on {on}, {seconds:.2f} s: "
                           f"{note}"[:300])
    return areas
