"""What a prompted mask does to the working copy: the objects it covers go, the new masks take their place.

A prompt (box, click, refining or separating clicks; see infer/prompt.py) gives one or more masks. Objects lying
mostly inside them (`REPLACED_SHARE` of their own area: fragments, an old outline of the same chromosome, the pair
the clicks separate) are replaced. `PromptEdits` is EditSession's prompt action (mixed into it; it uses the session's checks and commit).
The largest new mask takes the place and the class of the largest replaced object
(as a join keeps the largest part's); further masks come last and unnamed (as split pieces do). With nothing replaced,
or with an explicit class, every new object gets that class. New objects carry `source = "user-prompt"`.
"""

from __future__ import annotations

import numpy as np

from napari_karyo.core.errors import KaryoError
from napari_karyo.core.karyotype.edit import edited_chromosomes as edited
from napari_karyo.core.karyotype.edit.mask_edits import decode_mask, encode_mask
from napari_karyo.core.results import Chromosome

REPLACED_SHARE = 0.5
SOURCE = "user-prompt"

Crop = tuple[np.ndarray, tuple[int, int]]


def covered_ids(
    chromosomes: list[Chromosome], masks: list[np.ndarray], share: float = REPLACED_SHARE
) -> list[int]:
    """Ids (index + 1) of the objects with at least `share` of their pixels inside the union of full-image masks."""
    union = np.logical_or.reduce([np.asarray(m, bool) for m in masks])
    out = []
    for k, ch in enumerate(chromosomes):
        r0, c0, r1, c1 = ch.bbox
        inside = np.logical_and(ch.mask, union[r0:r1, c0:c1]).sum()
        if ch.area and inside >= share * ch.area:
            out.append(k + 1)
    return out


def prompted(
    chromosomes: list[Chromosome], crops: list[Crop], replaced: list[int], class_id: int | None
) -> tuple[list[Chromosome], list[int]]:
    """The new object list and the ids of the prompted objects; `replaced` are 0-based indices, sorted."""
    if not crops:
        raise KaryoError("the prompt gave no mask; click on a chromosome or drag a box around it")
    order = sorted(range(len(crops)), key=lambda k: -int(crops[k][0].sum()))
    donor = max((chromosomes[k] for k in replaced), key=lambda c: c.area, default=None)  # ties: the lowest id
    made = []
    for rank, k in enumerate(order):
        mask, offset = crops[k]
        ch = Chromosome(mask=mask, offset=offset, source=SOURCE, edited=True)
        if class_id is not None:
            ch.class_id, ch.class_score = class_id, 1.0 if class_id else 0.0
        elif rank == 0 and donor is not None:
            ch.class_id, ch.class_score = donor.class_id, donor.class_score
            ch.probs = None if donor.probs is None else np.array(donor.probs, copy=True)
        made.append(ch)
    kept = [c for k, c in enumerate(chromosomes) if k not in replaced[1:]]
    if replaced:
        at = replaced[0]  # the removed ones are all above it: its index does not shift
        kept[at] = made[0]
        ids = [at + 1]
    else:
        kept.append(made[0])
        ids = [len(kept)]
    for ch in made[1:]:
        kept.append(ch)
        ids.append(len(kept))
    return kept, ids


class PromptEdits:
    """The prompt action of `EditSession` (session.py), kept here to keep that module small."""

    def prompt(
        self,
        masks: list[np.ndarray],
        replaces: list[int] | None = None,
        class_id: int | None = None,
        prompt: dict | None = None,
    ) -> list[int]:
        """Objects from a prompt's full-image masks (infer/prompt.py): they replace `replaces` (default: the
        objects lying mostly inside them). `prompt` records the gesture. Returns the ids of the new objects."""
        crops = [self._crop(m, "prompt") for m in masks]
        if not crops or any(c is None for c, _ in crops):
            raise KaryoError("a prompted mask is empty; click on a chromosome or drag a box around it")
        if replaces is None:
            replaces = covered_ids(self.result.chromosomes, masks)
        idx = self._indices(replaces, at_least=0, what="replace")
        cid = None if class_id is None else edited.class_number(class_id)
        return self._prompt(crops, idx, cid, dict(prompt or {}))

    def _prompt(self, crops: list[Crop], idx: list[int], class_id: int | None, gesture: dict) -> list[int]:
        new, ids = prompted(self.result.chromosomes, crops, idx, class_id)
        args = {
            "masks": [encode_mask(c, o) for c, o in crops],
            "replaces": [k + 1 for k in idx],
            "class_id": class_id,
            "prompt": gesture,
        }
        self._commit("prompt", new, args)
        return ids

    def _apply_prompt(self, name: str, args: dict) -> None:
        """Replay a journalled prompt (its masks, so the model need not be there); any other name is unknown."""
        if name != "prompt":
            raise KaryoError(f"unknown action {name!r}")
        cid = None if args["class_id"] is None else edited.class_number(args["class_id"])
        idx = self._indices(args["replaces"], at_least=0, what="replace")
        self._prompt([decode_mask(m) for m in args["masks"]], idx, cid, dict(args.get("prompt") or {}))
