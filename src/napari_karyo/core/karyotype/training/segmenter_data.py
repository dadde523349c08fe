"""Training samples for the Mask R-CNN: random crops of real annotated spreads and synthetic spreads.

Every sample is (image float32 [0,1] bright-on-dark, boxes, masks) at the model's native scale, augmented with
scale jitter, the 8 flips/90° rotations and intensity jitter, and optionally copies of their own chromosomes pasted
across others (copy_paste.py). Masks may overlap (crossing chromosomes).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from napari_karyo.core.errors import KaryoError
from napari_karyo.core.karyotype.infer.preprocess import normalise_intensity, scale_factor
from napari_karyo.core.karyotype.training.copy_paste import paste_chromosomes
from napari_karyo.core.karyotype.training.datasets import Spread
from napari_karyo.core.karyotype.training.synth import synthesize
from napari_karyo.core.results import Chromosome
from napari_karyo.core.storage.images import read_image
from napari_karyo.core.storage.training_set import import_training_set

MIN_VISIBLE = 25  # px: a chromosome cut to less than this by a crop border is not a target


@dataclass
class Annotated:
    image: np.ndarray  # normalised, bright on dark
    chromosomes: list[Chromosome]
    scale: float = 1.0  # crops are rescaled by this (times the jitter)


def prepare(spreads, at_model_scale: bool = False) -> list[Annotated]:
    """Normalise the images of `datasets.Spread` objects once, up front. `at_model_scale`: crops come at the scale
    `analyze` rescales the spread to, so the model learns a user's spreads as it will see them."""
    out = []
    for s in spreads:
        norm = normalise_intensity(s.image)[0]
        out.append(Annotated(norm, s.chromosomes, scale_factor(norm) if at_model_scale else 1.0))
    return out


def random_crop(item: Annotated, rng: np.random.Generator, size: int, scale: float):
    """A `size`² window (after rescaling by `scale`), the full-window masks of the objects it shows and their
    class ids."""
    import torch
    import torch.nn.functional as F

    h, w = item.image.shape
    win = round(size / scale)
    r0 = int(rng.integers(0, max(h - win, 0) + 1))
    c0 = int(rng.integers(0, max(w - win, 0) + 1))
    r1, c1 = min(r0 + win, h), min(c0 + win, w)
    image = np.zeros((win, win), np.float32)
    image[: r1 - r0, : c1 - c0] = item.image[r0:r1, c0:c1]
    masks, class_ids = [], []
    for ch in item.chromosomes:
        a0, b0, a1, b1 = ch.bbox
        if a1 <= r0 or a0 >= r1 or b1 <= c0 or b0 >= c1:
            continue
        m = np.zeros((win, win), bool)
        ys, xs = max(a0, r0), max(b0, c0)
        ye, xe = min(a1, r1), min(b1, c1)
        m[ys - r0 : ye - r0, xs - c0 : xe - c0] = ch.mask[ys - a0 : ye - a0, xs - b0 : xe - b0]
        if m.sum() >= MIN_VISIBLE:
            masks.append(m)
            class_ids.append(ch.class_id)
    if win != size:
        stack = torch.from_numpy(np.stack([image] + [m.astype(np.float32) for m in masks]))[None]
        stack = F.interpolate(stack, size=(size, size), mode="bilinear", align_corners=False)[0].numpy()
        image = stack[0]
        kept = [
            (s > 0.5, c) for s, c in zip(stack[1:], class_ids, strict=True) if (s > 0.5).sum() >= MIN_VISIBLE
        ]
        masks, class_ids = [m for m, _ in kept], [c for _, c in kept]
    return image, masks, class_ids


def augment(image: np.ndarray, masks: list[np.ndarray], rng: np.random.Generator):
    k = int(rng.integers(4))
    flip = bool(rng.integers(2))

    def geo(a):
        a = np.rot90(a, k)
        return np.ascontiguousarray(a[:, ::-1] if flip else a)

    image = geo(image)
    masks = [geo(m) for m in masks]
    gamma = float(np.exp(rng.uniform(-0.35, 0.35)))
    gain = float(rng.uniform(0.75, 1.15))
    image = np.clip(gain * image**gamma + rng.normal(0, rng.uniform(0, 0.03), image.shape), 0, 1)
    return image.astype(np.float32), masks


