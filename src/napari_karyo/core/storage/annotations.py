"""Annotation formats with instance masks: labelme JSON (polygons), M-FISH K label maps, COCO JSON.

Each reader returns (image or None, list of `Chromosome`) so data sets, napari readers and tests share one path.
"""

from __future__ import annotations

import base64
import io
import json
import math
from pathlib import Path

import numpy as np

from napari_karyo.core.classes import RELATIVE_LENGTH, class_id
from napari_karyo.core.errors import ImageReadError
from napari_karyo.core.results import Chromosome, SpreadResult
from napari_karyo.core.storage.images import MAX_PIXELS, check_spread, read_image


def read_labelme(path: str | Path) -> tuple[np.ndarray, list[Chromosome]]:
    """labelme JSON with the image embedded (imageData) or beside it (imagePath). One mask per polygon:
    crossing chromosomes overlap, which a single label image could not hold."""
    from skimage.draw import polygon as draw_polygon

    path = Path(path)
    try:
        doc = json.loads(path.read_text())
        shape = (int(doc["imageHeight"]), int(doc["imageWidth"]))
        shapes = doc["shapes"]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ImageReadError(f"{path}: not a labelme JSON file ({exc})") from exc
    image = _labelme_image(doc, path)
    if image.shape[:2] != shape:
        raise ImageReadError(f"{path}: image is {image.shape[:2]} but the JSON says {shape}")
    chromosomes = []
    for s in shapes:
        pts = np.asarray(s.get("points", []), dtype=float)
        if s.get("shape_type", "polygon") != "polygon" or len(pts) < 3:
            continue
        rr, cc = draw_polygon(pts[:, 1], pts[:, 0], shape=shape)
        if rr.size == 0:
            continue
        full = np.zeros(shape, dtype=bool)
        full[rr, cc] = True
        label = str(s.get("label", ""))
        try:
            cid = class_id(label)
        except ValueError:
            cid = 0  # 'chr' and other generic labels: instance only
        chromosomes.append(Chromosome.from_full_mask(full, class_id=cid, source="user"))
    return image, chromosomes


def _labelme_image(doc: dict, path: Path) -> np.ndarray:
    from PIL import Image

    if doc.get("imageData"):
        try:
            with Image.open(io.BytesIO(base64.b64decode(doc["imageData"]))) as im:
                return check_spread(
                    np.asarray(im.convert("L") if im.mode not in ("L", "I;16", "RGB") else im), path
                )
        except ImageReadError:
            raise
        except Exception as exc:
            raise ImageReadError(f"{path}: embedded imageData cannot be decoded ({exc})") from exc

    image_path = path.parent / str(doc.get("imagePath", ""))
    return read_image(image_path)


def read_mfish_k(path: str | Path, split_touching: bool = True) -> list[Chromosome]:
    """Instances from an M-FISH K map (0 background, 1-24 class, 255 = overlap of two chromosomes).

    Overlap pixels are given to every class component they touch; two touching copies of one class (one
    connected component) are split along the distance-transform watershed when the component is much larger
    than a single copy would be.
    """
    import tifffile

    try:
        kmap = tifffile.imread(path)
    except Exception as exc:
        raise ImageReadError(f"{path}: cannot read the K label map ({exc})") from exc
    return instances_from_kmap(np.asarray(kmap), split_touching=split_touching)


def instances_from_kmap(kmap: np.ndarray, split_touching: bool = True) -> list[Chromosome]:
    from scipy import ndimage as ndi

    # Each overlap patch belongs to every class that borders it (a crossing shows both chromosomes there).
    patches, _ = ndi.label(kmap == 255)
    ring = ndi.grey_dilation(patches, size=3) * (patches == 0)
    borders = {(int(p), int(v)) for p, v in zip(ring[ring > 0], kmap[ring > 0], strict=True)}
    comps: dict[int, list[np.ndarray]] = {}
    for cid in range(1, 25):
        own = kmap == cid
        if not own.any():
            continue
        mine = [p for p, v in borders if v == cid]
        region = own | np.isin(patches, mine) if mine else own
        labels, n = ndi.label(region)
        found = [labels == i for i in range(1, n + 1)]
        comps[cid] = [m for m in found if (m & own).sum() >= 20]  # specks are annotation noise
    if split_touching and comps:
        # Area per unit of relative length in this cell; a lone component far above its class's share is two
        # touching copies merged by the K map.
        unit = sum(m.sum() for ms in comps.values() for m in ms) / sum(
            RELATIVE_LENGTH[c] * len(ms) for c, ms in comps.items()
        )
        for cid, ms in comps.items():
            if len(ms) == 1 and ms[0].sum() > 1.6 * RELATIVE_LENGTH[cid] * unit:
                comps[cid] = _split_in_two(ms[0])
    return [Chromosome.from_full_mask(m, class_id=c, source="user") for c, ms in comps.items() for m in ms]


def _split_in_two(mask: np.ndarray) -> list[np.ndarray]:
    """Watershed of the distance transform from its two strongest, well-separated peaks."""
    from scipy import ndimage as ndi
    from skimage.feature import peak_local_max
    from skimage.segmentation import watershed

    dist = ndi.distance_transform_edt(mask)
    peaks = peak_local_max(dist, min_distance=max(3, int(2 * dist.max())), num_peaks=2, exclude_border=False)
    if len(peaks) < 2:
        return [mask]
    markers = np.zeros(mask.shape, dtype=np.int32)
    for i, (r, c) in enumerate(peaks, 1):
        markers[r, c] = i
    ws = watershed(-dist, markers, mask=mask)
    parts = [ws == i for i in (1, 2)]
    return parts if all(p.sum() >= 20 for p in parts) else [mask]


