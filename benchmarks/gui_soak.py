"""Soak the desktop app: Live and protocol runs on the simulated bench for a given wall time.

    python -m benchmarks.gui_soak                 # 30 minutes (the issue's figure)
    python -m benchmarks.gui_soak --minutes 2     # a quick look

The app runs offscreen in a child process (so a crash in Qt or the binding is seen, not
suffered): the real MainWindow on a simulated bench, alternating a minute of camera Live with
one run of a library protocol (default: the tetraspanin panel, its operator prompt answered).
It prints, each minute and at the end: widget paints, frames shown, runs completed, the
process's resident memory (RSS) at start, its peak and the peak's growth over the start, the
change in None's reference count (the PySide6 6.12 bug lowered it on every paint), and whether
the app survived. Reference: the app died after about 35 s of Live with PySide6 6.12.0
(issue 15); a healthy app survives the whole time with a flat RSS.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import subprocess
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_PROTOCOL = ROOT / "protocols" / "tetraspanin_panel.yaml"


def rss_mb() -> float:
    """This process's resident memory, MB (Linux /proc; 0 elsewhere)."""
    try:
        pages = int(Path("/proc/self/statm").read_text().split()[1])
    except (OSError, IndexError, ValueError):
        return 0.0
    return pages * os.sysconf("SC_PAGE_SIZE") / 2**20


def largest_holders(n: int = 4) -> list[str]:
    """Where the most traced memory (Python objects and numpy arrays) was allocated."""
    stats = tracemalloc.take_snapshot().statistics("traceback")[:n]
    return [f"{st.size / 2**20:.0f} MB in {st.count} blocks: "
            + " <- ".join(f"{Path(f.filename).name}:{f.lineno}" for f in
                          reversed(st.traceback[-4:])) for st in stats]


# -- the child: the app itself ---------------------------------------------------------------
def child(args: argparse.Namespace) -> int:
    """Run the app for `args.minutes`, printing one JSON line of figures every `report_s`."""
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    from pyqtgraph.util.garbage_collector import GarbageCollector
    from PySide6.QtCore import QEvent, QObject, QSettings, QTimer
    from PySide6.QtWidgets import QApplication

    from gui.app import frames_back_to_the_system
    from gui.core import Engine, SimulatedBench, load_bench
    from gui.main_window import MainWindow

    class PaintCounter(QObject):
        def __init__(self) -> None:
            super().__init__()
            self.paints = 0

        def eventFilter(self, watched: QObject, event: QEvent) -> bool:  # noqa: N802
            if event.type() == QEvent.Type.Paint:
                self.paints += 1
            return False

    if args.trace:
        tracemalloc.start(12)
    gc.disable()  # as the app: garbage is collected on the Qt thread by a timer
    frames_back_to_the_system()  # as the app
    app = QApplication.instance() or QApplication(sys.argv[:1])
    collector = GarbageCollector(interval=1.0)
    counter = PaintCounter()
    app.installEventFilter(counter)
    tmp = tempfile.TemporaryDirectory()
    sim = SimulatedBench(speed=args.speed, seed=1).start()
    runs = Path(args.runs_dir) if args.runs_dir else Path(tmp.name) / "runs"
    engine = Engine(load_bench(sim.bench_path), runs_dir=runs, keep_frames="none")
    engine.connect()
    window = MainWindow(engine, QSettings(str(Path(tmp.name) / "gui.ini"),
                                          QSettings.Format.IniFormat),
                        parameters=lambda p: {q.name: q.default or "soak sample"
                                              for q in p.parameters},
                        open_url=lambda url: None)
    window.ask_before_close = False
    window.resize(1366, 768)
    window.show()
    window.live_view.spots_box.setChecked(True)
    def answer_prompt() -> None:  # the operator confirms the tetraspanin panel's prompt
        if window.prompt_dialog is not None:
            window.prompt_dialog.accept()

    window.bridge.prompt.connect(lambda _message: QTimer.singleShot(300, answer_prompt))
    camera = window.camera_boxes[0]
    started = time.monotonic()
    deadline = started + args.minutes * 60
    state: dict[str, Any] = {"runs": 0, "failed_runs": 0, "phase": "live", "until": 0.0,
                             "rss0": None, "peak": 0.0, "none0": sys.getrefcount(None),
                             "reasons": {}}

    def report(final: bool = False) -> None:
        rss = rss_mb()
        state["peak"] = max(state["peak"], rss)
        if state["rss0"] is None:
            state["rss0"] = rss
        print(json.dumps({
            "t_min": round((time.monotonic() - started) / 60, 2), "paints": counter.paints,
            "frames_shown": window.live_view.frames_shown, "runs": state["runs"],
            "failed_runs": state["failed_runs"], "rss_mb": round(rss, 1),
            "rss_start_mb": round(state["rss0"], 1), "rss_peak_mb": round(state["peak"], 1),
            "none_refcount_change": sys.getrefcount(None) - state["none0"],
            "not_completed": state["reasons"], "final": final,
            **({"traced_mb": round(tracemalloc.get_traced_memory()[0] / 2**20, 1),
                "largest": largest_holders()} if args.trace else {})}), flush=True)

    def step() -> None:
        now = time.monotonic()
        if now >= deadline:
            report(final=True)
            camera.stop_live()
            window.close()
            app.quit()
            return
        if state["phase"] == "live" and now >= state["until"]:
            camera.stop_live()
            if window.protocol_panel.open_file(str(args.protocol)) and \
                    window.protocol_panel.start_run():
                state["phase"] = "run"
            else:
                state["until"] = now + args.live_s
                camera.live_button.setChecked(True)
        elif state["phase"] == "run" and not window.session.active:
            state["runs"] += 1
            if window.session.state != "completed":
                state["failed_runs"] += 1
                reason = f"{window.session.state}: {window.session.runner.reason}"
                state["reasons"][reason] = state["reasons"].get(reason, 0) + 1
            state["phase"], state["until"] = "live", now + args.live_s
            camera.live_button.setChecked(True)

    ticker = QTimer()
    ticker.timeout.connect(step)
    ticker.start(200)
    reporter = QTimer()
    reporter.timeout.connect(report)
    reporter.start(int(args.report_s * 1000))
    QTimer.singleShot(3000, report)  # the start figure, once the window has settled
    camera.live_button.setChecked(True)
    state["until"] = time.monotonic() + args.live_s
    app.exec()
    collector.timer.stop()
    engine.close()
    sim.stop()
    sys.stdout.flush()
    os._exit(0)


