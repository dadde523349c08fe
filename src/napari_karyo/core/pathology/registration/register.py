"""Hierarchical registration of one stain onto another, and of a whole stack onto its reference stain.

All stages work in one frame: the fixed slide's pixels at a working size set by the fixed slide alone
(WORK_SIDE on its longest side; the moving slide at the same pixel size), so a moving slide on a larger, padded or
cropped canvas is seen at the same resolution. Padding (uniform white/black fill at the border) is no data.
coarse (~256 px): rotation search over 360 deg x FFT cross-correlation of the tissue images (robust first guess;
    feature matching fails across stains), then an affine (scale, shear) fit of the tissue silhouettes (~128 px).
mid (~512 px): intensity-based: optical flow (TV-L1) between the two OD images ranked over the pixels where both
    slides have data (comparable contrast whatever the canvases), an affine fitted to it inside the tissue
    (twice: the first flow at half resolution), each correction kept only if it raises the similarity.
fine: the smoothed residual flow of the mid stage as a non-rigid field, kept only if it raises both the similarity
    and the detail correlation, concentrated on `region_mask` (the annotated regions) when given.

Every stage is judged by the same similarity (correlation of the equalised OD where both slides have data); a result
whose fine detail inside the tissue does not line up (detail correlation < MIN_DETAIL, as between unrelated slides),
or that is worse than doing nothing, is reported as a failure (ok=False); a slide without tissue raises.
"""

from __future__ import annotations

import time
from collections.abc import Generator
from dataclasses import dataclass, field

import numpy as np

from napari_karyo.core.errors import KaryoError
from napari_karyo.core.jobs import run_to_end
from napari_karyo.core.pathology.registration.align import (
    coarse_rotation,
    detail,
    dice,
    fine_affine,
    nonrigid,
    silhouette_affine,
    similarity,
)
from napari_karyo.core.pathology.tissue import MIN_TISSUE_FRACTION, SlideView, downsample, slide_view
from napari_karyo.core.pathology.transform import Transform

STAGES = ("coarse", "mid", "fine")
WORK_SIDE = 512  # longest side (px) of the mid / fine working images
MAX_SCALE_GAP = 1.6  # tissue area ratio (as a length) beyond which a rescaled moving slide is tried too
#   (real same-magnification pairs of the benchmark reach 1.51: IHC tissue masks can be partial)
MIN_DETAIL = 0.025  # detail correlation below this after registration: not credibly aligned (set on the
#   benchmark: unrelated real slides reach <= 0.017 after registration, the 14 real pairs >= 0.031 after mid)


class RegistrationError(KaryoError):
    """A slide without tissue, or a pair of slides that cannot be registered."""


@dataclass
class PairResult:
    transform: Transform  # moving full-resolution pixels -> fixed full-resolution pixels
    # the transform after each stage ("coarse", "mid", "fine"; "fine_affine" = fine before its non-rigid field,
    # the mid result unless "mid" was skipped)
    stages: dict[str, Transform] = field(default_factory=dict)
    quality: dict[str, float] = field(default_factory=dict)  # similarity per stage, identity, dice, detail
    ok: bool = True
    message: str = ""
    seconds: float = 0.0


# ---------------------------------------------------------------------------------------------- driver
def _check_tissue(view: SlideView, which: str) -> None:
    if view.tissue_fraction < MIN_TISSUE_FRACTION:
        raise RegistrationError(
            f"the {which} slide shows no tissue (tissue covers {view.tissue_fraction:.2%} of it): check that the "
            "right file or pyramid level was given, or leave this stain out of the registration"
        )


def _to_full(fixed_factor: float, moving_factor: float):
    """Working-pixel transform -> full-resolution one, the two slides at their own working factors."""
    k = moving_factor / fixed_factor
    q = np.array([[k, 0, (k - 1) / 2], [0, k, (k - 1) / 2], [0, 0, 1.0]]) if k != 1 else None

    def convert(t: Transform) -> Transform:
        full = t.rescaled(1.0 / fixed_factor)  # as if both slides were at the fixed one's factor ...
        if q is None:
            return full
        # ... then moving full-res pixels -> those of a moving slide at the fixed slide's factor
        return Transform(full.affine @ q, full.displacement, full.displacement_spacing)

    return convert


