"""Editing buttons of the karyotype dock: each calls the `EditController` (which also has the Alt keys)."""

from __future__ import annotations

from pathlib import Path

from qtpy.QtWidgets import (
    QCheckBox,
    QFileDialog,
    QGridLayout,
    QGroupBox,
    QLabel,
    QPushButton,
    QVBoxLayout,
)

from napari_karyo._napari.common.form import WrappedLabel, compact_combo
from napari_karyo._napari.karyotype.pick_tool import HINT as PICK_HINT
from napari_karyo._napari.karyotype.pick_tool import PickTool
from napari_karyo._napari.karyotype.prompt_tool import HINT
from napari_karyo.core.storage.project_files import projects_root
from napari_karyo.core.storage.settings import change_setting, setting

BUTTONS = (  # (attribute, text, controller method, key hint)
    ("split_button", "Split", "split", "Alt+S: along the cut line, or across the object under the cursor"),
    ("join_button", "Join", "join", "Alt+J: the picked objects (Alt+click, or click in Pick mode)"),
    ("delete_button", "Delete", "delete", "Alt+Delete: the selected or picked objects"),
    ("swap_button", "Swap classes", "swap", "Alt+T: two picked objects"),
    ("draw_button", "Draw new", "draw_new", "paint a new chromosome (brush or polygon) with a fresh id"),
    ("accept_button", "Accept cell", "accept", "Alt+A: sign this cell off"),
    ("undo_button", "Undo", "undo", "Alt+Z (or Ctrl+Z on the chromosome layer)"),
    ("redo_button", "Redo", "redo", "Alt+Shift+Z"),
)

NOT_EDITING = "Run (or reopen) a spread first: the tools edit its chromosome layer"
BUNDLED_PROMPTS = "bundled model"
CHOOSE_SAM = "SAM checkpoint…"
SEPARATE = "Separate crossing"


