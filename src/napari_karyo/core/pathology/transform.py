"""One stain's registration transform: an affine plus an optional smooth displacement field, JSON-able.

Coordinates are (row, col) pixels of the FULL-resolution images. A `Transform` maps MOVING coords to FIXED
(reference) coords in two steps:

    y = affine @ (row, col, 1)            # the rigid / affine part, what napari's layer.affine shows
    fixed = y + d(y)                      # d: displacement (2, h, w) on a grid of `displacement_spacing`
                                          #    fixed pixels (node (i, j) sits at fixed (i*s, j*s)), bilinear

Warping an image pulls every fixed pixel back: y solves y + d(y) = x (a fixed-point iteration, which converges
for the smooth, small fields registration produces), then moving = affine^-1 @ y.
"""

from __future__ import annotations

import base64
import json
import os
from dataclasses import dataclass, field

import numpy as np

from napari_karyo.core.errors import KaryoError
from napari_karyo.core.storage.atomic import write_json

FORMAT = "napari-karyo-transforms"
VERSION = 1
_INVERSE_ITERATIONS = 8
_BLOCK_PIXELS = 1 << 21  # warp this many fixed pixels at a time: memory stays bounded on huge levels


class TransformError(KaryoError):
    """A transform file or a set of landmarks that cannot make a transform."""


def _sample_field(field: np.ndarray, spacing: float, rc: np.ndarray) -> np.ndarray:
    """Bilinear sample of a (2, h, w) field at fixed coords rc (n, 2); edge values beyond the grid."""
    from scipy.ndimage import map_coordinates

    grid = (np.asarray(rc, np.float64) / spacing).T
    return np.stack([map_coordinates(f, grid, order=1, mode="nearest") for f in field], axis=1)


