"""How likely an object is wrong (misnamed, no real chromosome, or two merged): the risk that decides which
objects the review flags point at.

A spread has ~46 objects and a person checks the flagged ones. Flagging every crossing and every object whose
cluster type is unsure flagged a third of them (15 per G-band cell, 7% of them wrong). A logistic model over
what the pipeline already knows (detection and class scores, cluster-type probabilities, the object's size against
its class's, its mask's shape: a merged pair is too long, too wide, branched or not convex) ranks the objects; the
review flags those above a threshold. One model per modality: naming a DAPI or Q-band spread goes wrong far more
often than a G-band one. Fitted on training cells by `benchmarks/review_flags.py --fit` (its card says how).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from napari_karyo.core.errors import ModelFileError
from napari_karyo.core.karyotype.infer.clusters import ClusterObject
from napari_karyo.core.results import SpreadResult

ARCH = "review-risk-logistic-v1"
DEFAULT_MODEL = "review-risk"
MODALITIES = ("brightfield", "fluorescence", "colour")  # G-band; DAPI / Q-band; M-FISH named by colour
FEATURES = (
    "bias", "logit detection score", "log class score", "log(1 - cluster type probability)",
    "area over its class's (log, above)", "area over its class's (log, below)", "in a cluster",
    "p(touching)", "p(overlapping)", "p(touching+overlapping)", "log class margin", "unnamed",
    "log(1 - solidity)", "more than two skeleton ends", "skeleton branches", "log width over the cell's",
    "length over its class's (log, above)", "length over its class's (log, below)",
)  # fmt: skip


@dataclass(frozen=True)
class RiskModel:
    weights: dict[str, np.ndarray]  # per modality, one weight per feature
    expected: dict[str, np.ndarray]  # per modality, (24, 2): class's area and length over the cell's medians
    thresholds: dict[str, float]  # per modality: flag at this risk and above
    card: dict

    def risk(self, feats: np.ndarray, modality: str) -> np.ndarray:
        return 1.0 / (1.0 + np.exp(-(feats @ self.weights[modality])))


@lru_cache(maxsize=2)
def load_risk_model(name_or_path: str = DEFAULT_MODEL) -> RiskModel:
    from napari_karyo.core.storage.model_files import load_model

    state, card = load_model(name_or_path, ARCH)
    try:
        model = RiskModel(
            {m: state[f"{m}.weights"].double().numpy() for m in MODALITIES},
            {m: state[f"{m}.expected"].double().numpy() for m in MODALITIES},
            {m: float(card["config"]["thresholds"][m]) for m in MODALITIES},
            card,
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise ModelFileError(
            f"{name_or_path}: not a review-risk model ({exc}); re-install the package"
        ) from exc
    if any(w.shape != (len(FEATURES),) for w in model.weights.values()) or any(
        e.shape != (24, 2) for e in model.expected.values()
    ):
        raise ModelFileError(f"{name_or_path}: its weights do not fit {len(FEATURES)} features; re-install")
    return model


def shape_of(mask: np.ndarray) -> tuple[float, int, int, float, int]:
    """(solidity, skeleton ends, skeleton branch points, width in px, skeleton length in px) of one mask."""
    from scipy import ndimage as ndi
    from skimage.measure import regionprops
    from skimage.morphology import skeletonize

    m = np.pad(np.asarray(mask, bool), 1)
    if not m.any():
        return 1.0, 0, 0, 0.0, 0
    skeleton = skeletonize(m)
    neighbours = ndi.convolve(skeleton.astype(int), np.ones((3, 3), int), mode="constant") - skeleton
    return (
        float(regionprops(m.astype(np.uint8))[0].solidity),
        int((skeleton & (neighbours == 1)).sum()),
        int((skeleton & (neighbours >= 3)).sum()),
        2.0 * float(ndi.distance_transform_edt(m).max()),
        int(skeleton.sum()),
    )


RAW = ("score", "class_score", "type_prob", "area", "members", "p_touching", "p_overlapping", "p_both", "margin",
       "class_id", "solidity", "ends", "branches", "width", "length")  # fmt: skip


def raw_features(
    result: SpreadResult, objects: Sequence[ClusterObject], type_probs: np.ndarray
) -> np.ndarray:
    """(n, len(RAW)) per chromosome of `result` (`objects` and `type_probs` as the cluster typing gave them);
    area, width and length over the cell's medians."""
    chs = result.chromosomes
    out = np.zeros((len(chs), len(RAW)))
    if not chs:
        return out
    shapes = np.array([shape_of(c.mask) for c in chs], dtype=float)
    medians = np.maximum([np.median([c.area for c in chs]), *np.median(shapes[:, 3:], axis=0)], 1e-6)
    cluster_of = {
        i: (len(o.members), np.asarray(p, float))
        for o, p in zip(objects, type_probs, strict=True)
        for i in o.members
    }
    for i, c in enumerate(chs):
        members, tp = cluster_of.get(i, (1, np.array([1.0, 0.0, 0.0, 0.0])))
        probs = (
            np.sort(np.asarray(c.probs, float).ravel()[:24]) if c.probs is not None else np.full(24, 1 / 24)
        )
        out[i] = (
            c.score, c.class_score, tp.max(), c.area / medians[0], members, tp[1], tp[2], tp[3],
            probs[-1] - probs[-2], c.class_id, *shapes[i, :3], shapes[i, 3] / medians[1], shapes[i, 4] / medians[2],
        )  # fmt: skip
    return out


