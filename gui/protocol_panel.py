"""The protocol panel: open a file, see it validated with lines, the dry run, steps and progress,
and run, pause, resume or abort it. A protocol with problems cannot be started.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QColor, QTextCursor
from PySide6.QtWidgets import (
    QFileDialog,
    QHBoxLayout,
    QLabel,
    QListWidget,
    QListWidgetItem,
    QPlainTextEdit,
    QProgressBar,
    QPushButton,
    QSplitter,
    QTreeWidget,
    QTreeWidgetItem,
    QVBoxLayout,
    QWidget,
)

from chipctl.config.sourcefile import Problem, SourceError
from chipctl.protocol import load_protocol
from chipctl.protocol.model import Protocol
from chipctl.protocol.validate import DryRun, check_protocol
from gui.estop import guard

STATE_COLOURS = {"running": "#1b7f3b", "paused": "#b36b00", "completed": "#1b7f3b",
                 "aborted": "#b36b00", "failed": "#c62828", "idle": "#555555"}


def describe_dry_run(plan: DryRun) -> str:
    """The dry-run estimate in a few lines."""
    lines = [f"{len(plan.steps)} steps, about {plan.duration_s / 60:.1f} min of protocol time"]
    lines += [f"pump {pump}: {volume:g} uL" for pump, volume in plan.volume_by_pump_ul.items()]
    lines += [f"reagent {name}: {volume:g} uL"
              for name, volume in plan.volume_by_reagent_ul.items()]
    lines.append(f"peak pressure {plan.peak_pressure_kpa:.1f} kPa; {plan.images} images")
    return "\n".join(lines)


def validate_file(path: str, bench: Any) -> tuple[Protocol | None, list[Problem], DryRun | None]:
    """Load and check a protocol against the bench: (protocol, problems, dry run)."""
    try:
        protocol = load_protocol(path)
    except SourceError as exc:
        return None, exc.problems, None
    try:
        problems, plan = check_protocol(protocol, bench)
    except Exception as exc:  # noqa: BLE001 - a checker bug must not pass a protocol silently
        problem = Problem(path, 0, f"could not check it: {type(exc).__name__}: {exc}")
        return protocol, [problem], None
    return protocol, problems, plan


class ProtocolPanel(QWidget):
    """Protocol file, validation, dry run, steps and run control."""

    fileOpened = Signal(str)  # path of a protocol the operator opened
    runStarted = Signal()  # a run of the open protocol was started
    runFailedToStart = Signal(str)  # why a run could not start

    def __init__(self, bench: Any, session: Any,
                 ask_parameters: Callable[[Protocol], dict[str, str] | None],
                 emergency_stop: Callable[[], None] = lambda: None,
                 parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.emergency_stop = emergency_stop
        self.bench = bench
        self.session = session
        self.ask_parameters = ask_parameters
        self.protocol: Protocol | None = None
        self.problems: list[Problem] = []
        self.plan: DryRun | None = None
        self._build()
        self.set_state("idle", "")

    # -- construction -----------------------------------------------------------------------
    def _build(self) -> None:
        self.open_button = QPushButton("Open protocol…")
        self.open_button.clicked.connect(self.choose_file)
        self.path_label = QLabel("no protocol open")
        self.path_label.setWordWrap(True)
        self.verdict = QLabel("")
        self.problem_list = QListWidget()
        self.problem_list.itemClicked.connect(self._show_problem_line)
        self.dry_run = QLabel("")
        self.dry_run.setWordWrap(True)
        self.source = QPlainTextEdit()
        self.source.setReadOnly(True)
        self.source.setLineWrapMode(QPlainTextEdit.LineWrapMode.NoWrap)
        self.steps = QTreeWidget()
        self.steps.setHeaderLabels(["#", "step", "line", "estimate", "status"])
        self.steps.setRootIsDecorated(False)
        self.progress = QProgressBar()
        self.state_label = QLabel("")
        self.run_button = QPushButton("Run")
        self.pause_button = QPushButton("Pause")
        self.resume_button = QPushButton("Resume")
        self.abort_button = QPushButton("Abort")
        self.run_button.clicked.connect(self.start_run)
        self.pause_button.clicked.connect(self.session.pause)
        self.resume_button.clicked.connect(self.session.resume)
        self.abort_button.clicked.connect(lambda: self.session.abort("aborted by the operator"))
        self._layout()

    def _layout(self) -> None:
        top = QHBoxLayout()
        top.addWidget(self.open_button)
        top.addWidget(self.path_label, 1)
        buttons = QHBoxLayout()
        for button in (self.run_button, self.pause_button, self.resume_button, self.abort_button):
            buttons.addWidget(button)
        split = QSplitter(Qt.Orientation.Vertical)
        for stretch, widget in enumerate((self.problem_list, self.steps, self.source)):
            split.addWidget(widget)
            split.setStretchFactor(stretch, (2, 3, 1)[stretch])
        layout = QVBoxLayout(self)
        layout.addLayout(top)
        layout.addWidget(self.verdict)
        layout.addWidget(self.dry_run)
        layout.addWidget(split, 1)
        layout.addWidget(self.progress)
        layout.addWidget(self.state_label)
        layout.addLayout(buttons)

    # -- opening and validating -------------------------------------------------------------
    def choose_file(self) -> None:
        """Ask for a protocol file and open it."""
        start = str(Path(self.protocol.source).parent) if self.protocol else ""
        dialog = QFileDialog(self, "Open protocol", start,
                             "Protocols (*.yaml *.yml);;All files (*)")
        dialog.setFileMode(QFileDialog.FileMode.ExistingFile)
        dialog.setOption(QFileDialog.Option.DontUseNativeDialog)  # so that F12 reaches us
        guard(dialog, self.emergency_stop)
        if dialog.exec() and dialog.selectedFiles():
            self.open_file(dialog.selectedFiles()[0])

    def open_file(self, path: str) -> bool:
        """Load and validate a protocol; returns True if it can run on this bench."""
        protocol, problems, plan = validate_file(path, self.bench)
        self.protocol, self.problems, self.plan = protocol, problems, plan
        self.path_label.setText(path)
        self._show_source(path)
        self._show_problems(problems)
        self.dry_run.setText(describe_dry_run(plan) if plan is not None and not problems else "")
        self._show_steps(plan)
        self.fileOpened.emit(path)
        self._update_buttons()
        return self.runnable

    @property
    def runnable(self) -> bool:
        """A protocol is open, valid on this bench, and no run is in progress."""
        return self.protocol is not None and not self.problems and not self.session.active

    def _show_source(self, path: str) -> None:
        try:
            text = Path(path).read_text(encoding="utf-8", errors="replace")
        except OSError:
            text = ""
        self.source.setPlainText(text)

    def _show_problems(self, problems: list[Problem]) -> None:
        self.problem_list.clear()
        for problem in problems:
            where = f"line {problem.line}: " if problem.line else ""
            item = QListWidgetItem(f"{where}{problem.message}")
            item.setForeground(QColor("#c62828"))
            item.setToolTip(str(problem))
            item.setData(Qt.ItemDataRole.UserRole, problem.line)
            self.problem_list.addItem(item)
        self.problem_list.setVisible(bool(problems))
        if problems:
            self.verdict.setText(f"<b style='color:#c62828'>{len(problems)} problem(s): "
                                 "this protocol cannot run on this bench</b>")
        else:
            self.verdict.setText("<b style='color:#1b7f3b'>valid on this bench</b>")

    def _show_problem_line(self, item: QListWidgetItem) -> None:
        line = int(item.data(Qt.ItemDataRole.UserRole) or 0)
        if line <= 0:
            return
        block = self.source.document().findBlockByLineNumber(line - 1)
        cursor = QTextCursor(block)
        cursor.select(QTextCursor.SelectionType.LineUnderCursor)
        self.source.setTextCursor(cursor)
        self.source.setFocus()

    def _show_steps(self, plan: DryRun | None) -> None:
        self.steps.clear()
        for index, step in enumerate(plan.steps if plan else []):
            item = QTreeWidgetItem([str(index + 1), step["label"], str(step["line"]),
                                    f"{step['duration_s']:g} s", ""])
            self.steps.addTopLevelItem(item)
        self.steps.resizeColumnToContents(1)
        self.progress.setRange(0, max(1, self.steps.topLevelItemCount()))
        self.progress.setValue(0)

    # -- running ----------------------------------------------------------------------------
    def start_run(self) -> bool:
        """Ask the parameters and start the run; False if it cannot start."""
        if not self.runnable or self.protocol is None:
            return False
        parameters = self.ask_parameters(self.protocol)
        if parameters is None:
            return False
        self._show_steps(self.plan)
        try:
            self.session.start(self.protocol, parameters)
        except (ValueError, OSError, RuntimeError) as exc:  # bad parameters, run folder
            self.set_state("idle", f"cannot start: {exc}")
            self.runFailedToStart.emit(str(exc))
            return False
        self._update_buttons()
        self.runStarted.emit()
        return True

    def step_started(self, index: int, total: int, label: str) -> None:
        """Mark the running step."""
        item = self.steps.topLevelItem(index)
        if item is not None:
            item.setText(4, "running")
            item.setForeground(4, QColor("#1b7f3b"))
            self.steps.setCurrentItem(item)
        self.progress.setRange(0, total)

    def step_finished(self, index: int, label: str) -> None:
        """Tick a finished step."""
        item = self.steps.topLevelItem(index)
        if item is not None:
            item.setText(4, "done")
        self.progress.setValue(index + 1)

    def set_state(self, state: str, reason: str) -> None:
        """Show the run's state and enable the buttons that apply."""
        colour = STATE_COLOURS.get(state, "#555555")
        text = f"<b style='color:{colour}'>{state}</b>" + (f": {reason}" if reason else "")
        self.state_label.setText(text)
        self.state = state
        if state in ("aborted", "failed") and self.session.runner is not None:
            index = getattr(self.session.runner, "current_step", -1)
            item = self.steps.topLevelItem(index) if index >= 0 else None
            if item is not None and item.text(4) != "done":
                item.setText(4, state)
                item.setForeground(4, QColor(colour))
        self._update_buttons()

    def _update_buttons(self) -> None:
        active = self.session.active
        state = self.session.state
        self.run_button.setEnabled(self.runnable)
        self.open_button.setEnabled(not active)
        self.pause_button.setEnabled(active and state == "running")
        self.resume_button.setEnabled(active and state == "paused")
        self.abort_button.setEnabled(active)
