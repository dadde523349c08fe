"""SpreadResult <-> napari layers: a Labels layer (one id per chromosome) and a Shapes layer (outlines).

While a spread is edited its `EditSession` owns the result and these layers only render it. Layers that have
no session (opened from files, saved with napari's writer) are read back by `layers_to_result`, from the Labels
data and its `features` table (classes, scores, sources). A label image holds one id per pixel but crossing chromosomes share pixels, so the pixels an
object has *under* other objects travel in `metadata['karyo_hidden']` and the round trip stays exact.
No Qt here: these functions work on layers or on (data, attributes, type) tuples alike.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

import numpy as np

from napari_karyo.core import classes
from napari_karyo.core.errors import KaryoError
from napari_karyo.core.karyotype.report.class_labels import instance_colours, instance_numbers, label_places
from napari_karyo.core.results import SOURCES, Chromosome, SpreadResult

CLASS_NAMES: list[str] = [classes.name(i) for i in classes.CLASS_IDS] + ["?"]
FEATURE_COLUMNS = (
    "index",
    "label",
    "class",
    "class_id",
    "score",
    "class_score",
    "source",
    "edited",
    "area",
) + Chromosome.extra_fields()
# napari maps every possible uint16 value through a class colormap on each change (~25 ms); int32 labels take
# its fast path, and every edit recolours
LABEL_DTYPE = np.int32
HIDDEN_KEY = "karyo_hidden"  # {id: (rows, cols)} pixels of `id` lying under another object
FULLY_HIDDEN_KEY = "karyo_fully_hidden"  # ids with no visible pixel at creation: keep them though absent
PROBS_KEY = "karyo_probs"  # {id: 24 class probabilities}
RESULT_KEY = "karyo"  # run-level fields: source_path, model, device, seconds, image_shape


def features_table(result: SpreadResult, ids: list[int] | None = None):
    """pandas table, one row per chromosome. `index` is napari's key from label id to row (status bar);
    `label` is the same id under the name the rest of napari-karyo uses."""
    import pandas as pd

    ids = ids or list(range(1, result.count + 1))
    chs = result.chromosomes
    return pd.DataFrame(
        {
            "index": np.asarray(ids, dtype=np.int64),
            "label": np.asarray(ids, dtype=np.int64),
            "class": pd.Categorical([c.name for c in chs], categories=CLASS_NAMES),
            "class_id": np.asarray([c.class_id for c in chs], dtype=np.int64),
            "score": np.asarray([c.score for c in chs], dtype=np.float64),
            "class_score": np.asarray([c.class_score for c in chs], dtype=np.float64),
            "source": pd.Categorical([c.source for c in chs], categories=list(SOURCES)),
            "edited": np.asarray([c.edited for c in chs], dtype=bool),
            "area": np.asarray([c.area for c in chs], dtype=np.int64),
            **{
                k: np.asarray([getattr(c, k) for c in chs], dtype=_EXTRA_DTYPES[k])
                for k in Chromosome.extra_fields()
            },
        }
    )


_EXTRA_DTYPES = {
    k: {int: np.int64, float: np.float64, str: object}[type(f.default)]
    for k, f in Chromosome.__dataclass_fields__.items()
    if k in Chromosome.extra_fields()
}


def _extra_from_row(rec: dict) -> dict:
    """Extra per-object fields from a features row; missing cells (a row added by hand) keep the defaults."""
    out = {}
    for k, dtype in _EXTRA_DTYPES.items():
        value = rec.get(k)
        if value is None or (dtype is np.int64 and isinstance(value, float) and np.isnan(value)):
            continue
        out[k] = str(value) if dtype is object else int(value) if dtype is np.int64 else float(value)
    return out


def label_colormap(ids, class_ids):
    """DirectLabelColormap: each id painted in its class colour; ids painted later by the user are grey.

    Every class colour is also given to a negative id no object has: napari writes the number of distinct
    colours into the layer's shader code, so with all of them always present an edit that changes which colours
    are used (a relabel, a split) does not compile the shader again (~5 ms under software OpenGL)."""
    from napari.utils import DirectLabelColormap

    colours: dict[Any, Any] = {None: classes.colour(0), 0: (0.0, 0.0, 0.0, 0.0)}
    colours |= {-1 - k: classes.colour(cid) for k, cid in enumerate(sorted(classes.PALETTE))}
    for i, cid in zip(ids, class_ids, strict=True):
        colours[int(i)] = classes.colour(int(cid))
    return DirectLabelColormap(color_dict=colours)


def outline(mask: np.ndarray, offset: tuple[int, int], tolerance: float = 0.7) -> np.ndarray:
    """Simplified outer contour (row, col) of a cropped mask in image pixel coordinates."""
    mask = np.ascontiguousarray(mask, dtype=bool)
    offset = (int(offset[0]), int(offset[1]))
    return _outline(mask.tobytes(), mask.shape, offset, tolerance).copy()


@lru_cache(maxsize=4096)  # an edit re-renders every outline; only the changed objects are traced again
def _outline(packed: bytes, shape: tuple[int, int], offset: tuple[int, int], tolerance: float) -> np.ndarray:
    from skimage.measure import approximate_polygon, find_contours

    mask = np.frombuffer(packed, dtype=bool).reshape(shape)
    padded = np.pad(mask.astype(np.uint8), 1)  # contours of objects touching the crop edge stay closed
    contours = find_contours(padded, 0.5)
    if not contours:
        r, c = offset
        return np.array([[r, c], [r, c + 1], [r + 1, c + 1]], dtype=float)
    longest = max(contours, key=len)
    poly = approximate_polygon(longest, tolerance=tolerance)
    if len(poly) < 4:  # tiny objects: keep the full contour
        poly = longest
    poly = poly[:-1] if len(poly) > 3 and np.allclose(poly[0], poly[-1]) else poly
    return poly + np.asarray(offset, dtype=float) - 1.0


def result_to_layer_data(result: SpreadResult, name: str, dark_image: bool = True) -> list[tuple]:
    """[(labels, kwargs, 'labels'), (polygons, kwargs, 'shapes')] for a result; layer names
    '<name> chromosomes' and '<name> outlines'. Outlines take the class colour, every second object of a class
    a shade of it (`instance_colours`); the class numbers are a layer of their own (`class_numbers_data`)."""
    labels = result.label_image().astype(LABEL_DTYPE)
    ids = list(range(1, result.count + 1))
    hidden: dict[int, tuple[np.ndarray, np.ndarray]] = {}
    fully_hidden: list[int] = []
    probs: dict[int, np.ndarray] = {}
    for i, ch in zip(ids, result.chromosomes, strict=True):
        r0, c0, r1, c1 = ch.bbox
        crop = labels[r0:r1, c0:c1]
        mask = ch.mask[: crop.shape[0], : crop.shape[1]]
        under = mask & (crop != i)
        if under.any():
            rr, cc = np.nonzero(under)
            hidden[i] = ((rr + r0).astype(np.int32), (cc + c0).astype(np.int32))
            if not (mask & (crop == i)).any():
                fully_hidden.append(i)
        if ch.probs is not None:
            probs[i] = np.asarray(ch.probs, dtype=np.float64).copy()
    table = features_table(result, ids)
    metadata = {
        HIDDEN_KEY: hidden,
        FULLY_HIDDEN_KEY: fully_hidden,
        PROBS_KEY: probs,
        RESULT_KEY: {
            "source_path": result.source_path,
            "model": result.model,
            "device": result.device,
            "seconds": float(result.seconds),
            "image_shape": tuple(int(s) for s in result.image_shape),
            "status": result.status,
            "corrections": int(result.corrections),
        },
    }
    labels_kw = {
        "name": f"{name} chromosomes",
        "features": table,
        "colormap": label_colormap(ids, table["class_id"]),
        "metadata": metadata,
        "opacity": 0.55,
    }
    # closed paths, not polygons: napari triangulates polygon faces, which makes every re-render after an edit slow
    polygons = [np.vstack([p, p[:1]]) for p in (outline(ch.mask, ch.offset) for ch in result.chromosomes)]
    edge = instance_colours(result, dark_image)
    shapes_kw = {
        "name": f"{name} outlines",
        "shape_type": "path",
        "features": table.copy(),
        "edge_color": edge,
        "face_color": "transparent",
        "edge_width": 1.5,
        "metadata": {RESULT_KEY: dict(metadata[RESULT_KEY])},
    }
    return [(labels, labels_kw, "labels"), (polygons, shapes_kw, "shapes")]


def _layer_parts(layer) -> tuple[np.ndarray, Any, dict]:
    """(data, features, metadata) of a napari Labels layer or of a (data, attributes, 'labels') tuple."""
    if isinstance(layer, tuple):
        data, attrs = layer[0], layer[1] if len(layer) > 1 else {}
        return np.asarray(data), attrs.get("features"), dict(attrs.get("metadata") or {})
    return np.asarray(layer.data), layer.features, dict(layer.metadata or {})


def row_class(row) -> int:
    name = str(row.get("class", "?")) if "class" in row else "?"
    if name not in ("?", "nan", "None", ""):
        try:
            return classes.class_id(name)
        except ValueError:
            pass
    cid = row.get("class_id", 0)
    return 0 if cid is None or np.isnan(float(cid)) else int(cid)


def layers_to_result(labels_layer, image_shape: tuple[int, int] | None = None) -> SpreadResult:
    """SpreadResult from a Labels layer (or layer tuple) made by `result_to_layer_data` and maybe edited.

    Objects are the ids present in the data plus the ones recorded as fully hidden. Ids painted by the user
    without a features row become unnamed 'user' objects. Hidden pixels count only where another object
    still covers them (erased pixels are gone). A mask whose area changed is marked edited.
    """
    from scipy import ndimage as ndi

    data, features, meta = _layer_parts(labels_layer)
    if data.ndim != 2:
        raise KaryoError(f"the chromosome Labels layer must be 2-D, not of shape {data.shape}")
    data = data.astype(np.int64, copy=False)
    shape = tuple(int(s) for s in (image_shape or data.shape))
    hidden = meta.get(HIDDEN_KEY) or {}
    probs = meta.get(PROBS_KEY) or {}
    run = meta.get(RESULT_KEY) or {}

    rows: dict[int, dict] = {}
    if features is not None and len(features):
        key = "index" if "index" in features else "label" if "label" in features else None
        records = features.to_dict("records") if hasattr(features, "to_dict") else []
        for k, rec in enumerate(records):
            rows[int(rec[key]) if key else k] = rec

    slices = ndi.find_objects(data)
    present = {i + 1 for i, s in enumerate(slices) if s is not None}
    wanted = sorted(present | {int(i) for i in meta.get(FULLY_HIDDEN_KEY, []) if int(i) in rows})

    chromosomes = []
    for i in wanted:
        rr_list, cc_list = [], []
        if i in present:
            sl = slices[i - 1]
            r, c = np.nonzero(data[sl] == i)
            rr_list.append(r + sl[0].start)
            cc_list.append(c + sl[1].start)
        if i in hidden:
            hr, hc = (np.asarray(a, dtype=np.int64) for a in hidden[i])
            inside = (hr < data.shape[0]) & (hc < data.shape[1])
            hr, hc = hr[inside], hc[inside]
            covered = (data[hr, hc] != 0) & (data[hr, hc] != i)
            rr_list.append(hr[covered])
            cc_list.append(hc[covered])
        rr, cc = np.concatenate(rr_list), np.concatenate(cc_list)
        if rr.size == 0:
            continue
        r0, c0 = int(rr.min()), int(cc.min())
        mask = np.zeros((int(rr.max()) - r0 + 1, int(cc.max()) - c0 + 1), dtype=bool)
        mask[rr - r0, cc - c0] = True
        rec = rows.get(i)
        if rec is None:  # painted by the user with a fresh id
            chromosomes.append(Chromosome(mask, (r0, c0), class_id=0, source="user", edited=True))
            continue
        area_changed = "area" in rec and int(rec["area"]) != int(mask.sum())
        source = str(rec.get("source", "model"))
        ch = Chromosome(
            mask,
            (r0, c0),
            class_id=row_class(rec),
            score=float(rec.get("score", 1.0)),
            class_score=float(rec.get("class_score", 0.0)),
            source=source if source in SOURCES else "user",
            edited=bool(rec.get("edited", False)) or area_changed,
            probs=np.asarray(probs[i]).copy() if i in probs else None,
            **_extra_from_row(rec),
        )
        if area_changed:
            ch.clear_measurements()
        chromosomes.append(ch)
    return SpreadResult.from_run_fields(shape, chromosomes, run)


def has_user_edits(layer) -> bool:
    """True when a layer's features say a person made or changed any object."""
    features = getattr(layer, "features", None)
    if features is None or not len(features):
        return False
    user = "source" in features and bool((np.asarray(features["source"], dtype=object) == "user").any())
    edited = "edited" in features and bool(np.asarray(features["edited"], dtype=bool).any())
    return user or edited