@dataclass
class Transform:
    affine: np.ndarray
    displacement: np.ndarray | None = None
    displacement_spacing: float = 1.0
    _inverse: np.ndarray | None = field(default=None, init=False, repr=False, compare=False)
    _coords: tuple | None = field(default=None, init=False, repr=False, compare=False)

    def __post_init__(self):
        self.affine = np.asarray(self.affine, np.float64).reshape(3, 3)
        if self.displacement is not None:
            self.displacement = np.asarray(self.displacement, np.float32)
            if self.displacement.ndim != 3 or self.displacement.shape[0] != 2:
                raise TransformError(f"displacement must be (2, h, w), got {self.displacement.shape}")

    # ---- construction -------------------------------------------------------------------------------
    @classmethod
    def identity(cls) -> Transform:
        return cls(np.eye(3))

    @classmethod
    def from_matrix_2x3(cls, m: np.ndarray) -> Transform:
        return cls(np.vstack([np.asarray(m, np.float64).reshape(2, 3), [0.0, 0.0, 1.0]]))

    @classmethod
    def from_landmarks(cls, fixed_rc, moving_rc, kind: str = "affine") -> Transform:
        """Least-squares transform taking moving landmarks onto fixed ones (the user's fix of a bad pair).

        kind: "affine" (>= 3 pairs), "similarity" (rotation + uniform scale + shift) or "rigid" (>= 2 pairs).
        """
        f = np.asarray(fixed_rc, np.float64).reshape(-1, 2)
        m = np.asarray(moving_rc, np.float64).reshape(-1, 2)
        if len(f) != len(m):
            raise TransformError(f"{len(f)} fixed but {len(m)} moving landmarks: give them in pairs")
        need = 3 if kind == "affine" else 2
        if kind not in ("affine", "similarity", "rigid"):
            raise TransformError(f"unknown transform kind {kind!r}: use affine, similarity or rigid")
        if len(f) < need:
            raise TransformError(f"a {kind} transform needs at least {need} landmark pairs, got {len(f)}")
        if kind == "affine":
            design = np.hstack([m, np.ones((len(m), 1))])
            sol, *_ = np.linalg.lstsq(design, f, rcond=None)
            if np.linalg.matrix_rank(design) < 3:
                raise TransformError("the landmarks lie on one line: place at least 3 that span the tissue")
            return cls.from_matrix_2x3(sol.T)
        # Umeyama: the best rotation (and scale) between the centred point sets
        mf, mm = f.mean(0), m.mean(0)
        fc, mc = f - mf, m - mm
        u, s, vt = np.linalg.svd(fc.T @ mc)
        sign = np.diag([1.0, np.sign(np.linalg.det(u @ vt)) or 1.0])
        rot = u @ sign @ vt
        scale = 1.0
        if kind == "similarity":
            var = (mc**2).sum()
            if var == 0:
                raise TransformError("all moving landmarks are at one place: spread them over the tissue")
            scale = float((s * np.diag(sign)).sum() / var)
        a = np.eye(3)
        a[:2, :2] = scale * rot
        a[:2, 2] = mf - scale * rot @ mm
        return cls(a)

    # ---- algebra ------------------------------------------------------------------------------------
    def is_rigid_only(self) -> bool:
        return self.displacement is None

    def compose(self, other: Transform) -> Transform:
        """`self` after `other`: points go through `other` first, then `self` (moving -> other's -> self's frame).

        Pure affines multiply exactly. With a displacement, the combined non-affine remainder is resampled on a
        grid covering the final frame (this transform's grid, or the other's carried through the affine).
        """
        affine = self.affine @ other.affine
        if self.is_rigid_only() and other.is_rigid_only():
            return Transform(affine)
        spacing = self.displacement_spacing if self.displacement is not None else other.displacement_spacing
        if self.displacement is not None:
            shape = self.displacement.shape[1:]
        else:
            h, w = other.displacement.shape[1:]
            corners = np.array([[0, 0], [0, w - 1], [h - 1, 0], [h - 1, w - 1]], float) * spacing
            far = _apply_affine(self.affine, corners).max(0)
            shape = tuple(int(np.ceil(max(v, 0) / spacing)) + 1 for v in far)
        grid = np.stack(np.meshgrid(np.arange(shape[0]), np.arange(shape[1]), indexing="ij"), -1)
        z = grid.reshape(-1, 2) * spacing
        m = _apply_affine(np.linalg.inv(affine), z)
        residual = self.map_points(other.map_points(m)) - z
        return Transform(affine, residual.T.reshape(2, *shape).astype(np.float32), spacing)

    def inverse(self) -> Transform:
        """The fixed -> moving transform (affine part only: a displacement has no closed-form inverse here)."""
        if not self.is_rigid_only():
            raise TransformError("inverse() needs a transform without a displacement; use inverse_map_points")
        return Transform(np.linalg.inv(self.affine))

    def rescaled(self, factor: float) -> Transform:
        """The same mapping expressed on images resized by `factor` (pixel centres aligned, as skimage resize).

        x' = factor * x + (factor - 1) / 2 on both sides; the displacement's spacing and values scale by factor.
        """
        from scipy.ndimage import shift

        offset = (factor - 1) / 2
        c = np.array([[factor, 0, offset], [0, factor, offset], [0, 0, 1.0]])
        disp = None
        if self.displacement is not None:
            # new node j sits at new j*s*factor = old j*s - offset/factor: resample the field there
            nodes = offset / (factor * self.displacement_spacing)
            disp = np.stack(
                [shift(f, nodes, order=1, mode="nearest") for f in self.displacement]
            ) * np.float32(factor)
        return Transform(c @ self.affine @ np.linalg.inv(c), disp, self.displacement_spacing * factor)

    # ---- application --------------------------------------------------------------------------------
    def map_points(self, moving_rc: np.ndarray) -> np.ndarray:
        """(n, 2) moving (row, col) -> fixed (row, col): Points data and Shapes vertices."""
        y = _apply_affine(self.affine, np.asarray(moving_rc, np.float64).reshape(-1, 2))
        if self.displacement is not None and len(y):
            y = y + _sample_field(self.displacement, self.displacement_spacing, y)
        return y

    def inverse_displacement(self) -> np.ndarray:
        """e (2, h, w) on the displacement's grid with y = x + e(x) solving y + d(y) = x: inverted once on the
        nodes (a fixed-point iteration, which converges for smooth small fields), then sampled like d."""
        if self._inverse is None:
            h, w = self.displacement.shape[1:]
            nodes = np.stack(np.mgrid[0:h, 0:w], -1).reshape(-1, 2) * self.displacement_spacing
            e = np.zeros_like(nodes)
            for _ in range(_INVERSE_ITERATIONS):
                e = -_sample_field(self.displacement, self.displacement_spacing, nodes + e)
            self._inverse = e.T.reshape(2, h, w).astype(np.float32)
        return self._inverse

    def inverse_map_points(self, fixed_rc: np.ndarray, iterations: int = _INVERSE_ITERATIONS) -> np.ndarray:
        """(n, 2) fixed (row, col) -> moving (row, col).

        Starts from the node-wise inverse field, then `iterations` steps of y = x - d(y) make it exact; images
        use 2 (the start is within a few hundredths of a pixel for registration's smooth fields).
        """
        x = np.asarray(fixed_rc, np.float64).reshape(-1, 2)
        y = x
        if self.displacement is not None and len(x):
            y = x + _sample_field(self.inverse_displacement(), self.displacement_spacing, x)
            for _ in range(iterations):
                y = x - _sample_field(self.displacement, self.displacement_spacing, y)
        return _apply_affine(np.linalg.inv(self.affine), y)

    def _source_coords(self, r0: int, r1: int, width: int) -> np.ndarray:
        """(2, n) moving coords of fixed rows r0:r1; the last block is kept: registration warps several images
        through one candidate transform onto the same grid."""
        key = (r0, r1, width)
        if self._coords is not None and self._coords[0] == key:
            return self._coords[1]
        rr, cc = np.mgrid[r0:r1, 0:width]
        src = self.inverse_map_points(np.stack([rr.ravel(), cc.ravel()], 1), 2).T.astype(np.float32)
        self._coords = (key, src)
        return src

    def warp_image(self, moving: np.ndarray, fixed_shape, order: int = 1) -> np.ndarray:
        """Resample a grey (h, w) or channels-last (h, w, c) image into the fixed grid; outside is 0.

        The dtype is kept (rounded for integers). Works block by block on huge outputs.
        """
        from scipy.ndimage import map_coordinates

        moving = np.asarray(moving)
        out_shape = tuple(fixed_shape[:2]) + moving.shape[2:]
        out = np.zeros(out_shape, moving.dtype)
        integer = np.issubdtype(moving.dtype, np.integer) or moving.dtype == bool
        rows_per_block = max(1, _BLOCK_PIXELS // max(1, out_shape[1]))
        channels = [moving] if moving.ndim == 2 else [moving[..., k] for k in range(moving.shape[2])]
        for r0 in range(0, out_shape[0], rows_per_block):
            r1 = min(out_shape[0], r0 + rows_per_block)
            src = self._source_coords(r0, r1, out_shape[1])
            for k, ch in enumerate(channels):
                ch = ch.view(np.uint8) if ch.dtype == bool else ch  # ndimage does not take bool input
                vals = map_coordinates(
                    ch,
                    src,
                    order=order,
                    mode="constant",
                    cval=0,
                    prefilter=order > 1,
                    output=np.float64 if integer and ch.dtype.itemsize >= 4 else np.float32,
                )
                if integer and order > 0:
                    info = np.iinfo(moving.dtype) if moving.dtype != bool else None
                    vals = np.rint(vals)
                    if info is not None:
                        vals = np.clip(vals, info.min, info.max)
                block = vals.reshape(r1 - r0, out_shape[1]).astype(moving.dtype)
                if moving.ndim == 2:
                    out[r0:r1] = block
                else:
                    out[r0:r1, :, k] = block
        return out

    def warp_labels(self, moving_labels: np.ndarray, fixed_shape) -> np.ndarray:
        """Nearest-neighbour resampling: label ids are kept, never blended."""
        return self.warp_image(moving_labels, fixed_shape, order=0)

    def napari_affine(self) -> np.ndarray:
        """3x3 for a 2-D napari layer's `affine` (data -> world, world = the fixed image's pixels)."""
        return self.affine.copy()

    # ---- files --------------------------------------------------------------------------------------
    def to_dict(self) -> dict:
        d: dict = {"affine": self.affine.tolist()}
        if self.displacement is not None:
            d["displacement"] = {
                "shape": list(self.displacement.shape),
                "spacing": float(self.displacement_spacing),
                "dtype": "float32-le",
                "base64": base64.b64encode(self.displacement.astype("<f4").tobytes()).decode("ascii"),
            }
        return d

    @classmethod
    def from_dict(cls, d: dict) -> Transform:
        try:
            affine = np.asarray(d["affine"], np.float64)
            disp, spacing = None, 1.0
            if d.get("displacement") is not None:
                f = d["displacement"]
                if f.get("dtype") != "float32-le":
                    raise TransformError(f"unsupported displacement dtype {f.get('dtype')!r}")
                disp = np.frombuffer(base64.b64decode(f["base64"]), "<f4").reshape(f["shape"]).copy()
                spacing = float(f["spacing"])
            return cls(affine, disp, spacing)
        except (KeyError, TypeError, ValueError) as exc:
            raise TransformError(f"not a valid transform entry ({exc})") from exc


def _apply_affine(a: np.ndarray, rc: np.ndarray) -> np.ndarray:
    return rc @ a[:2, :2].T + a[:2, 2]


def save_transforms(path: str | os.PathLike, transforms: dict[str, Transform], meta: dict) -> None:
    """Write one transform per stain (stain name -> Transform, moving -> reference) and free-form meta, atomically."""

    doc = {
        "format": FORMAT,
        "version": VERSION,
        "meta": meta,
        "transforms": {name: t.to_dict() for name, t in transforms.items()},
    }
    write_json(path, doc)


def load_transforms(path: str | os.PathLike) -> tuple[dict[str, Transform], dict]:
    try:
        with open(path, encoding="utf-8") as fh:
            doc = json.load(fh)
    except (OSError, ValueError) as exc:
        raise TransformError(f"cannot read transforms file {path}: {exc}. Re-run the registration.") from exc
    if not isinstance(doc, dict) or doc.get("format") != FORMAT:
        raise TransformError(f"{path} is not a napari-karyo transforms file (format {FORMAT!r} expected)")
    if doc.get("version", 0) > VERSION:
        raise TransformError(
            f"{path} was written by a newer napari-karyo (version {doc['version']}): upgrade"
        )
    try:
        transforms = {name: Transform.from_dict(d) for name, d in doc["transforms"].items()}
    except TransformError as exc:
        raise TransformError(f"{path}: {exc}") from exc
    return transforms, doc.get("meta", {})