class EditPanel(QGroupBox):
    """The "Correct" group: buttons named with their keys, a tooltip on each saying what it acts on."""

    def __init__(self) -> None:
        super().__init__("Correct")
        self.controller = None
        grid = QGridLayout()
        for k, (attr, text, method, tip) in enumerate(BUTTONS):
            key = tip.split()[0].rstrip(":") if tip.startswith("Alt") else ""
            button = QPushButton(f"{text}  {key}".strip())
            button.setToolTip(tip)
            button.clicked.connect(lambda _=False, m=method: self._call(m))
            setattr(self, attr, button)
            grid.addWidget(button, k // 2, k % 2)
        self.prompts = None  # the PromptTool of the spread being edited
        self.picks = None  # its PickTool
        self.pick_box = QCheckBox("Pick mode")
        self.pick_box.setToolTip(f"{PICK_HINT} (no Alt+click needed)")
        self.pick_box.toggled.connect(self._pick_toggled)
        grid.addWidget(self.pick_box, (len(BUTTONS) + 1) // 2, 0)
        self.prompt_box = QCheckBox("Prompt mode")
        self.prompt_box.setToolTip(HINT)
        self.prompt_box.toggled.connect(self._prompt_toggled)
        grid.addWidget(self.prompt_box, (len(BUTTONS) + 3) // 2, 0)
        self.backend_box = compact_combo(8)  # which model answers the prompts
        self.backend_box.setToolTip(
            "Which model answers the prompts: the bundled Mask R-CNN, or a segment-anything / micro-sam "
            "checkpoint (.pt/.pth) you have on disk"
        )
        self._fill_backends()
        self.backend_box.activated.connect(self._backend_chosen)
        grid.addWidget(self.backend_box, (len(BUTTONS) + 3) // 2, 1)
        self.separate_button = QPushButton(SEPARATE)
        self.separate_button.setToolTip(
            "Press, click each chromosome of a crossing or touching group once (Prompt mode), press Finish "
            "separating: one mask each, sharing the crossing's pixels"
        )
        self.separate_button.clicked.connect(self._separate)
        grid.addWidget(self.separate_button, (len(BUTTONS) + 5) // 2, 0)
        self.status_label = WrappedLabel("", lines=2)
        self.beside_box = QCheckBox("keep projects beside the images")
        self.beside_box.setChecked(setting("projects_beside_images"))
        self.beside_box.setToolTip(
            "Off (default): corrections are autosaved in your projects folder "
            f"({projects_root()}). On: in a '<image>.karyo' folder beside each image (for the next image run)."
        )
        self.beside_box.toggled.connect(lambda on: change_setting("projects_beside_images", on))
        self.message_label = QLabel("")
        self.message_label.setWordWrap(True)
        layout = QVBoxLayout(self)
        layout.addLayout(grid)
        layout.addWidget(self.status_label)
        layout.addWidget(self.beside_box)
        layout.addWidget(self.message_label)
        self.setEnabled(False)
        self.setToolTip(NOT_EDITING)

    def attach(self, controller, folder: Path | None, picked_class) -> None:
        """Drive `controller`; `folder` is where corrections are autosaved (None: they are not);
        `picked_class()` is the class a new drawing gets (the class picker's)."""
        self.controller = controller
        self._where = (
            f"autosaved in {short_path(folder)}" if folder else "not autosaved (the image has no file)"
        )
        self.status_label.setToolTip(f"autosaved in {folder}" if folder else "")
        self._picked_class = picked_class
        controller.on_message = self.message_label.setText
        controller.on_change = self.refresh
        controller.on_close = self._detach
        if self.picks is not None:
            self.picks.set_enabled(False)
        self.picks = PickTool(controller)
        self.picks.set_enabled(self.pick_box.isChecked())
        self.setEnabled(True)
        self.setToolTip("")
        self.refresh()

    def attach_prompts(self, tool) -> None:
        """Prompt mode (plain clicks and drags give masks) for the spread now edited; keeps the checkbox's state."""
        if self.prompts is not None:
            self.prompts.set_enabled(False)
        self.prompts = tool
        tool.set_enabled(self.prompt_box.isChecked())

    def _pick_toggled(self, on: bool) -> None:
        if on:
            self.prompt_box.setChecked(False)  # a plain click either picks or prompts
        if self.picks is not None:
            self.picks.set_enabled(on)

    def _prompt_toggled(self, on: bool) -> None:
        if on:
            self.pick_box.setChecked(False)
        if self.prompts is not None:
            self.prompts.set_enabled(on)
        self._show_marking()

    def _separate(self) -> None:
        if self.prompts is None:
            self.message_label.setText("separating needs prompts, which need the spread's image layer")
            return
        if not self.prompt_box.isChecked():
            self.prompt_box.setChecked(True)  # the clicks that mark the chromosomes are prompt mode's
        self.prompts.separate()
        self._show_marking()

    def _show_marking(self) -> None:
        """The Separate button says what its next press does."""
        marking = self.prompts is not None and self.prompts.marking
        self.separate_button.setText("Finish separating" if marking else SEPARATE)

    def _fill_backends(self) -> None:
        sam = setting("sam_checkpoint")
        self.backend_box.clear()
        self.backend_box.addItems([BUNDLED_PROMPTS, *([Path(sam).name] if sam else []), CHOOSE_SAM])
        self.backend_box.setCurrentIndex(1 if sam else 0)

    def _backend_chosen(self, index: int) -> None:
        text = self.backend_box.itemText(index)
        if text == CHOOSE_SAM:
            path, _ = QFileDialog.getOpenFileName(
                self, "SAM or micro-sam checkpoint", "", "checkpoints (*.pt *.pth);;all files (*)"
            )
            if not path:  # cancelled: keep what was chosen before
                self._fill_backends()
                return
            self.use_sam_checkpoint(path)
        elif text == BUNDLED_PROMPTS:
            self.use_sam_checkpoint("")

    def use_sam_checkpoint(self, path: str) -> None:
        """Prompts from this SAM checkpoint ("" = the bundled model), now and in later sessions."""
        change_setting("sam_checkpoint", str(path))
        self._fill_backends()
        if self.prompts is not None:
            self.prompts.restart()

    def _detach(self) -> None:
        """The controller stopped (its chromosome layer or the dock was closed): the buttons would edit nothing
        visible. Attaching the next spread's controller enables them again."""
        for tool in (self.prompts, self.picks):
            if tool is not None:
                tool.set_enabled(False)
        self.prompts = self.picks = None
        self._show_marking()
        self.controller = None
        self.setEnabled(False)
        self.setToolTip(NOT_EDITING)
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
        self.undo_button.setToolTip(BUTTONS[-2][3] if session.can_undo else "nothing to undo yet")
        self.redo_button.setToolTip(BUTTONS[-1][3] if session.can_redo else "nothing undone to redo")
        self.status_label.setText(f"{result.status} · {result.corrections} corrections · {self._where}")


def short_path(path: Path, keep: int = 36) -> str:
    """A folder shortened for the dock: ~ for home, the middle elided; the full path goes in a tooltip."""
    text = str(path)
    home = str(Path.home())
    if text.startswith(home + "/"):
        text = "~" + text[len(home) :]
    return text if len(text) <= keep else f"{text[: keep // 3]}…{text[-(2 * keep) // 3 :]}"
