"""Editing buttons of the karyotype dock: each calls the `EditController` (which also has the Alt keys)."""

from __future__ import annotations

from qtpy.QtWidgets import QCheckBox, QGridLayout, QLabel, QPushButton, QVBoxLayout, QWidget

from napari_karyo._napari.karyotype.prompt_tool import HINT

BUTTONS = (  # (attribute, text, controller method, key hint)
    ("split_button", "Split", "split", "Alt+S: along the cut line, or across the object under the cursor"),
    ("join_button", "Join", "join", "Alt+J: the Alt+clicked objects"),
    ("delete_button", "Delete", "delete", "Alt+Delete: the selected or Alt+clicked objects"),
    ("swap_button", "Swap classes", "swap", "Alt+T: two Alt+clicked objects"),
    ("draw_button", "Draw new", "draw_new", "paint a new chromosome (brush or polygon) with a fresh id"),
    ("accept_button", "Accept cell", "accept", "Alt+A: sign this cell off"),
    ("undo_button", "Undo", "undo", "Alt+Z (or Ctrl+Z on the chromosome layer)"),
    ("redo_button", "Redo", "redo", "Alt+Shift+Z"),
)


class EditPanel(QWidget):
    def __init__(self) -> None:
        super().__init__()
        self.controller = None
        grid = QGridLayout()
        for k, (attr, text, method, tip) in enumerate(BUTTONS):
            button = QPushButton(text)
            button.setToolTip(tip)
            button.clicked.connect(lambda _=False, m=method: self._call(m))
            setattr(self, attr, button)
            grid.addWidget(button, k // 4, k % 4)
        self.prompts = None  # the PromptTool of the spread being edited
        self.prompt_box = QCheckBox("Prompt mode")
        self.prompt_box.setToolTip(HINT)
        self.prompt_box.toggled.connect(lambda on: self.prompts and self.prompts.set_enabled(on))
        grid.addWidget(self.prompt_box, len(BUTTONS) // 4, 0, 1, 4)
        self.status_label = QLabel("")
        self.message_label = QLabel("")
        self.message_label.setWordWrap(True)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addLayout(grid)
        layout.addWidget(self.status_label)
        layout.addWidget(self.message_label)
        self.setEnabled(False)

    def attach(self, controller, where: str, picked_class) -> None:
        """Drive `controller`; `where` says where corrections are autosaved (or that they are not);
        `picked_class()` is the class a new drawing gets (the class picker's)."""
        self.controller = controller
        self._where = where
        self._picked_class = picked_class
        controller.on_message = self.message_label.setText
        controller.on_change = self.refresh
        controller.on_close = self._detach
        self.setEnabled(True)
        self.refresh()

    def attach_prompts(self, tool) -> None:
        """Prompt mode (plain clicks and drags give masks) for the spread now edited; keeps the checkbox's state."""
        if self.prompts is not None:
            self.prompts.set_enabled(False)
        self.prompts = tool
        tool.set_enabled(self.prompt_box.isChecked())

    def _detach(self) -> None:
        """The controller stopped (its chromosome layer or the dock was closed): the buttons would edit nothing
        visible. Attaching the next spread's controller enables them again."""
        if self.prompts is not None:
            self.prompts.set_enabled(False)
            self.prompts = None
        self.controller = None
        self.setEnabled(False)
        self.status_label.setText("not editing: the chromosome layer was closed")
        self.message_label.setText("")

    def _call(self, method: str) -> None:
        if method == "draw_new":
            self.controller.draw_new(self._picked_class())
        else:
            getattr(self.controller, method)()

    def refresh(self) -> None:
        session = self.controller.session
        result = session.result
        self.undo_button.setEnabled(session.can_undo)
        self.redo_button.setEnabled(session.can_redo)
        self.status_label.setText(f"{result.status} · {result.corrections} corrections · {self._where}")
