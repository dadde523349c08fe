"""Prompts answered by a SAM-family model the user already has on disk (optional backend of the prompt tools).

Users of micro-sam or segment-anything may hold a checkpoint fine-tuned for their own images. `SamPrompter` gives
the same prompts as `prompt.Prompter` (box, point with alternatives, refine, separate) from such a checkpoint:
the image embedding is computed once, here; a prompt runs SAM's prompt encoder and mask decoder. Nothing is
downloaded: the file is the user's. It is read with `torch.load(weights_only=True)` (tensors only, no code runs),
accepted as a plain SAM state dict or a micro-sam trainer checkpoint (`model_state`, keys with or without the `sam.`
prefix), and the network's size (ViT-B/L/H or any other) is read from the tensors' shapes. Needs the
`segment-anything` package (`pip install napari-karyo[sam]`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import numpy as np

from napari_karyo.core.errors import KaryoError, ModelFileError
from napari_karyo.core.karyotype.infer.boundaries import edge_grey
from napari_karyo.core.karyotype.infer.preprocess import normalise_intensity
from napari_karyo.core.karyotype.infer.prompt_geometry import (
    ClickCycle,
    PromptError,
    checked_box,
    checked_clicks,
    click_groups,
    on_edges,
)
from napari_karyo.core.storage.images import check_spread

IMAGE_SIZE = 1024  # every SAM encoder takes the longest side resized to this
ENCODER = "image_encoder.patch_embed.proj.weight"  # the key that makes a state dict a SAM one


@dataclass(frozen=True)
class SamConfig:
    """A SAM network's size, as read from its weights (`config_of`)."""

    embed_dim: int
    depth: int
    num_heads: int
    patch_size: int
    mlp_ratio: float
    window_size: int
    global_attn_indexes: tuple[int, ...]
    prompt_dim: int
    mask_in_chans: int
    decoder_depth: int
    decoder_mlp_dim: int
    iou_hidden_dim: int
    multimask_outputs: int


def build_sam(cfg: SamConfig):
    """An (untrained) SAM of this size, with segment-anything's own modules."""
    import torch
    from segment_anything.modeling import ImageEncoderViT, MaskDecoder, PromptEncoder, Sam, TwoWayTransformer

    grid = IMAGE_SIZE // cfg.patch_size
    return Sam(
        image_encoder=ImageEncoderViT(
            img_size=IMAGE_SIZE,
            patch_size=cfg.patch_size,
            embed_dim=cfg.embed_dim,
            depth=cfg.depth,
            num_heads=cfg.num_heads,
            mlp_ratio=cfg.mlp_ratio,
            out_chans=cfg.prompt_dim,
            qkv_bias=True,
            norm_layer=partial(torch.nn.LayerNorm, eps=1e-6),
            use_rel_pos=True,
            window_size=cfg.window_size,
            global_attn_indexes=cfg.global_attn_indexes,
        ),
        prompt_encoder=PromptEncoder(
            embed_dim=cfg.prompt_dim,
            image_embedding_size=(grid, grid),
            input_image_size=(IMAGE_SIZE, IMAGE_SIZE),
            mask_in_chans=cfg.mask_in_chans,
        ),
        mask_decoder=MaskDecoder(
            num_multimask_outputs=cfg.multimask_outputs,
            transformer=TwoWayTransformer(
                depth=cfg.decoder_depth,
                embedding_dim=cfg.prompt_dim,
                mlp_dim=cfg.decoder_mlp_dim,
                num_heads=8,
            ),
            transformer_dim=cfg.prompt_dim,
            iou_head_depth=3,
            iou_head_hidden_dim=cfg.iou_hidden_dim,
        ),
    )