def to_target(image: np.ndarray, masks: list[np.ndarray], labels: list[int] | None = None):
    """torchvision Mask R-CNN input: a 3-channel tensor and a target dict (boxes recomputed from masks).
    `labels` default to 1 (class-agnostic 'chromosome')."""
    import torch

    boxes = []
    for m in masks:
        rows, cols = np.nonzero(m)
        boxes.append([cols.min(), rows.min(), cols.max() + 1, rows.max() + 1])
    n = len(masks)
    target = {
        "boxes": torch.tensor(boxes, dtype=torch.float32).reshape(n, 4),
        "labels": torch.as_tensor(labels if labels is not None else [1] * n, dtype=torch.int64).reshape(n),
        "masks": torch.from_numpy(np.stack(masks).astype(np.uint8))
        if n
        else torch.zeros((0, *image.shape), dtype=torch.uint8),
    }
    tensor = torch.from_numpy(image)[None].expand(3, -1, -1).contiguous()
    return tensor, target


class SampleStream:
    """Endless stream of training samples: real crops and, with probability `synth_fraction`, synthetic spreads.
    With probability `paste`, a real crop gets one to three of its chromosomes pasted again across others."""

    def __init__(
        self,
        real: list[Annotated],
        bank,
        crop: int,
        synth_fraction: float,
        scale_jitter=(0.8, 1.25),
        with_classes: bool = False,
        real_weights: np.ndarray | None = None,
        paste: float = 0.0,
    ):
        if not real and (bank is None or synth_fraction <= 0):
            raise ValueError("no training data: give real spreads or a synthetic crop bank")
        self.real, self.bank, self.crop, self.with_classes = real, bank, crop, with_classes
        self.synth_fraction = synth_fraction if real else 1.0
        self.scale_jitter = scale_jitter
        self.paste = paste
        self.real_p = None if real_weights is None else np.asarray(real_weights, float) / np.sum(real_weights)

    def sample(self, rng: np.random.Generator):
        if self.bank is not None and rng.random() < self.synth_fraction:
            mode = "touching" if rng.random() < 0.5 else "scatter"
            n = int(rng.integers(max(4, self.crop // 40), max(8, self.crop // 12)))
            image, chromosomes = synthesize(self.bank, rng, shape=(self.crop, self.crop), n=n, mode=mode)
            masks = [c.full_mask(image.shape) for c in chromosomes]
            class_ids = [c.class_id for c in chromosomes]
        else:
            pick = (
                rng.integers(len(self.real))
                if self.real_p is None
                else rng.choice(len(self.real), p=self.real_p)
            )
            item = self.real[pick]
            scale = item.scale * float(np.exp(rng.uniform(*np.log(self.scale_jitter))))
            image, masks, class_ids = random_crop(item, rng, self.crop, scale)
            if self.paste and rng.random() < self.paste:
                image, masks, class_ids = paste_chromosomes(
                    image, masks, class_ids, rng, int(rng.integers(1, 4))
                )
        image, masks = augment(image, masks, rng)
        return to_target(image, masks, class_ids if self.with_classes else None)


def batch_source(stream: SampleStream, batch: int, rng: np.random.Generator, workers: int = 0, seed=(0,)):
    """An endless iterator of `batch`-sample lists. `workers` > 0: the samples are made in that many processes
    (started here, before the model goes to a GPU), so a GPU does not wait on the CPU's cropping; each is seeded
    from `seed` and its number instead of `rng`."""
    if workers <= 0:
        return iter(lambda: [stream.sample(rng) for _ in range(batch)], None)
    import torch
    from torch.utils.data import DataLoader, IterableDataset

    class Endless(IterableDataset):
        def __iter__(self):
            torch.set_num_threads(1)  # the workers together fill the cores
            worker = torch.utils.data.get_worker_info()
            draws = np.random.default_rng([*seed, worker.id if worker else 0])
            while True:
                yield stream.sample(draws)

    loader = DataLoader(
        Endless(),
        batch_size=batch,
        num_workers=workers,
        collate_fn=list,
        prefetch_factor=4,
        persistent_workers=True,
    )
    return iter(loader)


def load_corrections(folder: str | None, split: str = "train") -> list:
    """The `split` images of a corrected training set (`export-training`) as `datasets.Spread` objects."""

    if not folder:
        raise KaryoError(
            "the 'corrections' source needs a training set folder: pass --from-corrections FOLDER"
        )
    return [
        Spread(f"corrections/{path.stem}", read_image(path), result.chromosomes)
        for path, result, part in import_training_set(folder)
        if part == split
    ]