def is_dark(image: np.ndarray | None) -> bool:
    """A dark background (DAPI, fluorescence) rather than a light one (G-band); no image counts as dark. Text on
    the layers is white on a dark image, black on a light one (white labels vanish on G-band). Judged by the
    median against the image's own range, so any bit depth works."""
    if image is None:
        return True
    img = np.asarray(image, dtype=np.float32)
    lo, hi = float(img.min()), float(img.max())
    return float(np.median(img)) <= (lo + hi) / 2


DISC_PX = 12  # screen pixels: the halo disc behind a class number (text of size 7 fits in it)
SPACING_STEP = 4  # image pixels: number spacings are rounded up to this


def whole_cell_spacing(canvas_size, world_size) -> float:
    """World pixels between two class numbers so their discs do not overlap when everything is in view (napari's
    reset_view: 95 % of the canvas on the fuller axis), rounded up to a multiple of SPACING_STEP pixels. A new
    spacing places every number again (~30 ms): the karyogram view keeps its spacing while it is enough."""
    if min(canvas_size) < 100:  # not shown yet: napari's default canvas
        canvas_size = (800, 600)
    zoom = 0.95 * min(float(c) / max(float(w), 1.0) for c, w in zip(canvas_size, world_size, strict=True))
    return float(SPACING_STEP * np.ceil((DISC_PX + 1) / max(zoom, 1e-6) / SPACING_STEP))


