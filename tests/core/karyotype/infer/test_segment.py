"""Mask R-CNN's detections as cropped masks: the same pixels as torchvision's full-image paste, and several
images in one forward pass give what each gives alone."""

from pathlib import Path

import numpy as np
import pytest

from napari_karyo.core.karyotype.infer.predict import load_segmenter, segment, segment_many
from napari_karyo.core.karyotype.infer.preprocess import normalise_intensity, rescale, scale_factor
from napari_karyo.core.storage.images import read_image

SAMPLE = Path(__file__).resolve().parents[4] / "src/napari_karyo/samples/mfish_V26_dapi.tif"


@pytest.fixture(scope="module")
def norm():
    n, _ = normalise_intensity(read_image(SAMPLE))
    return rescale(n, scale_factor(n))[:256, :320]


def _full_paste(seg, norm, min_score):
    """What torchvision's own forward gives: one full-image probability map per detection, cut to its pixels."""
    import torch

    seg.model.roi_heads.score_thresh = min_score
    with torch.inference_mode():
        out = seg.model([torch.from_numpy(norm)[None].expand(3, -1, -1).contiguous()])[0]
    masks, offsets = [], []
    for p in out["masks"][:, 0].numpy():
        rows, cols = np.nonzero(p > 0.5)
        masks.append((p > 0.5)[rows.min() : rows.max() + 1, cols.min() : cols.max() + 1])
        offsets.append((int(rows.min()), int(cols.min())))
    return masks, out["scores"].numpy(), offsets


def test_masks_pasted_in_their_boxes_equal_torchvisions_full_image_paste(norm):
    seg = load_segmenter(None, "cpu")
    masks, scores, offsets = segment(seg, norm, 0.3)
    ref_masks, ref_scores, ref_offsets = _full_paste(seg, norm, 0.3)
    assert len(masks) >= 5 and offsets == ref_offsets
    assert np.array_equal(scores, ref_scores)
    assert all(np.array_equal(a, b) for a, b in zip(masks, ref_masks, strict=True))


def test_a_batch_of_same_size_images_gives_each_image_its_own_detections(norm):
    seg = load_segmenter(None, "cpu")
    flipped = np.ascontiguousarray(norm[::-1])
    alone = [segment(seg, n, 0.5) for n in (norm, flipped)]
    batched = segment_many(seg, [norm, flipped], 0.5)
    for (m1, s1, o1), (m2, s2, o2) in zip(alone, batched, strict=True):
        assert o1 == o2 and np.allclose(s1, s2, atol=1e-5)
        assert all(np.array_equal(a, b) for a, b in zip(m1, m2, strict=True))
