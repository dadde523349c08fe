"""Augmentation of the cluster-type network's training objects: geometry, mask edges and grey texture that
keep an object's type (`augment`, `texture`)."""

from __future__ import annotations

import numpy as np

AUGMENTATION = (
    "rotation, flip, scale 0.55-1.15, mask edge +-1 px (30%), gamma 0.5-2.5, gain 0.7-1.2; dark "
    "G-band-like patches (period 3-16 px, depth 0.7-1) inside the mask (50%); grey channel replaced by "
    "the flat mask (15%)"
)


def augment(x, gen):
    """Any rotation and flip (type does not depend on orientation), scale jitter down to about half (long
    chromosomes that had to be shrunk to fit the canvas must not look like clusters), mask edge jitter of 1 px
    (annotations vs thresholds), then the grey texture (`texture`)."""
    import torch
    import torch.nn.functional as F

    n = x.shape[0]

    def u(lo, hi):
        return lo + (hi - lo) * torch.rand(n, generator=gen)

    x = torch.where(torch.rand(n, 1, 1, 1, generator=gen) < 0.5, x.flip(3), x)
    angle, scale = u(0, 2 * np.pi), u(0.55, 1.15)
    theta = torch.zeros(n, 2, 3)
    theta[:, 0, 0], theta[:, 0, 1] = torch.cos(angle) / scale, -torch.sin(angle) / scale
    theta[:, 1, 0], theta[:, 1, 1] = torch.sin(angle) / scale, torch.cos(angle) / scale
    x = F.grid_sample(x, F.affine_grid(theta, list(x.shape), align_corners=False), align_corners=False)
    mask = (x[:, 1:] > 0.5).float()
    edge = torch.rand(n, 1, 1, 1, generator=gen)
    grown = F.max_pool2d(mask, 3, 1, 1)
    shrunk = -F.max_pool2d(-mask, 3, 1, 1)
    mask = torch.where(edge < 0.15, grown, torch.where(edge > 0.85, shrunk, mask))
    return torch.cat([texture(x[:, :1].clamp(0, 1), mask, gen), mask], 1)


def texture(grey, mask, gen, p_bands: float = 0.5, p_flat: float = 0.15):
    """Grey-value jitter that keeps the type: gamma / gain; with probability `p_bands` dark patches about a
    chromosome width across (G-band-like bands that drop to ~0 inside the mask: the network must not read a
    dark band as a gap between two chromosomes); with probability `p_flat` the grey channel is replaced by
    the flat mask (the outline alone must carry the type)."""
    import torch
    import torch.nn.functional as F

    n, size = grey.shape[0], grey.shape[-1]

    def u(lo, hi):
        return (lo + (hi - lo) * torch.rand(n, generator=gen)).view(n, 1, 1, 1)

    grey = (grey ** u(0.5, 2.5) * u(0.7, 1.2)).clamp(0, 1)
    cells = int(torch.randint(6, 32, (1,), generator=gen))  # field period ~ size / cells: 3-16 px
    field = F.interpolate(torch.rand(n, 1, cells, cells, generator=gen), size=size, mode="bicubic",
                          align_corners=False)  # fmt: skip
    depth, level = u(0.7, 1.0), u(0.3, 0.6)
    bands = 1 - depth * ((level - field) / 0.12).clamp(0, 1)  # dark where the field is below level
    grey = torch.where(torch.rand(n, 1, 1, 1, generator=gen) < p_bands, grey * bands, grey)
    grey = torch.where(torch.rand(n, 1, 1, 1, generator=gen) < p_flat, u(0.6, 1.0).expand_as(grey), grey)
    return grey * mask
