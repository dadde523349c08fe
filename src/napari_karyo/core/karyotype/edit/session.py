"""Correcting a proposal by hand: split, join, delete, draw, redraw, paint, prompt, relabel, swap, move a
centromere and accept, with undo/redo and a journal that replays exactly.

Label id of a chromosome = its index in `result.chromosomes` + 1. Undo snapshots copy the Chromosome objects
(bounding-box crops), never full images, so an action plus its undo stays cheap on a 46-object spread. Every action
validates before it changes anything; a failed action changes nothing and writes no journal entry. Split entries
carry the pieces they made, so a replay reproduces them even if the cutting rules change in a later version.
Masks of crossing chromosomes overlap: every action works on the objects it names and never touches another.
"""

from __future__ import annotations

import operator
from collections.abc import Callable, Iterable, Sequence

import numpy as np

from napari_karyo.core.errors import KaryoError
from napari_karyo.core.karyotype.edit import edited_chromosomes as edited
from napari_karyo.core.karyotype.edit.mask_edits import decode_mask, encode_mask
from napari_karyo.core.karyotype.edit.prompt_edits import PromptEdits
from napari_karyo.core.karyotype.infer.cuts import (
    MIN_PIECE,
    Pieces,
    chords,
    cut_pieces,
    rasterise,
    shift,
    tight,
)
from napari_karyo.core.karyotype.infer.measure import SpreadMeasurer
from napari_karyo.core.results import Chromosome, SpreadResult

Journal = Callable[[dict], None]
_State = tuple[list[Chromosome], str, int]  # chromosome copies, status, corrections


class ReplayError(KaryoError):
    """A journal entry that cannot be replayed; `index` is its 0-based position among the entries."""

    def __init__(self, index: int, reason: str) -> None:
        super().__init__(f"journal entry {index + 1}: {reason}")
        self.index = index
        self.reason = reason


