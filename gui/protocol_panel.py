"""The protocol panel: open a protocol (a YAML file or a Python scripted protocol, from the
protocol library or anywhere), see it validated with lines, the dry run, steps and progress,
and run, pause, resume or abort it. A protocol with problems cannot be started. A script's
errors (a syntax error, an exception, a bad step) are listed with their line like a file's.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QColor, QTextCursor
from PySide6.QtWidgets import (
    QFileDialog,
    QGridLayout,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QListWidget,
    QListWidgetItem,
    QMenu,
    QPlainTextEdit,
    QProgressBar,
    QPushButton,
    QSplitter,
    QTreeWidget,
    QTreeWidgetItem,
    QVBoxLayout,
    QWidget,
)

from gui.core import DryRun, Problem, Protocol, SourceError, check_protocol, load_any
from gui.estop import guard
from gui.widgets import ElidedLabel, count_of, scrollable

FILE_FILTERS = ("Protocols (*.yaml *.yml *.py)", "Protocol files (*.yaml *.yml)",
                "Python scripted protocols (*.py)", "All files (*)")
PROTOCOL_SUFFIXES = (".yaml", ".yml", ".py")

STATE_COLOURS = {"running": "#1b7f3b", "paused": "#b36b00", "completed": "#1b7f3b",
                 "aborted": "#b36b00", "failed": "#c62828", "idle": "#555555"}


def describe_dry_run(plan: DryRun) -> str:
    """The dry-run estimate in a few lines."""
    minutes = plan.duration_s / 60
    lines = [f"{count_of(len(plan.steps), 'step')}, about {minutes:.1f} min of protocol time"]
    lines += [f"pump {pump}: {volume:g} uL" for pump, volume in plan.volume_by_pump_ul.items()]
    lines += [f"reagent {name}: {volume:g} uL"
              for name, volume in plan.volume_by_reagent_ul.items()]
    lines.append(f"peak pressure {plan.peak_pressure_kpa:.1f} kPa; "
                 f"{count_of(plan.images, 'image')}")
    return "\n".join(lines)


def validate_file(path: str, bench: Any) -> tuple[Protocol | None, list[Problem], DryRun | None]:
    """Load (a .py script is executed) and check a protocol against the bench:
    (protocol, problems, dry run)."""
    try:
        protocol = load_any(path)
    except SourceError as exc:
        return None, exc.problems, None
    try:
        problems, plan = check_protocol(protocol, bench)
    except Exception as exc:  # noqa: BLE001 - a checker bug must not pass a protocol silently
        problem = Problem(path, 0, f"could not check it: {type(exc).__name__}: {exc}")
        return protocol, [problem], None
    return protocol, problems, plan


def _duration(seconds: float) -> str:
    return f"{seconds:.0f} s" if seconds < 120 else f"{seconds / 60:.1f} min"


class ProtocolPanel(QWidget):
    """Protocol file, validation, dry run, steps and run control."""

    fileOpened = Signal(str)  # path of a protocol the operator opened
    runStarted = Signal()  # a run of the open protocol was started
    runFailedToStart = Signal(str)  # why a run could not start

    def __init__(self, bench: Any, session: Any,
                 ask_parameters: Callable[[Protocol], dict[str, str] | None],
                 emergency_stop: Callable[[], None] = lambda: None,
                 library: Path | None = None, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.library = library
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
        self.library_button = QPushButton("Library")
        self.library_button.setToolTip(f"the protocol library: {self.library or 'not found'}")
        self.library_menu = QMenu(self.library_button)
        self.library_menu.aboutToShow.connect(self._fill_library_menu)
        self.library_button.setMenu(self.library_menu)
        self.library_button.setEnabled(self.library is not None)
        self.path_label = ElidedLabel("no protocol open")
        self.verdict = ElidedLabel("")
        self.problem_list = QListWidget()
        self.problem_list.setWordWrap(True)  # a long problem wraps instead of being cut
        self.problem_list.itemClicked.connect(self._show_problem_line)
        self.dry_run = QLabel("")
        self.dry_run.setWordWrap(True)
        self.dry_run.setAlignment(Qt.AlignmentFlag.AlignTop | Qt.AlignmentFlag.AlignLeft)
        self.source = QPlainTextEdit()
        self.source.setReadOnly(True)
        self.source.setLineWrapMode(QPlainTextEdit.LineWrapMode.NoWrap)
        self.steps = QTreeWidget()
        self.steps.setHeaderLabels(["#", "step", "line", "estimate", "status"])
        self.steps.setRootIsDecorated(False)
        header = self.steps.header()
        header.setStretchLastSection(False)
        header.setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        header.setSectionResizeMode(1, QHeaderView.ResizeMode.Stretch)
        header.setMinimumSectionSize(30)
        self.steps.setTextElideMode(Qt.TextElideMode.ElideMiddle)
        self.progress = QProgressBar()
        self.state_label = ElidedLabel("")
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
        top.addWidget(self.library_button)
        top.addWidget(self.path_label, 1)
        buttons = QGridLayout()  # two rows: the dock may be narrow
        for index, button in enumerate((self.run_button, self.pause_button, self.resume_button,
                                        self.abort_button)):
            buttons.addWidget(button, index // 2, index % 2)
        # Everything long is in the splitter and scrolls there, so the run buttons below it
        # are always on screen however short the dock.
        split = QSplitter(Qt.Orientation.Vertical)
        self.dry_run_area = scrollable(self.dry_run)
        self.dry_run_area.setMinimumSize(40, 30)
        widgets = (self.problem_list, self.dry_run_area, self.steps, self.source)
        for index, widget in enumerate(widgets):
            widget.setMinimumHeight(30)
            split.addWidget(widget)
            split.setStretchFactor(index, (2, 1, 4, 1)[index])
        split.setChildrenCollapsible(False)
        split.setSizes([80, 120, 260, 90])  # the dry run readable at once, the steps largest
        layout = QVBoxLayout(self)
        layout.addLayout(top)
        layout.addWidget(self.verdict)
        layout.addWidget(split, 1)
        layout.addWidget(self.progress)
        layout.addWidget(self.state_label)
        layout.addLayout(buttons)

    # -- opening and validating -------------------------------------------------------------
    def start_folder(self) -> str:
        """Where the file dialog opens: the open protocol's folder, else the library."""
        if self.protocol is not None and Path(self.protocol.source).parent.is_dir():
            return str(Path(self.protocol.source).parent)
        return str(self.library) if self.library is not None else ""

    def library_protocols(self) -> list[Path]:
        """The library's protocol files and scripts, by name."""
        if self.library is None:
            return []
        return sorted(p for p in self.library.iterdir()
                      if p.suffix in PROTOCOL_SUFFIXES and p.is_file())

    def _fill_library_menu(self) -> None:
        self.library_menu.clear()
        for path in self.library_protocols():
            action = self.library_menu.addAction(path.name)
            action.triggered.connect(lambda _=False, p=str(path): self.open_file(p))

    def file_dialog(self) -> QFileDialog:
        """The open dialog: protocol files and scripts, in the library or the last folder."""
        dialog = QFileDialog(self, "Open protocol", self.start_folder(),
                             ";;".join(FILE_FILTERS))
        dialog.setFileMode(QFileDialog.FileMode.ExistingFile)
        dialog.setOption(QFileDialog.Option.DontUseNativeDialog)  # so that F12 reaches us
        guard(dialog, self.emergency_stop)
        return dialog

    def choose_file(self) -> None:
        """Ask for a protocol (file or script) and open it."""
        dialog = self.file_dialog()
        if dialog.exec() and dialog.selectedFiles():
            self.open_file(dialog.selectedFiles()[0])

    def open_file(self, path: str) -> bool:
        """Load and validate a protocol; returns True if it can run on this bench."""
        protocol, problems, plan = validate_file(path, self.bench)
        self.protocol, self.problems, self.plan = protocol, problems, plan
        kind = "Python script" if path.endswith(".py") else "protocol file"
        self.path_label.setText(f"{Path(path).name} ({kind}) · {path}")
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
            self.verdict.setText(f"<b style='color:#c62828'>{count_of(len(problems), 'problem')}: "
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
                                    _duration(step["duration_s"]), ""])
            item.setToolTip(1, step["label"])
            self.steps.addTopLevelItem(item)
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