# -- the parent: runs the child and judges ------------------------------------------------------
def main(argv: list[str] | None = None) -> int:
    """Run the soak and print its figures."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks.gui_soak",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, default=30.0, help="wall time (default 30)")
    parser.add_argument("--speed", type=float, default=100.0, help="simulator speed factor")
    parser.add_argument("--protocol", type=Path, default=DEFAULT_PROTOCOL)
    parser.add_argument("--live-s", type=float, default=60.0, help="seconds of Live per cycle")
    parser.add_argument("--report-s", type=float, default=60.0)
    parser.add_argument("--runs-dir", help="keep the runs' records here (default: a temporary "
                        "folder, removed at the end)")
    parser.add_argument("--trace", action="store_true", help="trace Python and numpy "
                        "allocations (slower): traced memory and its largest holders")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.minutes <= 0:
        parser.error("--minutes must be positive")
    if args.child:
        return child(args)
    command = [sys.executable, "-m", "benchmarks.gui_soak", "--child",
               "--minutes", str(args.minutes), "--speed", str(args.speed), "--protocol",
               str(args.protocol), "--live-s", str(args.live_s), "--report-s", str(args.report_s),
               *(["--runs-dir", str(args.runs_dir)] if args.runs_dir else []),
               *(["--trace"] if args.trace else [])]
    env = {**os.environ, "QT_QPA_PLATFORM": "offscreen"}
    print(f"soak: {args.minutes:g} min of Live ({args.live_s:g} s at a time) and "
          f"{args.protocol.name} runs at {args.speed:g}x, offscreen", flush=True)
    last: dict[str, Any] = {}
    with subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.PIPE, text=True) as proc:
        assert proc.stdout is not None
        for line in proc.stdout:
            try:
                last = json.loads(line)
            except ValueError:
                print(line.rstrip(), flush=True)
                continue
            print(f"  {last['t_min']:6.2f} min: {last['paints']} paints, "
                  f"{last['frames_shown']} frames shown, {last['runs']} runs, "
                  f"RSS {last['rss_mb']} MB", flush=True)
            if "traced_mb" in last:
                print(f"          traced {last['traced_mb']} MB; largest: "
                      + "; ".join(last["largest"]), flush=True)
        code = proc.wait()
    survived = code == 0 and bool(last.get("final"))
    print_summary(args.minutes, last, code, survived)
    return 0 if survived else 1


def print_summary(minutes: float, last: dict[str, Any], code: int, survived: bool) -> None:
    """The closing figures."""
    how = "survived" if survived else (f"DIED (signal {-code})" if code < 0
                                       else f"DIED (exit code {code})")
    print(f"\nresult: {how} {last.get('t_min', 0):g} of {minutes:g} min")
    if last:
        growth = last["rss_peak_mb"] - last["rss_start_mb"]
        print(f"paints: {last['paints']}  frames shown: {last['frames_shown']}  "
              f"protocol runs: {last['runs']} ({last['failed_runs']} not completed)")
        for reason, n in last.get("not_completed", {}).items():
            print(f"  {n} x {reason}")
        print(f"RSS: start {last['rss_start_mb']} MB, peak {last['rss_peak_mb']} MB, "
              f"peak growth {growth:+.1f} MB, end {last['rss_mb']} MB")
        print(f"None's reference count changed by {last['none_refcount_change']:+d} "
              "(the binding bug lowered it by one or more per paint)")
    print("reference: PySide6 6.12.0 died after ~35 s of Live (issue 15)")


if __name__ == "__main__":
    sys.exit(main())