class EditSession(PromptEdits):
    """The working copy of one spread's result and the edits a person made to it."""

    def __init__(
        self, proposal: SpreadResult, journal: Journal | None = None, measurer: SpreadMeasurer | None = None
    ) -> None:
        self.proposal = edited.copy_result(proposal)  # the model's output, never changed
        self.result = edited.copy_result(proposal)  # the working copy every action edits
        self._journal = journal
        self._undo: list[tuple[str, _State]] = []
        self._redo: list[tuple[str, _State]] = []
        # With a measurer, every state (after an action, undo or redo) is measured: new masks get an axis,
        # length and centromere, and relative lengths follow the classes, all under undo with the rest.
        self._measurer = measurer
        self._measure()

    # ---- actions -------------------------------------------------------------------------------------------
    def split(self, label_id: int, line: np.ndarray) -> list[int]:
        """Cut an object along a polyline (N, 2) of (row, col) image points drawn across it. The largest piece
        keeps the id and class; the others are appended unnamed. Returns the ids of all pieces."""
        i = self._index(label_id)
        pts = edited.points(line, "line", min_points=2)
        ch = self.result.chromosomes[i]
        pieces = cut_pieces(ch.mask, rasterise(pts - ch.offset, ch.mask.shape))
        if not pieces:
            raise KaryoError(f"the line does not cut chromosome {i + 1} in two; draw it across the object")
        return self._apply_split(
            "split", i, shift(pieces, ch.offset), {"label_id": i + 1, "line": pts.tolist()}
        )

    def split_at(self, label_id: int, point: tuple[float, float]) -> list[int]:
        """Cut an object along its shortest chord through (within cuts.CHORD_RADIUS px of) a clicked point."""
        i = self._index(label_id)
        p = edited.points([point], "point", min_points=1)[0]
        ch = self.result.chromosomes[i]
        for chord in chords(ch.mask, p - ch.offset):
            pieces = cut_pieces(ch.mask, rasterise(chord, ch.mask.shape))
            if pieces:
                args = {"label_id": i + 1, "point": p.tolist()}
                return self._apply_split("split_at", i, shift(pieces, ch.offset), args)
        raise KaryoError(
            f"no cut through ({p[0]:.0f}, {p[1]:.0f}) divides chromosome {i + 1} into two pieces of at least "
            f"{MIN_PIECE} px; click on the chromosome at its narrowest place, or draw a line across it"
        )

    def join(self, label_ids: Sequence[int]) -> int:
        """Unite objects into the lowest id with the class of the largest part; returns the joined id."""
        idx = self._indices(label_ids, at_least=2, what="join")
        chs = self.result.chromosomes
        parts = [chs[k] for k in idx]
        r0, c0 = min(p.bbox[0] for p in parts), min(p.bbox[1] for p in parts)
        union = np.zeros((max(p.bbox[2] for p in parts) - r0, max(p.bbox[3] for p in parts) - c0), bool)
        for p in parts:
            union[p.offset[0] - r0 : p.bbox[2] - r0, p.offset[1] - c0 : p.bbox[3] - c0] |= p.mask
        largest = max(parts, key=lambda p: p.area)  # ties: the lowest id
        joined = edited.reshaped(parts[0], *tight(union, (r0, c0)))
        edited.take_class(joined, largest)
        new = [c for k, c in enumerate(chs) if k not in idx[1:]]
        new[idx[0]] = joined  # the removed ids are all above it: its index does not shift
        self._commit("join", new, {"label_ids": [k + 1 for k in idx]})
        return idx[0] + 1

    def delete(self, label_ids: Sequence[int]) -> None:
        idx = set(self._indices(label_ids, at_least=1, what="delete"))
        new = [c for k, c in enumerate(self.result.chromosomes) if k not in idx]
        self._commit("delete", new, {"label_ids": sorted(k + 1 for k in idx)})

    def draw(self, mask: np.ndarray, class_id: int = 0) -> int:
        """Add a person's object from a full-image mask; returns its id (the new last one)."""
        crop, offset = self._crop(mask, "draw")
        if crop is None:
            raise KaryoError("the drawn mask is empty; paint the chromosome before adding it")
        return self._draw(crop, offset, edited.class_number(class_id))

    def redraw(self, label_id: int, mask: np.ndarray) -> None:
        """Replace an object's mask with a full-image mask; an empty mask deletes the object."""
        i = self._index(label_id)
        crop, offset = self._crop(mask, "redraw")
        self._redraw(i, crop, offset)

    def paint(self, masks: dict[int, np.ndarray], class_id: int = 0) -> list[int]:
        """One brush, fill, polygon or eraser stroke as one action, from full-image masks by id: an existing id
        gets its new mask (empty: the object goes), an id above the last is a new object of `class_id` (in id
        order; empty ones are ignored). Returns the ids of the new objects."""
        existing = {
            self._index(k): self._crop(m, "paint") for k, m in masks.items() if k <= self.result.count
        }
        added = [self._crop(masks[k], "paint") for k in sorted(masks) if k > self.result.count]
        return self._paint(existing, [a for a in added if a[0] is not None], edited.class_number(class_id))

    def relabel(self, label_ids: Sequence[int], class_id: int) -> None:
        """Name objects (class 1-24; 0 = unnamed)."""
        idx = self._indices(label_ids, at_least=1, what="relabel")
        cid = edited.class_number(class_id)
        new = list(self.result.chromosomes)
        for k in idx:
            new[k] = edited.touched(new[k])
            edited.give_name(new[k], cid)
        self._commit("relabel", new, {"label_ids": [k + 1 for k in idx], "class_id": cid})

    def swap(self, a: int, b: int) -> None:
        """Exchange the classes of two objects."""
        i, j = self._index(a), self._index(b)
        if i == j:
            raise KaryoError(f"swap needs two different chromosomes, got {i + 1} twice; select a second one")
        new = list(self.result.chromosomes)
        x, y = edited.touched(new[i]), edited.touched(new[j])
        cx, cy = x.class_id, y.class_id
        edited.give_name(x, cy)
        edited.give_name(y, cx)
        new[i], new[j] = x, y
        self._commit("swap", new, {"a": i + 1, "b": j + 1})

    def move_centromere(self, label_id: int, row: float, col: float, centromeric_index: float) -> None:
        """Place an object's centromere by hand (the measurement recomputes the index from it)."""
        i = self._index(label_id)
        values = edited.points([[row, col]], "centromere", min_points=1)[0]
        if not 0 <= float(centromeric_index) <= 100:
            raise KaryoError(f"centromeric index {centromeric_index} is outside 0-100")
        new = list(self.result.chromosomes)
        new[i] = edited.touched(new[i])
        new[i].centromere_row, new[i].centromere_col = (float(v) for v in values)
        new[i].centromeric_index = float(centromeric_index)
        args = {
            "label_id": i + 1,
            "row": float(values[0]),
            "col": float(values[1]),
            "centromeric_index": float(centromeric_index),
        }
        self._commit("move_centromere", new, args)

    def accept(self) -> None:
        """Sign the result off (status "accepted"); not a correction, but undoable."""
        self._commit("accept", list(self.result.chromosomes), {}, correction=False)

    # ---- undo / redo ---------------------------------------------------------------------------------------
    @property
    def can_undo(self) -> bool:
        return bool(self._undo)

    @property
    def can_redo(self) -> bool:
        return bool(self._redo)

    @property
    def history_names(self) -> list[str]:
        """Names of the actions on the undo stack, oldest first."""
        return [name for name, _ in self._undo]

    def undo(self) -> bool:
        return self._step(self._undo, self._redo, "undo")

    def redo(self) -> bool:
        return self._step(self._redo, self._undo, "redo")

    def _step(self, source: list, target: list, action: str) -> bool:
        if not source:
            return False
        name, state = source.pop()
        current = self._snapshot()
        self._restore(state)
        target.append((name, current))
        try:
            self._emit({"action": action})
        except BaseException:
            target.pop()
            self._restore(current)
            source.append((name, state))
            raise
        return True

    # ---- replay --------------------------------------------------------------------------------------------
    @classmethod
    def replay(
        cls,
        proposal: SpreadResult,
        entries: Iterable[dict],
        journal: Journal | None = None,
        measurer: SpreadMeasurer | None = None,
    ) -> EditSession:
        """Rebuild a session, undo and redo stacks included, from its journal entries (extra keys ignored)."""
        session = cls(proposal)
        for n, entry in enumerate(entries):
            try:
                session._apply(entry)
            except KaryoError as exc:
                raise ReplayError(n, str(exc)) from exc
            except (KeyError, TypeError, ValueError, IndexError) as exc:
                raise ReplayError(n, f"malformed entry ({type(exc).__name__}: {exc})") from exc
        session._journal = journal
        session._measurer = measurer
        session._measure()
        return session

    def _apply(self, entry: dict) -> None:
        if not isinstance(entry, dict):
            raise KaryoError(f"not an object: {entry!r}")
        name, args = entry.get("action"), entry.get("args") or {}
        if name in ("split", "split_at"):
            pieces = [decode_mask(p) for p in args["pieces"]]
            self._apply_split(name, self._index(args["label_id"]), pieces, dict(args))
        elif name in ("join", "delete"):
            getattr(self, name)(args["label_ids"])
        elif name == "relabel":
            self.relabel(args["label_ids"], args["class_id"])
        elif name == "swap":
            self.swap(args["a"], args["b"])
        elif name == "draw":
            self._draw(*decode_mask(args["mask"]), edited.class_number(args["class_id"]))
        elif name == "redraw":
            i = self._index(args["label_id"])
            self._redraw(i, *(decode_mask(args["mask"]) if args["mask"] is not None else (None, (0, 0))))
        elif name == "paint":
            existing = {
                self._index(int(k)): (None, (0, 0)) if m is None else decode_mask(m)
                for k, m in args["masks"].items()
            }
            self._paint(
                existing, [decode_mask(m) for m in args["added"]], edited.class_number(args["class_id"])
            )
        elif name == "move_centromere":
            self.move_centromere(args["label_id"], args["row"], args["col"], args["centromeric_index"])
        elif name == "accept":
            self.accept()
        elif name in ("undo", "redo"):
            if not getattr(self, name)():
                raise KaryoError(f"{name} with nothing to {name}")
        else:
            self._apply_prompt(name, args)

    # ---- internals -----------------------------------------------------------------------------------------
    def _apply_split(self, name: str, i: int, pieces: Pieces, args: dict) -> list[int]:
        chs = self.result.chromosomes
        parent = chs[i]
        new = list(chs)
        new[i] = edited.reshaped(parent, *pieces[0])
        for mask, offset in pieces[1:]:
            piece = edited.reshaped(parent, mask, offset)
            edited.give_name(piece, 0)
            piece.probs = None  # the parent's probabilities describe the whole, not this piece
            new.append(piece)
        args["pieces"] = [encode_mask(m, o) for m, o in pieces]
        self._commit(name, new, args)
        return [i + 1, *range(len(chs) + 1, len(new) + 1)]

    def _draw(self, crop: np.ndarray, offset: tuple[int, int], class_id: int) -> int:
        ch = Chromosome(mask=crop, offset=offset, source="user", edited=True)
        edited.give_name(ch, class_id)
        self._commit(
            "draw", [*self.result.chromosomes, ch], {"mask": encode_mask(crop, offset), "class_id": class_id}
        )
        return self.result.count

    def _redraw(self, i: int, crop: np.ndarray | None, offset: tuple[int, int]) -> None:
        new = list(self.result.chromosomes)
        if crop is None:
            del new[i]
        else:
            new[i] = edited.reshaped(new[i], crop, offset)
        rle = None if crop is None else encode_mask(crop, offset)
        self._commit("redraw", new, {"label_id": i + 1, "mask": rle})

    def _paint(self, existing: dict[int, tuple], added: list[tuple], class_id: int) -> list[int]:
        if not existing and not added:
            raise KaryoError("the stroke changed no chromosome; paint on or next to one, or with a fresh id")
        chs = self.result.chromosomes
        kept = [
            edited.reshaped(ch, *existing[k]) if k in existing else ch
            for k, ch in enumerate(chs)
            if k not in existing or existing[k][0] is not None
        ]
        for crop, offset in added:
            ch = Chromosome(mask=crop, offset=offset, source="user", edited=True)
            edited.give_name(ch, class_id)
            kept.append(ch)
        args = {
            "masks": {str(k + 1): None if c is None else encode_mask(c, o) for k, (c, o) in existing.items()},
            "added": [encode_mask(c, o) for c, o in added],
            "class_id": class_id,
        }
        self._commit("paint", kept, args)
        return list(range(len(kept) - len(added) + 1, len(kept) + 1))

    def _commit(self, name: str, chromosomes: list[Chromosome], args: dict, correction: bool = True) -> None:
        before, redo = self._snapshot(), self._redo
        self.result.chromosomes = chromosomes
        self._measure()
        if correction:
            self.result.corrections += 1
            self.result.status = "corrected"
        else:
            self.result.status = "accepted"
        self._undo.append((name, before))
        self._redo = []
        try:
            self._emit({"action": name, "args": args})
        except BaseException:  # not recorded, so not done: a journal must never miss an edit the screen shows
            self._undo.pop()
            self._restore(before)
            self._redo = redo
            raise

    def _emit(self, entry: dict) -> None:
        if self._journal is not None:
            self._journal(entry)

    def _snapshot(self) -> _State:
        return (
            [edited.copy_chromosome(c) for c in self.result.chromosomes],
            self.result.status,
            self.result.corrections,
        )

    def _restore(self, state: _State) -> None:
        chromosomes, self.result.status, self.result.corrections = state
        # a popped snapshot is owned by nobody else: no copy needed
        self.result.chromosomes = list(chromosomes)
        self._measure()

    def _measure(self) -> None:
        if self._measurer is not None:
            self._measurer.measure(self.result)

    def _index(self, label_id: int) -> int:
        try:
            k = operator.index(label_id)
        except TypeError:
            raise KaryoError(f"chromosome id {label_id!r} is not a whole number") from None
        if not 1 <= k <= self.result.count:
            raise KaryoError(
                f"there is no chromosome {k} in this spread (ids run 1-{self.result.count}); select an existing one"
            )
        return k - 1

    def _indices(self, label_ids: Sequence[int], at_least: int, what: str) -> list[int]:
        if isinstance(label_ids, (int, np.integer)):
            label_ids = [label_ids]
        idx = sorted({self._index(k) for k in label_ids})
        if len(idx) < at_least:
            raise KaryoError(f"{what} needs at least {at_least} different chromosomes; got {len(idx)}")
        return idx

    def _crop(self, mask: np.ndarray, what: str) -> tuple[np.ndarray | None, tuple[int, int]]:
        m = np.asarray(mask)
        if m.shape != tuple(self.result.image_shape):
            raise KaryoError(
                f"the {what} mask is {m.shape} but the image is {tuple(self.result.image_shape)}; "
                "paint on a layer the size of the image"
            )
        m = m.astype(bool, copy=False)
        if not m.any():
            return None, (0, 0)
        return tight(m, (0, 0))
