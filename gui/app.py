"""chipctl-gui [--sim | --bench FILE]: the composition root of the desktop app.

With --sim it starts the simulated bench itself, so a new user sees a working bench at once.
Without either, the bench used last time is opened. Problems (a bad bench file, a device that
does not answer, a simulator that will not start) are shown in a dialog and on stderr, with
exit code 2 and no traceback.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from PySide6.QtCore import QCoreApplication, QSettings, QTimer
from PySide6.QtWidgets import QApplication, QMessageBox

from gui.core import (
    Bench,
    BenchUnavailable,
    Engine,
    SourceError,
    frames_back_to_the_system,
    load_bench,
    simulated_bench_file,
    stopping_on_signals,
)

EXIT_OK, EXIT_INVALID = 0, 2
ORGANIZATION, APPLICATION = "chipctl", "chipctl-gui"


class StartupError(Exception):
    """The app cannot start; the message says why and what to do."""


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    """The command line."""
    parser = argparse.ArgumentParser(prog="chipctl-gui",
                                     description="The bench operator's desktop app.")
    where = parser.add_mutually_exclusive_group()
    where.add_argument("--sim", action="store_true", help="start and use the simulated bench")
    where.add_argument("--bench", metavar="FILE", help="the bench file of a real bench")
    parser.add_argument("--speed", type=float, default=20.0,
                        help="simulator speed: simulated seconds per second (default 20)")
    parser.add_argument("--seed", type=int, default=0, help="simulator random seed")
    parser.add_argument("--runs-dir", metavar="DIR", help="where runs are recorded")
    parser.add_argument("--protocol", metavar="FILE", help="open this protocol at start")
    args = parser.parse_args(argv)
    if args.speed <= 0:
        parser.error("--speed must be positive")
    return args


@contextmanager
def bench_for(args: argparse.Namespace, settings: QSettings) -> Iterator[Bench]:
    """The bench to use: simulated (--sim), a file (--bench), or the last one used."""
    if args.sim:
        with simulated_bench_file(args.speed, args.seed, StartupError) as path:
            yield _load(path)
        return
    path = args.bench or settings.value("last_bench")
    if not path:
        raise StartupError("say which bench: chipctl-gui --bench FILE, or chipctl-gui --sim "
                           "for the simulated bench")
    bench = _load(Path(str(path)))
    settings.setValue("last_bench", str(Path(str(path)).resolve()))
    yield bench


def _load(path: Path) -> Bench:
    try:
        return load_bench(path)
    except SourceError as exc:
        raise StartupError(f"invalid bench file:\n{exc}") from exc


def connect_engine(bench: Bench, runs_dir: str | None) -> Engine:
    """A connected engine, or StartupError naming what failed."""
    try:
        engine = Engine(bench, runs_dir=Path(runs_dir) if runs_dir else None)
    except (LookupError, ImportError, ValueError, OSError) as exc:
        raise StartupError(f"cannot build the bench {bench.name!r}: {exc}") from exc
    try:
        engine.connect()
    except BenchUnavailable as exc:
        raise StartupError(str(exc)) from exc
    return engine


def report_startup_error(app: QApplication, message: str) -> None:
    """stderr always; a dialog when there is a screen to show it on."""
    print(f"chipctl-gui: {message}", file=sys.stderr, flush=True)
    if app.platformName() not in ("offscreen", "minimal"):
        QMessageBox.critical(None, "chipctl cannot start", message)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of chipctl-gui."""
    args = parse_args(argv)
    app = QApplication.instance() or QApplication(sys.argv[:1])
    app.setOrganizationName(ORGANIZATION)
    app.setApplicationName(APPLICATION)
    settings = QSettings(ORGANIZATION, APPLICATION)
    try:
        with bench_for(args, settings) as bench:
            engine = connect_engine(bench, args.runs_dir)
            try:
                return run_window(app, engine, settings, args.protocol)
            finally:
                engine.close()
    except StartupError as exc:
        report_startup_error(app, str(exc))  # type: ignore[arg-type]
        return EXIT_INVALID


def run_window(app: QCoreApplication, engine: Engine, settings: QSettings,
               protocol: str | None) -> int:
    """Show the main window until it is closed."""
    from pyqtgraph.util.garbage_collector import GarbageCollector

    from gui.main_window import MainWindow

    # Garbage is collected on the Qt thread only, by a timer: a cycle holding Qt objects that a
    # device or frame thread happened to collect would be destroyed off the Qt thread.
    collector = GarbageCollector(interval=1.0)
    frames_back_to_the_system()
    window = MainWindow(engine, settings)
    if protocol:
        window.protocol_panel.open_file(protocol)
    window.show()

    def on_signal(name: str) -> None:  # SIGTERM, SIGHUP: the bench safe at once, then quit
        engine.interrupt(f"interrupted by {name}")
        app.quit()

    ticker = QTimer()  # Python runs signal handlers only between bytecodes: give it some
    ticker.start(200)
    ticker.timeout.connect(lambda: None)
    with stopping_on_signals(on_signal):
        app.exec()
    ticker.stop()
    collector.timer.stop()
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