def _coarse(fv: SlideView, mv: SlideView, moving: np.ndarray) -> tuple[Transform, SlideView]:
    """Rotation search + silhouette affine. The search has no scale: when the tissue areas differ a lot (another
    magnification or pyramid level, or just a stain whose tissue mask is partial) it also runs with the moving
    slide rescaled to the fixed tissue's area, and the better-matching of the two is kept."""
    t = silhouette_affine(fv, mv, coarse_rotation(fv, mv))
    ratio = float(np.sqrt(fv.mask.sum() / mv.mask.sum()))
    if abs(np.log(ratio)) <= np.log(MAX_SCALE_GAP):
        return t, mv
    scaled = slide_view(moving, mv.factor * ratio)
    if scaled.tissue_fraction < MIN_TISSUE_FRACTION:
        return t, mv
    t2 = silhouette_affine(fv, scaled, coarse_rotation(fv, scaled))
    return (t2, scaled) if similarity(fv, scaled, t2) > similarity(fv, mv, t) else (t, mv)


def register_pair_steps(
    fixed: np.ndarray,
    moving: np.ndarray,
    *,
    fixed_mask: np.ndarray | None = None,
    region_mask: np.ndarray | None = None,
    stages=STAGES,
    scale: float = 1.0,
    device=None,
) -> Generator[tuple[str, int, int], None, PairResult]:
    """Register `moving` onto `fixed` (2-D grey or RGB, any sizes) given at `scale` of full resolution.

    Yields (stage, done, total); returns a PairResult whose transforms act on FULL-resolution pixels.
    `fixed_mask` overrides the fixed tissue mask; `region_mask` (fixed grid) focuses the fine stage.
    `device` is accepted for the widget's device choice; at these working sizes (<= 512 px) the CPU is faster
    than a GPU round trip, so the work runs on the CPU.
    """
    t0 = time.perf_counter()
    unknown = set(stages) - set(STAGES)
    if unknown:
        raise ValueError(f"unknown stages {sorted(unknown)}; choose from {STAGES}")
    total = 2 + len(stages)
    yield "prepare", 0, total
    # one pixel size for both, set by the fixed slide: a padded or larger moving canvas must not coarsen it
    factor = min(1.0, WORK_SIDE / max(fixed.shape[:2]), 2 * WORK_SIDE / max(moving.shape[:2]))
    fv = slide_view(fixed, factor, fixed_mask)
    mv = slide_view(moving, factor)
    _check_tissue(fv, "fixed")
    _check_tissue(mv, "moving")
    region = None
    if region_mask is not None:
        region = downsample(np.asarray(region_mask, np.uint8), factor) > 0.5
        region = region.astype(np.float32) if region.any() else None

    to_full = _to_full(factor * scale, factor * scale)
    t = Transform.identity()
    quality = {"identity": similarity(fv, mv, t)}
    done_stages: dict[str, Transform] = {}
    done = 1
    residual = None
    for stage in STAGES:
        if stage not in stages:
            continue
        yield stage, done, total
        if stage == "coarse":
            t, mv = _coarse(fv, mv, moving)
            to_full = _to_full(factor * scale, mv.factor * scale)
        elif stage == "mid":
            t, residual = fine_affine(fv, mv, t, region)
        else:
            if residual is None:  # "mid" was skipped
                t, residual = fine_affine(fv, mv, t, region)
            done_stages["fine_affine"] = to_full(t)
            quality["fine_affine"] = similarity(fv, mv, t)
            cand = nonrigid(fv, mv, t, region, residual)
            weight = None if region is None else 1.0 + 4.0 * region
            # the field must line up the inner detail better, not just the overall intensity
            if similarity(fv, mv, cand, weight) > similarity(fv, mv, t, weight) and detail(
                fv, mv, cand, weight
            ) > detail(fv, mv, t, weight):
                t = cand
        quality[stage] = similarity(fv, mv, t)
        done_stages[stage] = to_full(t)
        done += 1
    yield "check", done, total
    quality["dice"] = dice(fv, mv, t)
    quality["detail"] = detail(fv, mv, t)
    ok, message = _verdict(quality, quality[stages[-1]] if stages else quality["identity"])
    yield "check", total, total
    return PairResult(to_full(t), done_stages, quality, ok, message, time.perf_counter() - t0)


