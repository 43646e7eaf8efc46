"""List models the QML views bind to: the live lines and the history (thin wrappers over the plain lists)."""
from __future__ import annotations

from PySide6.QtCore import QAbstractListModel, QByteArray, QModelIndex, Qt


class ListModel(QAbstractListModel):
    """Rows are objects; each role reads one attribute. `refresh()` after the list changed."""

    def __init__(self, rows: list, roles: tuple[str, ...], parent=None):
        super().__init__(parent)
        self.rows = rows
        self.role_names = {Qt.ItemDataRole.UserRole + 1 + i: name for i, name in enumerate(roles)}

    def rowCount(self, parent: QModelIndex = QModelIndex()) -> int:  # noqa: N802 (Qt's name)
        return 0 if parent.isValid() else len(self.rows)

    def data(self, index: QModelIndex, role: int = Qt.ItemDataRole.DisplayRole):
        if not index.isValid() or not 0 <= index.row() < len(self.rows):
            return None
        name = self.role_names.get(role, "text" if role == Qt.ItemDataRole.DisplayRole else None)
        return getattr(self.rows[index.row()], name, None) if name else None

    def roleNames(self) -> dict:  # noqa: N802
        return {role: QByteArray(name.encode()) for role, name in self.role_names.items()}

    def refresh(self) -> None:
        self.beginResetModel()
        self.endResetModel()

    def values(self, role: str) -> list:
        """What the view shows in `role`, row by row (for tests and copy)."""
        return [getattr(row, role) for row in self.rows]
