"""Prompted segmentation for scripts and notebooks: a box or a click gives one chromosome's mask.

This module is the stable public API (names and signatures here change only with a major version)::

    from napari_karyo.prompt import Prompter

    p = Prompter(image)                  # 2-D grey or RGB spread; image features are computed once, here
    mask = p.box(r0, c0, r1, c1)          # rows r0:r1, columns c0:c1 (image pixels, inclusive-exclusive)
    mask = p.point(r, c)                  # the chromosome under the click; again at the same place: the next
                                          # alternative (e.g. the single chromosome, then the pair)
    masks = p.alternatives(r, c)          # all of them, most likely first
    mask = p.refine([(r, c), ...], [(r, c), ...])   # holding the positive clicks, none of the negative ones
    a, b = p.separate([(r1, c1), (r2, c2)])         # one mask per click: a crossing, one click on each chromosome

Every mask is a boolean array of the image's shape. Prompts outside the image, or on nothing like a chromosome,
raise `PromptError` (a `napari_karyo.core.errors.KaryoError`). `Prompter(image, model=..., device=...)` takes
another segmentation model file (default: the bundled Mask R-CNN) and a device ("cpu", "cuda", "mps"; default: the
best available). A prompt runs only the model's heads: milliseconds on a CPU (benchmarks/prompt_speed.py). The
mask's outline is then moved onto the chromosome's own edge, as `analyze` does (a click you made stays inside it,
a negative click outside).

A SAM-family checkpoint you already have (segment-anything or micro-sam format, e.g. one fine-tuned on your own
spreads) answers the same prompts: `SamPrompter(image, "vit_b_lm.pt")` (needs `pip install 'napari-karyo[sam]'`;
nothing is downloaded; the file is read as tensors only).

To keep a prompted mask as a journalled, undoable edit of a result, pass it to
`napari_karyo.core.karyotype.edit.session.EditSession.prompt`.
"""

from napari_karyo.core.karyotype.infer.prompt import Prompter, PromptError
from napari_karyo.core.karyotype.infer.sam_prompt import SamPrompter

__all__ = ["PromptError", "Prompter", "SamPrompter"]