def design(raw: np.ndarray, expected: np.ndarray) -> np.ndarray:
    """The model's features (FEATURES) from `raw_features`; `expected`: (24, 2) area and length of each class
    over the cell's medians."""
    r = {name: raw[:, k] for k, name in enumerate(RAW)}
    cls = r["class_id"].astype(int)
    named = (cls >= 1) & (cls <= 24)
    exp = np.where(named[:, None], expected[np.clip(cls - 1, 0, 23)], 1.0)
    log_area = np.where(named, np.log(np.maximum(r["area"], 1e-3) / exp[:, 0]), 0.0)
    log_length = np.where(named, np.log(np.maximum(r["length"], 1e-3) / exp[:, 1]), 0.0)
    score = np.clip(r["score"], 1e-3, 1 - 1e-3)
    return np.stack(
        [
            np.ones(len(raw)), np.log(score / (1 - score)), np.log(r["class_score"] + 1e-3),
            np.log(1 - r["type_prob"] + 1e-3), np.maximum(log_area, 0), np.maximum(-log_area, 0),
            (r["members"] > 1).astype(float), r["p_touching"], r["p_overlapping"], r["p_both"],
            np.log(r["margin"] + 1e-3), (~named).astype(float), np.log(1 - r["solidity"] + 1e-3),
            (r["ends"] > 2).astype(float), (r["branches"] > 0).astype(float), np.log(np.maximum(r["width"], 1e-3)),
            np.maximum(log_length, 0), np.maximum(-log_length, 0),
        ],
        axis=1,
    )  # fmt: skip


def modality_of(dark_on_light: bool, by_colour: bool) -> str:
    """The model a spread is rated with: M-FISH cells named by their fluor planes' colour code have their own (their
    names are far surer than a DAPI plane's), else brightfield (G-band, dark on light) or fluorescence."""
    return "colour" if by_colour else "brightfield" if dark_on_light else "fluorescence"


def object_risk(
    result: SpreadResult, objects: Sequence[ClusterObject], type_probs: np.ndarray, modality: str
) -> tuple[np.ndarray, float]:
    """(risk per chromosome, the threshold the review flags at) with the bundled model of `modality`."""
    model = load_risk_model()
    feats = design(raw_features(result, objects, type_probs), model.expected[modality])
    return model.risk(feats, modality), model.thresholds[modality]
