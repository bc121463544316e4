"""Dialogs: the run's parameters asked at start, operator prompts, errors for the operator."""

from __future__ import annotations

from collections.abc import Callable

from PySide6.QtCore import Qt
from PySide6.QtWidgets import (
    QDialog,
    QDialogButtonBox,
    QFormLayout,
    QLabel,
    QLineEdit,
    QMessageBox,
    QVBoxLayout,
    QWidget,
)

from chipctl.protocol.model import Protocol


class ParametersDialog(QDialog):
    """Asks the values of a protocol's parameters (prefilled with the file's defaults)."""

    def __init__(self, protocol: Protocol, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle(f"Start {protocol.name}")
        self.edits: dict[str, QLineEdit] = {}
        form = QFormLayout()
        for name, default in protocol.parameters:
            edit = QLineEdit(default)
            edit.setObjectName(f"param-{name}")
            self.edits[name] = edit
            form.addRow(name, edit)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Ok
                                   | QDialogButtonBox.StandardButton.Cancel)
        buttons.button(QDialogButtonBox.StandardButton.Ok).setText("Start run")
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        layout = QVBoxLayout(self)
        layout.addWidget(QLabel("Parameters of this run (recorded with it):"))
        layout.addLayout(form)
        layout.addWidget(buttons)

    def values(self) -> dict[str, str]:
        """name -> value as typed."""
        return {name: edit.text().strip() for name, edit in self.edits.items()}


def ask_parameters(protocol: Protocol, parent: QWidget | None) -> dict[str, str] | None:
    """The parameters for a run, or None if the operator cancelled (no dialog if none)."""
    if not protocol.parameters:
        return {}
    dialog = ParametersDialog(protocol, parent)
    return dialog.values() if dialog.exec() == QDialog.DialogCode.Accepted else None


def prompt_box(message: str, parent: QWidget | None, on_done: Callable[[], None]) -> QMessageBox:
    """A non-blocking operator prompt; `on_done` runs when the operator confirms."""
    box = QMessageBox(QMessageBox.Icon.Information, "Operator action needed", message,
                      QMessageBox.StandardButton.Ok, parent)
    box.setInformativeText("The run waits until you press OK.")
    box.setWindowModality(Qt.WindowModality.NonModal)
    box.finished.connect(lambda _result: on_done())
    box.open()
    return box


def error_box(title: str, message: str, parent: QWidget | None) -> QMessageBox:
    """A non-blocking error dialog (the run and the event loop carry on)."""
    box = QMessageBox(QMessageBox.Icon.Critical, title, message, QMessageBox.StandardButton.Ok,
                      parent)
    box.setWindowModality(Qt.WindowModality.NonModal)
    box.open()
    return box