def config_of(state: dict) -> SamConfig:
    """The network's size from its tensors' shapes (raises KeyError / IndexError when a tensor is missing)."""
    patch = state[ENCODER]
    embed_dim, patch_size = int(patch.shape[0]), int(patch.shape[2])
    depth = 1 + max(int(m.group(1)) for k in state if (m := re.match(r"image_encoder\.blocks\.(\d+)\.", k)))
    # relative-position tables span 2 * size - 1 positions: the whole grid in global blocks, a window otherwise
    sizes = [(int(state[f"image_encoder.blocks.{i}.attn.rel_pos_h"].shape[0]) + 1) // 2 for i in range(depth)]
    grid = IMAGE_SIZE // patch_size
    windows = [s for s in sizes if s != grid]
    head_dim = int(state["image_encoder.blocks.0.attn.rel_pos_h"].shape[1])
    layers = [k for k in state if re.match(r"mask_decoder\.transformer\.layers\.\d+\.", k)]
    return SamConfig(
        embed_dim=embed_dim,
        depth=depth,
        num_heads=embed_dim // head_dim,
        patch_size=patch_size,
        mlp_ratio=int(state["image_encoder.blocks.0.mlp.lin1.weight"].shape[0]) / embed_dim,
        window_size=windows[0] if windows else 0,
        global_attn_indexes=tuple(i for i, s in enumerate(sizes) if s == grid),
        prompt_dim=2 * int(state["prompt_encoder.pe_layer.positional_encoding_gaussian_matrix"].shape[1]),
        mask_in_chans=4 * int(state["prompt_encoder.mask_downscaling.0.weight"].shape[0]),
        decoder_depth=1 + max(int(k.split(".")[3]) for k in layers),
        decoder_mlp_dim=int(state["mask_decoder.transformer.layers.0.mlp.lin1.weight"].shape[0]),
        iou_hidden_dim=int(state["mask_decoder.iou_prediction_head.layers.0.weight"].shape[0]),
        multimask_outputs=int(state["mask_decoder.mask_tokens.weight"].shape[0]) - 1,
    )


def load_sam(path: str | Path, device: str | None = None):
    """The SAM network in a checkpoint file, ready for prompts; a clear ModelFileError for anything else."""
    try:
        import torch
        from segment_anything import SamPredictor
    except ImportError:
        raise KaryoError(
            "prompts from a SAM checkpoint need the segment-anything package: pip install 'napari-karyo[sam]'"
        ) from None
    from napari_karyo.core.device import pick_device

    path = Path(path)
    if not path.is_file():
        raise ModelFileError(
            f"{path}: no such SAM checkpoint; choose the .pt/.pth file of a SAM or micro-sam model"
        )
    try:
        doc = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # a damaged file, or one that holds more than tensors
        raise ModelFileError(f"{path}: not a readable SAM checkpoint ({type(exc).__name__}: {exc})") from None
    state = doc.get("model_state", doc.get("model", doc)) if isinstance(doc, dict) else None
    if not isinstance(state, dict):
        raise ModelFileError(f"{path}: holds no network weights")
    state = {k.removeprefix("sam."): v for k, v in state.items()}
    try:
        sam = build_sam(config_of(state))
        sam.load_state_dict(state, strict=True)
    except (KeyError, IndexError, ValueError, RuntimeError) as exc:
        raise ModelFileError(
            f"{path}: not a segment-anything / micro-sam checkpoint, or a damaged one ({str(exc)[:200]})"
        ) from None
    sam.to(pick_device(device)).eval()
    return SamPredictor(sam)


class SamPrompter:
    """`prompt.Prompter`'s prompts from a SAM checkpoint; the image embedding is computed once, here. Each mask's
    outline is moved onto the chromosome's own edge, as for the bundled model."""

    def __init__(self, image: np.ndarray, checkpoint: str | Path, device: str | None = None) -> None:
        image = check_spread(image, "prompt image")
        self.shape: tuple[int, int] = tuple(int(n) for n in image.shape[:2])
        self._predictor = load_sam(checkpoint, device)
        self._grey, inverted = normalise_intensity(image)
        self._edges = edge_grey(self._grey)
        # SAM was trained on photographs: the spread as the user sees it (polarity kept), in 8 bits, as RGB
        shown = np.round(255 * (1 - self._grey if inverted else self._grey)).astype(np.uint8)
        self._predictor.set_image(np.repeat(shown[..., None], 3, axis=2))
        self._cycle = ClickCycle()

    def box(self, r0: float, c0: float, r1: float, c1: float) -> np.ndarray:
        checked_box(r0, c0, r1, c1, self.shape)
        (mask,) = self._ask(box=np.array([c0, r0, c1 - 1, r1 - 1], float), multimask=False)
        return self._found(self._on_edges([mask]), f"box rows {r0}:{r1}, columns {c0}:{c1}")[0]

    def point(self, r: float, c: float) -> np.ndarray:
        return self._cycle.pick(r, c, self.alternatives)

    def alternatives(self, r: float, c: float) -> list[np.ndarray]:
        """SAM's masks for the click (it gives several: part, whole, group), best first, each holding the click."""
        ((r, c),) = checked_clicks([(r, c)], "click", 1, self.shape)
        masks = [m for m in self._ask(points=[(r, c)], labels=[1]) if m[int(r), int(c)]]
        if not masks:
            raise PromptError(
                f"nothing at row {r:.0f}, column {c:.0f} looks like a chromosome; drag a box around it"
            )
        return [self._on_edges([m], [[(r, c)]])[0] for m in masks]

    def refine(self, positive, negative=()) -> np.ndarray:
        pos = checked_clicks(positive, "positive", 1, self.shape)
        neg = checked_clicks(negative, "negative", 0, self.shape)
        (mask,) = self._ask(points=pos + neg, labels=[1] * len(pos) + [0] * len(neg), multimask=False)
        return self._found(self._on_edges([mask], [pos], [neg]), "the clicks")[0]

    def separate(self, points) -> list[np.ndarray]:
        """One mask per chromosome: its own clicks positive, the others' negative. Snapped together, so the
        pixels where two of them cross belong to both."""
        groups = click_groups(points, self.shape)
        out, others = [], [[q for j, g in enumerate(groups) if j != k for q in g] for k in range(len(groups))]
        for group, theirs in zip(groups, others, strict=True):
            labels = [1] * len(group) + [0] * len(theirs)
            out += self._ask(points=group + theirs, labels=labels, multimask=False)
        return self._found(self._on_edges(out, groups, others), "the separating clicks")

    def _ask(self, points=None, labels=None, box=None, multimask: bool = True) -> list[np.ndarray]:
        """SAM's masks for one prompt, best score first (SAM takes x, y at pixel centres)."""
        coords = None if points is None else np.array([(c + 0.5, r + 0.5) for r, c in points], float)
        masks, scores, _ = self._predictor.predict(
            point_coords=coords,
            point_labels=None if labels is None else np.array(labels),
            box=box,
            multimask_output=multimask,
        )
        return [np.asarray(masks[i], bool) for i in np.argsort(-scores)]

    def _on_edges(self, masks: list[np.ndarray], pos=None, neg=None) -> list[np.ndarray]:
        return on_edges(self._grey, self._edges, masks, pos, neg)

    @staticmethod
    def _found(masks: list[np.ndarray], what: str) -> list[np.ndarray]:
        if not all(m.any() for m in masks):
            raise PromptError(f"no chromosome found at {what}; draw it by hand")
        return masks
