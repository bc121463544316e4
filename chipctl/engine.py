"""The engine one bench runs on: the rig, the run store and the runner, wired together.

The command line, the GUI and Python scripts all go through `Engine`, so a run behaves the same
whichever started it: connect, start a run, pause, resume, abort, emergency stop. Manual work
goes through `Engine.manual` (chipctl.manual.ManualSession): checked by the run's interlocks
and recorded in a manual session beside the runs; the device getters (`pumps()`, ...) are for
reading state. Events go out as psygnal signals (chipctl.run.events); nothing here knows of
terminals or Qt. The rig (or what builds it), the clock and the runs directory are given, so
tests inject fakes instead of patching.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from chipctl.config.bench import Bench
from chipctl.devices.interfaces import Camera, Illuminator, Stage, SyringePump, Valve
from chipctl.devices.registry import build_rig
from chipctl.devices.rig import Rig
from chipctl.manual import ManualSession
from chipctl.protocol.model import Protocol
from chipctl.run.clock import RunClock
from chipctl.run.control import RunControl
from chipctl.run.counting import FrameCounting
from chipctl.run.events import RunEvents, RunState, record
from chipctl.run.executor import Executor
from chipctl.run.runner import Runner
from chipctl.runs import RunRecorder, default_runs_dir
from chipctl.runs.lock import BenchInUse, BenchLock
from chipctl.vision.factory import count_params, make_pipeline, params_record
from chipctl.vision.model import CountParams
from drivers.errors import DeviceError

RigSource = Rig | Callable[[Bench], Rig]


class BenchUnavailable(Exception):
    """A device of the bench could not be reached."""


class Engine:
    """One bench, connected; starts runs and stops everything on request."""

    def __init__(self, bench: Bench, rig: RigSource = build_rig, *, clock: RunClock | None = None,
                 runs_dir: Path | None = None, keep_frames: str = "all",
                 info: dict[str, str] | None = None, lock_dir: Path | None = None) -> None:
        self.bench = bench
        ports = {spec.url: name for name, spec in reversed(bench.devices.items())}
        self.bench_lock = BenchLock(ports, lock_dir)  # one controller per bench
        self._rig = rig if isinstance(rig, Rig) else rig(bench)
        self.clock = clock or RunClock(bench.time_scale)
        self.runs_dir = runs_dir or default_runs_dir()
        self.keep_frames = keep_frames  # which raw frames runs keep (all, none, every Nth)
        self.info = dict(info or {})  # run information for the record only
        self.count_params: CountParams = count_params(bench.camera)
        self.bench_taken = False  # connect took the bench lock (and close let it go)
        self.runner: Runner | None = None
        self.recorder: RunRecorder | None = None
        self.manual = ManualSession(self._rig, self.clock, self.runs_dir, busy=self._busy,
                                    operator=self.info.get("operator", ""))

    # -- the bench ---------------------------------------------------------------------------
    def connect(self) -> None:
        """Take the bench (refused while another controller has it) and connect every device;
        BenchUnavailable names the device that failed or is in use."""
        try:
            self.bench_lock.acquire()
        except BenchInUse as exc:
            raise BenchUnavailable(f"cannot connect to the bench: {exc}") from exc
        self.bench_taken = True
        try:
            self._rig.connect()
        except DeviceError as exc:
            self._rig.close()
            self.bench_lock.release()
            raise BenchUnavailable(f"cannot connect to the bench: {exc}"
                                   f"{self._entry_of(exc.device)}") from exc

    def _entry_of(self, device: str) -> str:
        """` (bench file FILE, entry devices.NAME)` for the entries a device name covers."""
        names = [n for n in device.split("+") if n in self.bench.devices]
        if not names:
            return ""
        entries = ", ".join(f"devices.{n}" for n in names)
        where = f"bench file {self.bench.path}, " if self.bench.path else ""
        return f" ({where}entry {entries})"

    def close(self) -> None:
        """Stop safely, close the manual session's record, close every port, free the
        bench."""
        self._rig.safe_state()
        self._let_go()

    def _let_go(self) -> None:
        self.manual.close()
        self._rig.close()
        self.bench_lock.release()
        self.bench_taken = False

    def pumps(self) -> dict[str, SyringePump]:
        """The pumps by name (to read; manual actions go through `manual`)."""
        return self._rig.pumps

    def illuminators(self) -> dict[str, Illuminator]:
        """The illuminators by name."""
        return self._rig.illuminators

    def stages(self) -> dict[str, Stage]:
        """The stages by name."""
        return self._rig.stages

    def cameras(self) -> dict[str, Camera]:
        """The cameras by name."""
        return self._rig.cameras

    def valves(self) -> dict[str, Valve]:
        """The selector valves by name."""
        return self._rig.valves

    def camera(self) -> Camera:
        """The microscope's camera (LookupError if the bench has none)."""
        return self._rig.first("camera")  # type: ignore[no-any-return]

    def autofocus(self) -> float:
        """Focus with the camera on whatever light is on (a manual action, recorded); returns
        the focal plane (um)."""
        return self.manual.autofocus()

    # -- runs --------------------------------------------------------------------------------
    @property
    def active(self) -> bool:
        """True while a run is neither finished nor absent."""
        return self.runner is not None and not self.runner.state.finished

    def _busy(self) -> str | None:
        """Why manual work must wait (a run has the bench), or None."""
        if not self.active:
            return None
        run = f"run {self.recorder.run_id}" if self.recorder is not None else "a run"
        return f"{run} is in progress and has the bench; manual control waits until it ends"

    def start_run(self, protocol: Protocol, parameters: dict[str, str] | None = None,
                  events: RunEvents | None = None) -> Runner:
        """Record and start a run in a worker thread.

        `parameters` are checked against the protocol's declarations (defaults filled in);
        ParameterError (a ValueError) if one is unknown or a required one is missing.
        """
        if self.active:
            raise RuntimeError("a run is already in progress")
        flowing = self.manual.flowing()
        if flowing:
            raise RuntimeError(f"manual flow on {', '.join(flowing)} is running: stop it "
                               "before starting a run")
        parameters = protocol.resolve_parameters(parameters or {})
        events = events or RunEvents()
        recorder = self._recorder(protocol, parameters)
        recorder.attach(events)
        control = RunControl(self.clock)
        counting = FrameCounting(make_pipeline(self.count_params), events)
        executor = Executor(self._rig, control, events, counting, parameters=parameters)
        self.recorder = recorder
        self.manual.note("protocol_run", run_id=recorder.run_id, protocol=protocol.name)
        self.runner = Runner(protocol, executor, control, events)
        events.state_changed.connect(
            lambda state, reason: recorder.finish(state, reason)
            if RunState(state).finished else None
        )
        self.runner.start()
        return self.runner

    def _recorder(self, protocol: Protocol, parameters: dict[str, str]) -> RunRecorder:
        return RunRecorder(self.runs_dir, protocol, self.bench, {**self.info, **parameters},
                           devices=self._rig.devices, keep_frames=self.keep_frames,
                           counting=params_record(self.count_params))

    def stop_unstarted(self, protocol: Protocol, parameters: dict[str, str],
                       reason: str) -> RunRecorder:
        """A run stopped before it could start (a signal while the bench was connecting):
        every pump and light off and every stage halted as by an emergency stop (if the bench
        was taken), the run recorded as aborted with `reason` and its safe stop, the engine
        closed. Returns the run's record."""
        stop = self._rig.safe_stop(reason, broadcast=True) if self.bench_taken else None
        recorder = self._recorder(protocol, protocol.resolve_parameters(parameters))
        recorder.on_record(record("interrupted", reason=reason))
        if stop is not None:
            recorder.on_record(record("safe_stop", **stop.as_record()))
        recorder.on_record(record("state", state=RunState.ABORTED.value, reason=reason))
        recorder.finish(RunState.ABORTED.value, reason)
        self.recorder = recorder
        self._let_go()
        return recorder

    def pause(self) -> None:
        """Hold the current run's fluidics (pumps stopped, light off) until resume()."""
        if self.runner is not None:
            self.runner.pause()

    def resume(self) -> None:
        """Continue the current run."""
        if self.runner is not None:
            self.runner.resume()

    def abort(self, reason: str = "aborted by operator") -> None:
        """Stop the current run at its next checkpoint; the bench is brought to a safe state."""
        if self.runner is not None:
            self.runner.abort(reason)

    def interrupt(self, reason: str) -> list[str]:
        """Stop now, whatever is going (a signal, Ctrl-C): the run aborted and recorded as
        interrupted, manual flows booked, every pump and light off and every stage halted at
        once; returns what could not be confirmed."""
        if self.runner is not None and not self.runner.state.finished:
            return self.runner.emergency_stop(reason, event="interrupted")
        if self.manual.flowing():
            return self.manual.emergency_stop(reason)
        return self._rig.safe_stop(reason).failures

    def emergency_stop(self) -> list[str]:
        """Every pump and light off and every stage halted now, whatever is running; recorded
        by the run, or (no run going) by the manual session."""
        if self.runner is not None and not self.runner.state.finished:
            return self.runner.emergency_stop()
        return self.manual.emergency_stop()