def class_numbers_data(
    result: SpreadResult, name: str, spacing: float, dark_image: bool, labels: np.ndarray | None = None
) -> tuple:
    """(points, kwargs, 'points'): '<name> class numbers', the class of every chromosome written on it
    (`label_places`) on a translucent disc of the opposite colour (a halo: readable on bands of any grey), the
    number's `instance` (0, 1, … within its class) beside it. `spacing` in image pixels (`whole_cell_spacing`).
    The disc has no ring: napari paints a marker's border colour over its whole face at a fixed canvas size."""
    halo, ink = ((0.0, 0.0, 0.0, 0.3), "white") if dark_image else ((1.0, 1.0, 1.0, 0.4), "black")
    places = label_places(result, spacing, labels)
    kwargs = {
        "name": f"{name} class numbers",
        "features": {
            "text": [c.name for c in result.chromosomes],
            "instance": np.asarray(instance_numbers(result), dtype=np.int64),
        },
        "size": DISC_PX,
        "canvas_size_limits": (DISC_PX, DISC_PX),  # the same on screen at every zoom, like the text
        "face_color": np.tile(halo, (len(places), 1)),
        "border_color": np.tile(halo, (len(places), 1)),
        "border_width": 0.0,
        "text": {"string": "{text}", "color": ink, "size": 7, "anchor": "center"},
    }
    return places.reshape(-1, 2), kwargs, "points"


def spread_layer_data(result: SpreadResult, name: str, image: np.ndarray | None = None) -> list[tuple]:
    """Chromosomes, outlines and class numbers of a result opened from a file (no dock, no karyogram): the
    numbers spaced for the spread alone fitted to a typical canvas."""
    dark = is_dark(image)
    spacing = whole_cell_spacing((800, 1000), result.image_shape)
    return [*result_to_layer_data(result, name, dark), class_numbers_data(result, name, spacing, dark)]