def _verdict(quality: dict, final: float) -> tuple[bool, str]:
    """Registered or not, and the sentence that says why, from the stage similarities and detail correlation."""
    if quality["detail"] >= MIN_DETAIL and final >= quality["identity"] - 0.02:
        return True, (
            f"registered: similarity {quality['identity']:.3f} -> {final:.3f}, detail correlation "
            f"{quality['detail']:.3f}, tissue overlap {quality['dice']:.2f}"
        )
    return False, (
        f"could not register: detail correlation {quality['detail']:.3f} (needs {MIN_DETAIL}), "
        f"similarity {quality['identity']:.3f} -> {final:.3f}. Check that both slides show the same "
        "tissue, or place a few landmark pairs to fix this stain by hand"
    )


GOOD_DETAIL = 0.04  # the benchmark's 14 real pairs start at 0.031 after mid, unrelated slides end at 0.017:
#   between MIN_DETAIL and this a registration is accepted but worth a look
GOOD_OVERLAP = 0.8  # tissue overlap (Dice) below this: part of one slide lies off the other


@dataclass(frozen=True)
class Verdict:
    word: str  # good | check | failed
    detail: float  # the detail correlation after registration: the number the verdict rests on
    overlap: float  # tissue overlap (Dice)

    def __str__(self) -> str:
        why = {
            "good": f"detail {self.detail:.3f} (>= {GOOD_DETAIL}), tissue overlap {self.overlap:.2f}",
            "check": f"detail {self.detail:.3f} (good from {GOOD_DETAIL}), tissue overlap {self.overlap:.2f} "
            f"(good from {GOOD_OVERLAP}): look at the blend",
            "failed": f"detail {self.detail:.3f} (needs {MIN_DETAIL}): fix with landmarks",
        }[self.word]
        return f"{self.word}: {why}"


def verdict(result: PairResult) -> Verdict:
    """good / check / failed for one registered stain, with the numbers behind it."""
    detail_, overlap = float(result.quality.get("detail", 0.0)), float(result.quality.get("dice", 0.0))
    if not result.ok:
        word = "failed"
    elif detail_ < GOOD_DETAIL or overlap < GOOD_OVERLAP:
        word = "check"
    else:
        word = "good"
    return Verdict(word, detail_, overlap)


def register_pair(fixed: np.ndarray, moving: np.ndarray, **kw) -> PairResult:
    return run_to_end(register_pair_steps(fixed, moving, **kw))


def register_stack_steps(
    images: dict[str, np.ndarray], reference: str, *, region_mask: np.ndarray | None = None, **kw
) -> Generator[tuple[str, int, int], None, dict[str, PairResult]]:
    """Register every stain onto `reference` (which gets the identity). Progress counts pairs x stages.

    A stain that cannot be registered comes back with ok=False and its message; a slide without tissue raises.
    """
    if reference not in images:
        raise RegistrationError(f"reference stain {reference!r} is not among the stains {sorted(images)}")
    others = [name for name in images if name != reference]
    results = {reference: PairResult(Transform.identity(), {}, {}, True, "reference", 0.0)}
    per = 2 + len(kw.get("stages", STAGES))
    for i, name in enumerate(others):
        gen = register_pair_steps(images[reference], images[name], region_mask=region_mask, **kw)
        try:
            while True:
                stage, done, _ = next(gen)
                yield f"{name}: {stage}", i * per + done, len(others) * per
        except StopIteration as stop:
            results[name] = stop.value
        except RegistrationError as exc:
            raise RegistrationError(f"stain {name!r}: {exc}") from exc
    yield "done", len(others) * per, max(len(others) * per, 1)
    return results
