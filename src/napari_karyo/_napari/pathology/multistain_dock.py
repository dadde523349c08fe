"""Multi-stain dock widget: reference stain, Register (worker), blend / checkerboard, landmark fix, normalise.

Thin on purpose: the stack travels in its layers' metadata; Register runs the core generator
`register_stack_steps` in a thread_worker (progress bar, Cancel, device shown); the other buttons call one core
or `pathology_layers` function each and add or update layers. After registering, every stain gets a verdict
(good / check / failed, with the detail correlation and tissue overlap behind it: `registration.register.verdict`)
and the blend of the reference with the first stain to look at is shown. The normalisation method is shared with
the Lesion classifier dock (`normalisation_choice`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
from qtpy.QtWidgets import (
    QComboBox,
    QFormLayout,
    QGroupBox,
    QLabel,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from napari_karyo._napari.common.form import compact_combo, replace_items, row
from napari_karyo._napari.common.job import JobControls
from napari_karyo._napari.pathology import stack_layers as pl
from napari_karyo._napari.pathology.normalisation_choice import choose_normalisation, chosen_normalisation
from napari_karyo.core.device import DEVICE_CHOICES
from napari_karyo.core.errors import KaryoError
from napari_karyo.core.pathology.reference_frame import refit_from_landmarks
from napari_karyo.core.pathology.registration.register import register_stack_steps, verdict
from napari_karyo.core.pathology.stack import save_stack_transforms
from napari_karyo.core.pathology.stain import REFERENCES

if TYPE_CHECKING:
    import napari

STAGE_CHOICES = {"coarse + mid + fine": ("coarse", "mid", "fine"), "coarse only (fast)": ("coarse",)}


def _register(stack, stages, device):
    """Generator run in the worker: read every stain at one working scale, then register onto the reference."""

    yield "reading stains", 0, 1
    images, factor = stack.images_for_registration()
    return (
        yield from register_stack_steps(images, stack.reference, stages=stages, scale=factor, device=device)
    )


class MultiStainWidget(QWidget):
    def __init__(self, napari_viewer: napari.viewer.Viewer) -> None:
        super().__init__()
        self.viewer = napari_viewer
        self.last_results: dict | None = None

        self.stack_combo = compact_combo()
        self.reference_combo = QComboBox()
        self.stack_combo.currentIndexChanged.connect(self._fill_stains)
        self.reference_combo.activated.connect(self._set_reference)

        self.stages_combo = QComboBox()
        self.stages_combo.addItems(list(STAGE_CHOICES))
        self.device_combo = QComboBox()
        self.device_combo.addItems(DEVICE_CHOICES)
        self.job = JobControls("Register")
        self.job.run_button.clicked.connect(lambda: self.register())
        self.save_button = QPushButton("Save transforms")
        self.save_button.clicked.connect(self.save_transforms)
        self.job.buttons.addWidget(self.save_button)
        self.status_label = QLabel("")
        self.status_label.setWordWrap(True)
        self.verdicts: dict = {}  # stain -> Verdict of the last registration

        self.pair_combo = QComboBox()
        self.blend_button = QPushButton("Blend")
        self.checker_button = QPushButton("Checkerboard")
        self.landmarks_button = QPushButton("Add landmarks")
        self.refit_button = QPushButton("Fit from landmarks")
        self.blend_button.clicked.connect(self.blend)
        self.checker_button.clicked.connect(self.show_checkerboard)
        self.landmarks_button.clicked.connect(self.add_landmarks)
        self.refit_button.clicked.connect(self.refit)

        self.method_combo = QComboBox()
        self.method_combo.addItems(["macenko", "vahadane"])
        self.follow_normalisation(chosen_normalisation())
        self.method_combo.currentTextChanged.connect(lambda method: choose_normalisation(self.viewer, method))
        self.target_combo = QComboBox()
        self.normalise_button = QPushButton("Normalise stain")
        self.channels_button = QPushButton("OD / stain channels")
        self.normalise_button.clicked.connect(self.normalise)
        self.channels_button.clicked.connect(self.stain_channels)

        form = QFormLayout()
        form.addRow("stack", self.stack_combo)
        form.addRow("reference stain", self.reference_combo)
        form.addRow("stages", self.stages_combo)
        form.addRow("device", self.device_combo)
        pair_box = QGroupBox("check and fix one stain")
        pair = QFormLayout(pair_box)
        pair.addRow("stain", self.pair_combo)
        pair.addRow(row(self.blend_button, self.checker_button))
        pair.addRow(row(self.landmarks_button, self.refit_button))
        norm_box = QGroupBox("stain normalisation (the stain above)")
        norm = QFormLayout(norm_box)
        norm.addRow("method", self.method_combo)
        norm.addRow("target", self.target_combo)
        norm.addRow(row(self.normalise_button, self.channels_button))
        layout = QVBoxLayout(self)
        layout.addLayout(form)
        layout.addWidget(self.job)
        layout.addWidget(self.status_label)
        layout.addWidget(pair_box)
        layout.addWidget(norm_box)
        layout.addStretch(1)

        self.viewer.layers.events.inserted.connect(self._refresh)
        self.viewer.layers.events.removed.connect(self._refresh)
        self._refresh()

    # ---- inputs -------------------------------------------------------------------------------------------

    def stacks(self) -> list:
        seen, out = set(), []
        for layer in self.viewer.layers:
            stack = layer.metadata.get(pl.STACK_KEY)
            if stack is not None and id(stack) not in seen:
                seen.add(id(stack))
                out.append(stack)
        return out

    @property
    def stack(self):
        stacks = self.stacks()
        k = self.stack_combo.currentIndex()
        return stacks[k] if 0 <= k < len(stacks) else None

    def _refresh(self, *_) -> None:
        try:
            labels = [
                f"{k + 1}: {s.path.name if s.path else 'stack'} ({', '.join(s.names)})"
                for k, s in enumerate(self.stacks())
            ]
            replace_items(self.stack_combo, labels)
            self._fill_stains()
        except RuntimeError:  # the dock was closed and Qt deleted the widgets: stop listening
            self.viewer.layers.events.inserted.disconnect(self._refresh)
            self.viewer.layers.events.removed.disconnect(self._refresh)

    def _fill_stains(self, *_) -> None:

        stack = self.stack
        names = stack.names if stack else []
        for combo, items in ((self.reference_combo, names), (self.pair_combo, names)):
            current = combo.currentText()
            combo.blockSignals(True)
            combo.clear()
            combo.addItems(items)
            if current in items:
                combo.setCurrentText(current)
            combo.blockSignals(False)
        if stack:
            self.reference_combo.setCurrentText(stack.reference)
            if self.pair_combo.currentText() == stack.reference and len(names) > 1:
                self.pair_combo.setCurrentText(next(n for n in names if n != stack.reference))
        targets = [*REFERENCES, *(f"fit to: {n}" for n in names)]
        current = self.target_combo.currentText()
        self.target_combo.clear()
        self.target_combo.addItems(targets)
        if current in targets:
            self.target_combo.setCurrentText(current)

    def _set_reference(self, *_) -> None:
        stack = self.stack
        if stack is not None:
            stack.set_reference(self.reference_combo.currentText())
            self._show(stack)
            self.status_label.setText(
                f"reference: {stack.reference}; register again to map the others onto it"
            )

    def _need_stack(self):
        from napari.utils.notifications import show_error

        if self.stack is None:
            show_error(
                "Open a multi-stain stack first (a folder of stain images, an OME-TIFF or an SVS; or "
                "File > Open Sample > napari-karyo > Multi-stain IHC sections)."
            )
        return self.stack

    # ---- register -----------------------------------------------------------------------------------------

    def register(self, stages: tuple[str, ...] | None = None) -> None:
        stack = self._need_stack()
        if stack is None or self.job.running:
            return
        stages = stages or STAGE_CHOICES[self.stages_combo.currentText()]
        device = self.device_combo.currentText()
        self._running_stack = stack
        # the core registers at <= 512 px working size, where the CPU beats a GPU round trip
        self.job.start(
            _register,
            stack,
            stages,
            None if device == "auto" else device,
            on_done=self._on_returned,
            device_text="cpu (registration works at <= 512 px)",
        )

    def _on_returned(self, outcome) -> None:
        from napari.utils.notifications import show_error

        stack = self._running_stack
        self.last_results = outcome
        self.verdicts = {n: verdict(r) for n, r in outcome.items() if n != stack.reference}
        for name, res in outcome.items():
            if name != stack.reference and res.ok:
                stack.transforms[name] = res.transform
        self._show(stack)
        failed = [n for n, v in self.verdicts.items() if v.word == "failed"]
        self.job.done("done" if not failed else f"done; {len(failed)} failed")
        self.status_label.setText(
            "\n".join(f"{n}: {v} ({outcome[n].seconds:.1f} s)" for n, v in self.verdicts.items())
        )
        worst = sorted(self.verdicts, key=lambda n: ("failed", "check", "good").index(self.verdicts[n].word))
        if worst and stack is self.stack:  # the stain most worth a look, blended over the reference
            self.pair_combo.setCurrentText(worst[0])
            self.blend()
        if failed:
            show_error(f"Could not register {', '.join(failed)}: use 'Add landmarks' to fix by hand.")

    def _show(self, stack) -> None:
        for data, kwargs, kind in pl.apply_transforms(self.viewer.layers, stack):
            getattr(self.viewer, f"add_{kind}")(data, **kwargs)

    def save_transforms(self) -> None:
        from napari.utils.notifications import show_error, show_info

        stack = self._need_stack()
        if stack is None:
            return
        try:
            path = save_stack_transforms(stack)
        except KaryoError as exc:
            show_error(str(exc))
            return
        show_info(f"transforms saved to {path}")

    # ---- check and fix one pair ---------------------------------------------------------------------------

    def _pair(self):
        stack = self._need_stack()
        return (stack, self.pair_combo.currentText()) if stack is not None else (None, "")

    def blend(self) -> None:
        """Reference opaque underneath, the chosen stain at half opacity on top; others hidden."""
        stack, name = self._pair()
        if stack is None:
            return
        for layer in self.viewer.layers:
            stain = layer.metadata.get(pl.STAIN_KEY)
            if layer.metadata.get(pl.STACK_KEY) is not stack or layer._type_string != "image":
                continue
            shown = stain == stack.reference or (
                stain == name and (layer.metadata.get("resampled") or stack.transform(name).is_rigid_only())
            )
            layer.visible = bool(shown)
            if stain == name:
                layer.opacity = 0.5
        top = [ly for ly in self.viewer.layers if ly.metadata.get(pl.STAIN_KEY) == name and ly.visible]
        for layer in top:
            self.viewer.layers.move(self.viewer.layers.index(layer), len(self.viewer.layers))

    def show_checkerboard(self) -> None:
        stack, name = self._pair()
        if stack is None:
            return
        data, kwargs, _ = pl.checkerboard(stack, stack.reference, name)
        if kwargs["name"] in self.viewer.layers:
            self.viewer.layers[kwargs["name"]].data = data
        else:
            self.viewer.add_image(data, **kwargs)

    def add_landmarks(self) -> None:
        stack, name = self._pair()
        if stack is None or name == stack.reference:
            return
        for layer in self.viewer.layers:  # click on the raw stain, placed by the affine part of its transform
            if layer.metadata.get(pl.STAIN_KEY) == name and layer._type_string == "image":
                layer.visible = not layer.metadata.get("resampled")
        added = []
        for data, kwargs, kind in pl.landmark_layer_data(stack, name):
            if kwargs["name"] not in self.viewer.layers:
                added.append(getattr(self.viewer, f"add_{kind}")(data, **kwargs))
        if added:
            self.viewer.layers.selection.active = added[0]
        self.status_label.setText(
            f"Click the same features, in the same order, in '{stack.reference} landmarks for {name}' (over "
            f"{stack.reference}) and in '{name} landmarks' (over {name}); at least 3 pairs, then Fit."
        )

    def refit(self) -> None:
        from napari.utils.notifications import show_error

        stack, name = self._pair()
        if stack is None:
            return
        fixed = f"{stack.reference} landmarks for {name}"
        moving = f"{name} landmarks"
        if fixed not in self.viewer.layers or moving not in self.viewer.layers:
            show_error(f"Press 'Add landmarks' for {name} first and place pairs in both Points layers.")
            return
        try:
            t = refit_from_landmarks(
                stack, name, self.viewer.layers[fixed].data, self.viewer.layers[moving].data
            )
        except KaryoError as exc:
            show_error(str(exc))
            return
        self._show(stack)
        kind = "affine" if len(self.viewer.layers[fixed].data) >= 3 else "rigid"
        self.status_label.setText(
            f"{name}: {kind} transform fitted to {len(self.viewer.layers[fixed].data)} "
            f"landmark pairs; shift {np.round(t.affine[:2, 2], 1).tolist()} px"
        )

    # ---- stain normalisation --------------------------------------------------------------------------------

    def follow_normalisation(self, method: str) -> None:
        """The method chosen here or in the Lesion classifier dock ("none" leaves this one as it is)."""
        if method in [self.method_combo.itemText(i) for i in range(self.method_combo.count())]:
            self.method_combo.blockSignals(True)
            self.method_combo.setCurrentText(method)
            self.method_combo.blockSignals(False)

    def normalise(self) -> None:
        self._derive(
            lambda stack, name, method: [pl.normalised_layer_data(stack, name, method, self._target(stack))]
        )

    def stain_channels(self) -> None:
        self._derive(pl.stain_channel_layer_data)

    def _target(self, stack):
        text = self.target_combo.currentText()
        if text.startswith("fit to: "):
            return pl.fitted_reference(stack, text.removeprefix("fit to: "), self.method_combo.currentText())
        return text

    def _derive(self, make) -> None:
        from napari.utils.notifications import show_error

        stack, name = self._pair()
        if stack is None:
            return
        try:
            layers = make(stack, name, self.method_combo.currentText())
        except KaryoError as exc:
            show_error(str(exc))
            return
        for data, kwargs, kind in layers:
            if kwargs["name"] in self.viewer.layers:
                self.viewer.layers.remove(kwargs["name"])
            getattr(self.viewer, f"add_{kind}")(data, **kwargs)
