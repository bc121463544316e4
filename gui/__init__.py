"""PySide6 + pyqtgraph desktop client of the chipctl engine."""
