"""The multi-stain classifier: one CNN branch per stain, fused by a Squeeze-and-Excitation block over stains.

Per stain (source method C, step 6): conv 5x5, 64 -> max-pool 2 -> conv 5x5, 64 -> FC 512. The n stain feature
vectors F (B, n, 512) are fused:

- "se": squeeze each stain's vector to its mean, excite with FC -> ReLU -> FC -> sigmoid: one weight per stain
  that rescales that stain's features; the rescaled vectors are concatenated -> dropout -> FC -> softmax. The
  excitation starts neutral (every weight 0.5), and training adds a light L1 pull on the weights (`se_l1` in
  train_fusion.py), so a stain that does not help the loss drifts below the ones that do.
- "concat": the same without the SE weights (all 1); "mean": the average of the stain vectors -> dropout -> FC.

BatchNorm follows each convolution (not in the source, which started from pre-trained weights): it lets the net
train from scratch in a few epochs.

Missing stains are explicit: `present` (B, n) marks the stains a sample has. A missing stain's input is zeroed,
its features are zeroed before the squeeze, and its SE weight is forced to 0, so the prediction comes from the
present stains only and the reported weight says the stain contributed nothing. Training with `stain_dropout`
(train_fusion.py) teaches the net to cope. "mean" averages over the present stains.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from napari_karyo.core.device import pick_device
from napari_karyo.core.errors import ModelFileError
from napari_karyo.core.storage.model_files import load_model, save_model

ARCH = "napari-karyo/se-fusion-cnn-v1"
FUSIONS = ("se", "concat", "mean")


def _spatial(size: int) -> int:
    s = (size - 4) // 2 - 4
    if s < 1:
        raise ValueError(f"patch size {size} is too small for two 5x5 convolutions and a pooling; use >= 14")
    return s


def build_fusion_net(
    n_stains: int,
    in_channels: int,
    n_classes: int,
    fusion: str = "se",
    *,
    size: int = 28,
    width: int = 64,
    features: int = 512,
    dropout: float = 0.5,
):
    """A FusionNet: forward(x (B, n_stains, in_channels, size, size), present (B, n_stains) bool or None)
    returns (logits (B, n_classes), stain weights (B, n_stains))."""
    import torch
    from torch import nn

    if fusion not in FUSIONS:
        raise ValueError(f"fusion {fusion!r} is not one of {FUSIONS}")
    s = _spatial(size)

    def branch() -> nn.Module:
        return nn.Sequential(
            nn.Conv2d(in_channels, width, 5),
            nn.BatchNorm2d(width),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(2),
            nn.Conv2d(width, width, 5),
            nn.BatchNorm2d(width),
            nn.ReLU(inplace=True),
            nn.Flatten(),
            nn.Linear(width * s * s, features),
            nn.ReLU(inplace=True),
        )

    class FusionNet(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.config = {
                "n_stains": n_stains,
                "in_channels": in_channels,
                "n_classes": n_classes,
                "fusion": fusion,
                "size": size,
                "width": width,
                "features": features,
                "dropout": dropout,
            }
            self.branches = nn.ModuleList(branch() for _ in range(n_stains))
            if fusion == "se":
                hidden = max(
                    4, n_stains
                )  # few stains: widening, not reducing, keeps the excitation expressive
                self.excite = nn.Sequential(
                    nn.Linear(n_stains, hidden),
                    nn.ReLU(inplace=True),
                    nn.Linear(hidden, n_stains),
                    nn.Sigmoid(),
                )
                # neutral start: every stain weighs 0.5 until training moves it, so the ranking is learnt, not drawn
                nn.init.zeros_(self.excite[2].weight)
                nn.init.zeros_(self.excite[2].bias)
            self.drop = nn.Dropout(dropout)
            self.head = nn.Linear(features * (1 if fusion == "mean" else n_stains), n_classes)

        def forward(self, x: torch.Tensor, present: torch.Tensor | None = None):
            b = x.shape[0]
            if present is None:
                present = torch.ones(b, n_stains, dtype=torch.bool, device=x.device)
            keep = present.to(x.dtype)
            x = x * keep[:, :, None, None, None]
            feats = torch.stack([f(x[:, i]) for i, f in enumerate(self.branches)], 1) * keep[:, :, None]
            if fusion == "se":
                weights = self.excite(feats.mean(-1)) * keep
            else:
                weights = keep / keep.sum(1, keepdim=True).clamp(min=1) if fusion == "mean" else keep
            fused = feats * weights[:, :, None]
            fused = fused.sum(1) if fusion == "mean" else fused.flatten(1)
            return self.head(self.drop(fused)), weights

    return FusionNet()


@dataclass
class FusionModel:
    net: object  # FusionNet, in eval mode on `device`
    card: dict
    device: object

    @property
    def stains(self) -> tuple[str, ...]:
        return tuple(self.card["stains"])

    @property
    def classes(self) -> tuple[str, ...]:
        return tuple(self.card["classes"])

    @property
    def size(self) -> int:
        return int(self.card["config"]["size"])


def save_fusion_model(net, card: dict, path: str | Path) -> Path:
    """Weights + card; the card must carry `stains` and `classes` (lesion names), in the net's order."""
    for key in ("stains", "classes"):
        if key not in card:
            raise ValueError(f"the model card needs {key!r}")
    return save_model(net.state_dict(), dict(card, architecture=ARCH, config=net.config), path)


def load_fusion_model(path: str | Path, device=None) -> FusionModel:
    """Load (sha256 and architecture checked) onto `device` (default: the best available)."""

    state, card = load_model(path, ARCH)
    cfg = dict(card["config"])
    try:
        net = build_fusion_net(
            cfg.pop("n_stains"), cfg.pop("in_channels"), cfg.pop("n_classes"), cfg.pop("fusion"), **cfg
        )
        net.load_state_dict(state)
    except (KeyError, TypeError, ValueError, RuntimeError) as exc:
        raise ModelFileError(
            f"{path}: weights do not match the card's network ({exc}); re-train the model"
        ) from exc
    dev = pick_device(device)
    net.to(dev).eval()
    return FusionModel(net, card, dev)
