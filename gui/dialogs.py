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

from gui.core import Protocol
from gui.estop import guard


class ParametersDialog(QDialog):
    """Asks the values of a protocol's parameters (prefilled with the file's defaults; the
    run cannot start while a required one is empty)."""

    def __init__(self, protocol: Protocol, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle(f"Start {protocol.name}")
        self.edits: dict[str, QLineEdit] = {}
        self.required = {p.name for p in protocol.parameters if p.required}
        form = QFormLayout()
        for param in protocol.parameters:
            edit = QLineEdit(param.default or "")
            edit.setPlaceholderText(param.description or ("required" if param.required else ""))
            edit.setToolTip(param.description)
            edit.textChanged.connect(self._check)
            self.edits[param.name] = edit
            form.addRow(param.name + (" *" if param.required else ""), edit)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Ok
                                   | QDialogButtonBox.StandardButton.Cancel)
        self.ok_button = buttons.button(QDialogButtonBox.StandardButton.Ok)
        self.ok_button.setText("Start run")
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        layout = QVBoxLayout(self)
        layout.addWidget(QLabel("Parameters of this run (recorded with it):"))
        layout.addLayout(form)
        layout.addWidget(buttons)
        self._check()

    def _check(self) -> None:
        self.ok_button.setEnabled(all(self.edits[name].text().strip() for name in self.required))

    def values(self) -> dict[str, str]:
        """name -> value as typed (optional ones left empty are left out)."""
        return {name: edit.text().strip() for name, edit in self.edits.items()
                if edit.text().strip() or name in self.required}


def ask_parameters(protocol: Protocol, parent: QWidget | None,
                   emergency_stop: Callable[[], None]) -> dict[str, str] | None:
    """The parameters for a run, or None if the operator cancelled (no dialog if none)."""
    if not protocol.parameters:
        return {}
    dialog = ParametersDialog(protocol, parent)
    guard(dialog, emergency_stop)
    return dialog.values() if dialog.exec() == QDialog.DialogCode.Accepted else None


def prompt_box(message: str, parent: QWidget | None, on_done: Callable[[], None]) -> QMessageBox:
    """A non-blocking operator prompt; `on_done` runs when the operator confirms."""
    box = QMessageBox(QMessageBox.Icon.Information, "Operator action needed", message,
                      QMessageBox.StandardButton.Ok, parent)
    box.setInformativeText("The run waits until you press OK.")
    box.setWindowModality(Qt.WindowModality.NonModal)  # the emergency stop stays clickable
    box.finished.connect(lambda _result: on_done())
    box.show()
    return box


def error_box(title: str, message: str, parent: QWidget | None) -> QMessageBox:
    """A non-blocking error dialog (the run and the event loop carry on)."""
    box = QMessageBox(QMessageBox.Icon.Critical, title, message, QMessageBox.StandardButton.Ok,
                      parent)
    box.setWindowModality(Qt.WindowModality.NonModal)  # the emergency stop stays clickable
    box.show()
    return box
