"""The main job for an M-FISH cell: segment on DAPI, separate and name by the fluor planes' colour code.

`CellJob` resolves everything a user can get wrong (planes, kit, kit model) before any network loads, so a bad
input fails at once with a message naming the file. DAPI-only naming runs only when asked (`dapi_only=True`);
a kit without a model is an error that says how to get one, never a silent fallback.
"""

from __future__ import annotations

from collections.abc import Generator
from pathlib import Path

import numpy as np

from napari_karyo.core.karyotype.infer.predict import COLOUR_SEGMENTER, analyze_steps
from napari_karyo.core.karyotype.mfish.colour import ColourNamer
from napari_karyo.core.karyotype.mfish.kits import DAPI, KitError, plane_order, recognise_kit
from napari_karyo.core.karyotype.mfish.pixels import KitModel, load_kit_model, normalise_planes
from napari_karyo.core.results import SpreadResult
from napari_karyo.core.storage.atomic import write_with
from napari_karyo.core.storage.model_files import resolve
from napari_karyo.core.storage.multichannel import CellImage, cell_names

BUNDLED_KIT_MODELS = {"A": "mfish-kit-A", "P": "mfish-kit-P"}
# Beside the output contract's files: the per-pixel class (1-24, 0 = not computed).
CLASS_MAP = "colour_classes.tif"


def write_class_map(folder: str | Path, class_map: np.ndarray | None) -> list[Path]:
    import tifffile

    if class_map is None:
        return []
    path = Path(folder) / CLASS_MAP
    return [write_with(path, lambda tmp: tifffile.imwrite(tmp, class_map, compression="zlib"))]


def find_kit_model(cell: CellImage, kit: str | None = None, kit_model: str | None = None) -> KitModel:
    """The kit model for `cell`: `kit_model` (a file) or the bundled model of the recognised (or given) kit."""
    model = load_kit_model(resolve(kit_model_name(cell.names, str(cell.path), kit, kit_model)))
    if kit_model:  # the cell must hold every plane the model reads
        plane_order(cell.names, model.channels, str(cell.path))
    return model


def kit_model_name(names, source: str, kit: str | None = None, kit_model: str | None = None) -> str:
    """`kit_model` (a file), or the bundled model's name for the kit the channel `names` make (or `kit`); KitError
    saying what to do when that kit has none."""
    if kit_model:
        return kit_model
    kit = recognise_kit(names, source, kit)
    name = BUNDLED_KIT_MODELS.get(kit)
    if name is None or not resolve(name).exists():
        raise KitError(
            f"{source}: probe kit {kit} has no bundled model; train one from labelled cells of this kit "
            f"(napari-karyo train-kit ... --kit {kit}) and pass --kit-model FILE, or pass --dapi-only to name the "
            "chromosomes from DAPI alone"
        )
    return name


def cell_model_names(
    path: str | Path,
    model: str | None = None,
    classifier: str | None = None,
    kit: str | None = None,
    kit_model: str | None = None,
    dapi_only: bool = False,
) -> tuple[str | None, str | None]:
    """(segmenter, namer) that `CellJob` uses for the cell at `path` with these options (None: the default one),
    from its channel names alone (no pixels): what a batch resumes on (`predict.models_used`). KitError as
    `kit_model_name`."""
    if dapi_only:
        return model, classifier
    return model or COLOUR_SEGMENTER, kit_model_name(cell_names(path), str(path), kit, kit_model)


class CellJob:
    """One M-FISH cell: `steps()` yields progress and returns the SpreadResult; afterwards `namer` holds the
    per-pixel class map (None when DAPI-only)."""

    def __init__(
        self,
        cell: CellImage,
        kit: str | None = None,
        kit_model: str | None = None,
        dapi_only: bool = False,
        split: bool = True,
        fill: bool = True,
    ) -> None:
        self.cell = cell
        self.dapi = cell.planes[plane_order(cell.names, (DAPI,), str(cell.path))[0]]
        self.model = None if dapi_only else find_kit_model(cell, kit, kit_model)
        self.split, self.fill = split, fill
        self.namer: ColourNamer | None = None

    @property
    def naming(self) -> str:
        if self.model is None:
            return "DAPI only (as asked)"
        return f"colour, kit {self.model.kit} ({Path(self.model.path).name})"

    def steps(self, **kwargs) -> Generator[tuple[str, int, int], None, SpreadResult]:
        """`kwargs` go to `predict.analyze_steps` (model, classifier, cluster_model, device)."""
        kwargs.setdefault("source_path", str(self.cell.path))
        # the colour rules (split, fill, vote weights) were chosen on the detector's own outlines: moved onto the
        # edges, two objects of a kit A validation cell went unnamed (count right 6 -> 5 of 9 cells)
        kwargs.setdefault("edges", self.model is None)
        if self.model is not None:
            # ... and on that segmenter's outlines: the default one, trained further for G-band since, got kit A's
            # ISCN right in 5 of 9 validation cells instead of 6
            if not kwargs.get("model"):
                kwargs["model"] = COLOUR_SEGMENTER
            order = plane_order(self.cell.names, self.model.channels, str(self.cell.path))
            norm = normalise_planes(self.cell.planes[order])
            self.namer = ColourNamer(self.model, norm, split=self.split, fill=self.fill)
        result = yield from analyze_steps(self.dapi, colour=self.namer, **kwargs)
        if self.namer is not None:
            for ch in result.chromosomes:
                note = self.namer.notes.get(id(ch))
                if note:
                    ch.review = f"{note}; {ch.review}" if ch.review else note
            result.model += (
                f" | naming: {self.naming}; {self.namer.split_count} split and "
                f"{self.namer.added_count} added by colour"
            )
        else:
            result.model += f" | naming: {self.naming}"
        return result

    def class_map(self) -> np.ndarray | None:
        return None if self.namer is None else self.namer.class_map