def coco_category_id(class_id: int) -> int:
    return int(class_id) if 1 <= class_id <= 24 else 0


def to_coco_objects(result: SpreadResult) -> list[dict]:
    """COCO-style objects (RLE masks in image pixels, bbox xywh, category_id 1-24 with 23=X, 24=Y, score)."""
    from pycocotools import mask as mask_utils

    objects = []
    for i, ch in enumerate(result.chromosomes, 1):
        full = np.asfortranarray(ch.full_mask(result.image_shape).astype(np.uint8))
        rle = mask_utils.encode(full)
        r0, c0, r1, c1 = ch.bbox
        objects.append(
            {
                "id": i,
                "category_id": coco_category_id(ch.class_id),
                "class": ch.name,
                "segmentation": {"size": list(rle["size"]), "counts": rle["counts"].decode("ascii")},
                "bbox": [c0, r0, c1 - c0, r1 - r0],
                "area": ch.area,
                "score": round(float(ch.score), 4),
                "class_score": round(float(ch.class_score), 4),
                "source": ch.source,
                "edited": ch.edited,
                **{k: _json_scalar(getattr(ch, k)) for k in Chromosome.extra_fields()},
            }
        )
    return objects


def _json_scalar(value):
    """NaN is not JSON: unknown measurements are written as null."""
    return None if isinstance(value, float) and math.isnan(value) else value


def _extra_from_json(obj: dict) -> dict:
    defaults = Chromosome.__dataclass_fields__
    out = {}
    for k in Chromosome.extra_fields():
        if obj.get(k) is not None:
            out[k] = type(defaults[k].default)(obj[k])
    return out


def from_coco_objects(
    objects: list[dict], image_shape: tuple[int, int], source: str | Path = "annotations"
) -> list[Chromosome]:
    """Chromosomes of COCO objects (RLE or polygons) in an image of `image_shape`; a malformed object or a mask
    of another size is an ImageReadError naming `source` and the object, never decoded at a size it claims."""
    if len(image_shape) != 2 or not all(isinstance(s, int) and s > 0 for s in image_shape):
        raise ImageReadError(f"{source}: image shape {image_shape} is not (height, width)")
    if image_shape[0] * image_shape[1] > MAX_PIXELS:
        raise ImageReadError(
            f"{source}: image shape {image_shape} is too large (limit {MAX_PIXELS / 1e6:g} MP)"
        )
    out = []
    for n, obj in enumerate(objects, 1):
        try:
            ch = _from_coco_object(obj, image_shape)
        except (KeyError, TypeError, ValueError, AttributeError, IndexError) as exc:
            raise ImageReadError(
                f"{source}: object {n} is malformed ({type(exc).__name__}: {exc}); repair the "
                "file or write it again with napari-karyo"
            ) from exc
        if ch is not None:
            out.append(ch)
    return out


def _from_coco_object(obj: dict, image_shape: tuple[int, int]) -> Chromosome | None:
    from pycocotools import mask as mask_utils

    seg = obj["segmentation"]
    if isinstance(seg, dict):
        if [int(s) for s in seg["size"]] != list(image_shape):
            raise ValueError(f"mask size {seg['size']} is not the image's {list(image_shape)}")
        counts = seg["counts"]
        if isinstance(counts, list):
            rle = mask_utils.frPyObjects(seg, *image_shape)
        else:
            rle = {
                "size": list(image_shape),
                "counts": counts.encode("ascii") if isinstance(counts, str) else counts,
            }
        full = mask_utils.decode(rle).astype(bool)
    elif isinstance(seg, list):  # polygons
        rles = mask_utils.frPyObjects(seg, *image_shape)
        full = mask_utils.decode(mask_utils.merge(rles)).astype(bool)
    else:
        raise TypeError("segmentation is neither an RLE nor polygons")
    if full.shape != tuple(image_shape):
        raise ValueError(f"mask decodes to {full.shape}, not the image's {tuple(image_shape)}")
    if not full.any():
        return None
    return Chromosome.from_full_mask(
        full,
        class_id=int(obj.get("category_id", 0)),
        score=float(obj.get("score", 1.0)),
        class_score=float(obj.get("class_score", 0.0)),
        source=str(obj.get("source", "model")),
        edited=bool(obj.get("edited", False)),
        **_extra_from_json(obj),
    )


def read_coco(path: str | Path) -> dict[str, tuple[tuple[int, int], list[Chromosome]]]:
    """A COCO JSON file: {image file_name: (shape, chromosomes)}. Also accepts napari-karyo's annotations.json."""
    path = Path(path)
    try:
        doc = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise ImageReadError(f"{path}: not a JSON file ({exc})") from exc
    if isinstance(doc, dict) and "images" in doc and "annotations" in doc:
        out = {}
        try:
            for img in doc["images"]:
                shape = (int(img["height"]), int(img["width"]))
                objs = [a for a in doc["annotations"] if a["image_id"] == img["id"]]
                out[img["file_name"]] = (shape, from_coco_objects(objs, shape, path))
        except (KeyError, TypeError, ValueError) as exc:
            raise ImageReadError(f"{path}: not a valid COCO file ({type(exc).__name__}: {exc})") from exc
        return out
    if isinstance(doc, dict) and "objects" in doc and "image_shape" in doc:
        try:
            shape = tuple(int(s) for s in doc["image_shape"])
        except (TypeError, ValueError) as exc:
            raise ImageReadError(
                f"{path}: image_shape {doc['image_shape']!r} is not (height, width)"
            ) from exc
        return {doc.get("image", path.stem): (shape, from_coco_objects(doc["objects"], shape, path))}
    raise ImageReadError(f"{path}: JSON has neither COCO 'images'/'annotations' nor napari-karyo 'objects'")
