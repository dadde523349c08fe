"""Stain separation and colour normalisation of bright-field RGB images (Macenko, Vahadane).

Beer-Lambert: optical density OD = -ln(I / I0) is linear in the stain amounts, OD = C @ W, with one unit OD
vector per stain in the rows of W (here 2 stains x RGB). Normalisation estimates W and C of an image, rescales each
stain's concentrations to the reference's 99th percentile and re-renders with the reference matrix.

- Macenko (2009): the two extreme angles of the tissue OD cloud in its principal plane.
- Vahadane (2016): sparse non-negative factorisation OD ~ C W (L1 on C). Implemented here with multiplicative
  updates started from the Macenko estimate on a seeded pixel sample, so it is deterministic and needs no `spams`
  (staintools' dependency, unmaintained) and does not jump between local minima (tiatoolbox's warning).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from napari_karyo.core.errors import KaryoError

I0 = 240.0  # background intensity: scanners' white is rarely 255 (same as torchstain)
BETA = 0.15  # OD below this in any channel is background or glass
ALPHA = 1.0  # Macenko's robust extreme-angle percentile
MAX_FIT_PIXELS = 200_000  # fitting on a seeded sample keeps large images cheap and bounded in memory
METHODS = ("macenko", "vahadane")
# Vahadane: L1 weight on the concentrations (0.1 in the paper biased the vectors by up to 6 degrees on synthetic
# images of known stains, seeds < 100; 0.02 keeps the sparsity prior without that bias), iterations, fit sample
VAHADANE_LAMBDA = 0.02
VAHADANE_ITERS = 200
VAHADANE_PIXELS = 20_000


class StainError(KaryoError):
    """An image that cannot be separated into stains (blank slide, too little tissue, grey image)."""


@dataclass(frozen=True)
class StainReference:
    """Stain matrix (rows: unit OD vectors, first = haematoxylin-like) and 99th-percentile concentrations."""

    matrix: np.ndarray
    max_conc: np.ndarray
    names: tuple[str, ...] = ("H", "E")
    source: str = ""

    def to_dict(self) -> dict:
        return {
            "matrix": np.asarray(self.matrix).tolist(),
            "max_conc": np.asarray(self.max_conc).tolist(),
            "names": list(self.names),
            "source": self.source,
        }


def optical_density(rgb: np.ndarray, i0: float = I0) -> np.ndarray:
    """(..., 3) RGB -> (..., 3) float32 OD, natural log; 0 on glass."""
    rgb = np.asarray(rgb)
    if rgb.ndim != 3 or rgb.shape[-1] not in (3, 4):
        raise StainError(f"stain separation needs an RGB image, got shape {rgb.shape}")
    rgb = rgb[..., :3].astype(np.float32)
    if rgb.max(initial=0) <= 1.0:  # float images in 0..1
        rgb = rgb * 255.0
    return np.maximum(-np.log((rgb + 1.0) / i0), 0.0).astype(np.float32)


def tissue_od(rgb: np.ndarray, beta: float = BETA, max_pixels: int = MAX_FIT_PIXELS, seed: int = 0):
    """OD rows (N, 3) of tissue pixels (OD >= beta in every channel), a seeded sample of at most max_pixels."""
    return _tissue_sample(optical_density(rgb).reshape(-1, 3), beta, max_pixels, seed)


def _tissue_sample(od: np.ndarray, beta: float = BETA, max_pixels: int = MAX_FIT_PIXELS, seed: int = 0):
    od = od[np.all(od >= beta, axis=1)]
    if len(od) > max_pixels:
        od = od[np.random.default_rng(seed).choice(len(od), max_pixels, replace=False)]
    return od


def _order(matrix: np.ndarray) -> np.ndarray:
    """Haematoxylin (larger red OD) first, so results of both methods and of any image line up."""
    matrix = matrix / np.linalg.norm(matrix, axis=1, keepdims=True)
    return matrix if matrix[0, 0] >= matrix[1, 0] else matrix[::-1].copy()


def _check_tissue(od: np.ndarray, what: str) -> None:
    if len(od) < 100:
        raise StainError(
            f"{what}: too little stained tissue to separate stains ({len(od)} pixels above OD {BETA}); "
            "pick a region or slide with tissue, or check the image is bright-field RGB"
        )


def macenko_matrix(rgb: np.ndarray, *, alpha: float = ALPHA, what: str = "image") -> np.ndarray:
    """(2, 3) unit stain vectors by Macenko's method."""
    od = tissue_od(rgb)
    _check_tissue(od, what)
    return _macenko_from_od(od, alpha, what)


def _macenko_from_od(od: np.ndarray, alpha: float, what: str) -> np.ndarray:
    _, vecs = np.linalg.eigh(np.cov(od.T.astype(np.float64)))
    plane = vecs[:, 1:3]  # the two largest components
    # eigenvector signs are arbitrary: point both axes into the positive OD octant
    plane = plane * np.where(plane.sum(axis=0) < 0, -1.0, 1.0)
    proj = od @ plane
    phi = np.arctan2(proj[:, 1], proj[:, 0])
    lo, hi = np.percentile(phi, [alpha, 100 - alpha])
    v = np.stack([plane @ [np.cos(lo), np.sin(lo)], plane @ [np.cos(hi), np.sin(hi)]])
    if np.any(np.linalg.norm(v, axis=1) < 1e-6) or np.abs(np.cross(v[0], v[1])).sum() < 1e-4:
        raise StainError(f"{what}: only one stain colour found; stain separation needs two stains")
    return _order(np.clip(v, 1e-6, None))


def vahadane_matrix(
    rgb: np.ndarray,
    *,
    lam: float = VAHADANE_LAMBDA,
    iters: int = VAHADANE_ITERS,
    max_pixels: int = VAHADANE_PIXELS,
    what: str = "image",
) -> np.ndarray:
    """(2, 3) unit stain vectors by sparse NMF (Vahadane), started from Macenko on the same seeded sample."""
    od = tissue_od(rgb, max_pixels=max_pixels)
    _check_tissue(od, what)
    return _vahadane_from_od(od, lam, iters, what)


def _vahadane_from_od(od: np.ndarray, lam: float, iters: int, what: str) -> np.ndarray:
    od = od.astype(np.float64)
    w = _macenko_from_od(od, ALPHA, what)
    c = np.maximum(od @ np.linalg.pinv(w), 1e-4)
    eps = 1e-9
    for _ in range(iters):
        # C step: non-negative lasso (L1 weight lam) by multiplicative update
        c *= (od @ w.T) / (c @ (w @ w.T) + lam + eps)
        # W step: non-negative least squares by multiplicative update, then unit rows (scale moves into C)
        w *= (c.T @ od) / ((c.T @ c) @ w + eps)
        norms = np.linalg.norm(w, axis=1, keepdims=True) + eps
        w /= norms
        c *= norms.T
    if np.any(c.max(axis=0) < 1e-3):
        raise StainError(f"{what}: only one stain colour found; stain separation needs two stains")
    return _order(w)


def stain_matrix(rgb: np.ndarray, method: str = "macenko", *, what: str = "image") -> np.ndarray:
    return _fit(optical_density(rgb), method, what)[0]


def _fit(od: np.ndarray, method: str, what: str) -> tuple[np.ndarray, np.ndarray]:
    """Stain matrix and the 99th-percentile concentrations of the tissue, from an OD image (computed once)."""
    if method not in METHODS:
        raise StainError(f"unknown stain method {method!r}; use one of {', '.join(METHODS)}")
    flat = od.reshape(-1, 3)
    if method == "macenko":
        tissue = _tissue_sample(flat)
        _check_tissue(tissue, what)
        matrix = _macenko_from_od(tissue, ALPHA, what)
    else:
        tissue = _tissue_sample(flat, max_pixels=VAHADANE_PIXELS)
        _check_tissue(tissue, what)
        matrix = _vahadane_from_od(tissue, VAHADANE_LAMBDA, VAHADANE_ITERS, what)
    conc = np.maximum(tissue @ np.linalg.pinv(matrix), 0.0)
    return matrix, np.percentile(conc, 99, axis=0)


def concentrations(rgb: np.ndarray, matrix: np.ndarray) -> np.ndarray:
    """(H, W, k) non-negative stain amounts for stain matrix (k, 3), by least squares per pixel."""
    return _concentrations(optical_density(rgb), matrix)


def _concentrations(od: np.ndarray, matrix: np.ndarray) -> np.ndarray:
    pinv = np.linalg.pinv(np.asarray(matrix, dtype=np.float32)).astype(np.float32)  # (3, k)
    return np.maximum(od @ pinv, 0.0)


def fit_reference(
    rgb: np.ndarray, method: str = "macenko", *, names=("H", "E"), source: str = ""
) -> StainReference:
    """A normalisation target from an image (a user-chosen well-stained slide)."""
    matrix, max_conc = _fit(optical_density(rgb), method, source or "reference image")
    return StainReference(matrix, max_conc, tuple(names), source or f"fitted ({method})")


def render(conc: np.ndarray, matrix: np.ndarray, i0: float = I0) -> np.ndarray:
    """Stain amounts (H, W, k) and matrix (k, 3) -> uint8 RGB."""
    od = conc.astype(np.float32) @ np.asarray(matrix, dtype=np.float32)
    return np.clip(i0 * np.exp(-od), 0, 255).astype(np.uint8)


def normalise(
    rgb: np.ndarray, reference: StainReference | str = "H&E", method: str = "macenko", *, what: str = "image"
) -> np.ndarray:
    """`rgb` re-rendered with the reference's stain colours and concentration range (uint8 RGB)."""
    return fitted_normaliser(rgb, reference, method, what=what)(rgb)


def fitted_normaliser(
    rgb: np.ndarray, reference: StainReference | str = "H&E", method: str = "macenko", *, what: str = "image"
):
    """`normalise` in two steps: fitted on `rgb` (a whole slide's low level), applied to any image of the same
    slide (its tiles), so every tile gets the same colour mapping."""
    ref = bundled_reference(reference) if isinstance(reference, str) else reference
    matrix, max_conc = _fit(optical_density(rgb), method, what)
    scale = (ref.max_conc / np.maximum(max_conc, 1e-6)).astype(np.float32)
    return lambda image: render(_concentrations(optical_density(image), matrix) * scale, ref.matrix)


def stain_channels(
    rgb: np.ndarray, method: str = "macenko", names=("H", "E"), *, what: str = "image"
) -> dict:
    """Optical density (summed over RGB) and one concentration map per stain, as float32 (H, W) arrays."""
    od = optical_density(rgb)
    conc = _concentrations(od, _fit(od, method, what)[0])
    out = {"OD": od.sum(axis=-1)}
    for k, name in enumerate(names[: conc.shape[-1]]):
        out[name] = conc[..., k]
    return out


# ---- bundled references -------------------------------------------------------------------------------------

REFERENCES = ("H&E", "H-DAB")


def bundled_reference(name: str) -> StainReference:
    """'H&E': Macenko et al.'s reference (as shipped by torchstain, MIT). 'H-DAB': fitted (Macenko) on
    scikit-image's immunohistochemistry sample (BSD), which ships with scikit-image."""
    if name == "H&E":
        matrix = np.array([[0.5626, 0.7201, 0.4062], [0.2159, 0.8012, 0.5581]])
        return StainReference(
            _order(matrix), np.array([1.9705, 1.0308]), ("H", "E"), "Macenko 2009 / torchstain"
        )
    if name == "H-DAB":
        return _hdab_reference()
    raise StainError(
        f"unknown stain reference {name!r}; use one of {', '.join(REFERENCES)} or fit one from an image"
    )


@lru_cache(maxsize=1)
def _hdab_reference() -> StainReference:
    from skimage.data import immunohistochemistry

    ref = fit_reference(immunohistochemistry(), "macenko", names=("H", "DAB"))
    return StainReference(
        ref.matrix, ref.max_conc, ("H", "DAB"), "scikit-image immunohistochemistry (Macenko)"
    )


def angular_error_deg(estimated: np.ndarray, truth: np.ndarray) -> np.ndarray:
    """Angle in degrees between matched unit stain vectors, matching rows in the better of both orders."""
    est = estimated / np.linalg.norm(estimated, axis=1, keepdims=True)
    tru = truth / np.linalg.norm(truth, axis=1, keepdims=True)

    def angles(a, b):
        return np.degrees(np.arccos(np.clip(np.sum(a * b, axis=1), -1.0, 1.0)))

    straight, swapped = angles(est, tru), angles(est[::-1], tru)
    return straight if straight.max() <= swapped.max() else swapped


def synthetic_stained(matrix: np.ndarray, shape=(256, 256), seed: int = 0, noise: float = 2.0) -> np.ndarray:
    """A tissue-like uint8 RGB image made from a known 2-stain matrix (rows: OD vectors): round 'nuclei' of
    stain 0 in a smooth 'stroma' of stain 1 (mixed at the nuclear rims), glass around, sensor noise.
    For tests and benchmarks."""
    from scipy import ndimage as ndi

    rng = np.random.default_rng(seed)
    h, w = shape
    tissue = ndi.gaussian_filter(rng.normal(size=shape), max(h, w) / 16)
    tissue = tissue > np.quantile(tissue, 0.3)
    # nuclei: discs of radius 3-5 px with a 1.5 px soft rim, so each has a core of pure stain 0 (as real ones do)
    dist, (ri, ci) = ndi.distance_transform_edt(rng.random(shape) >= 3e-3, return_indices=True)
    radius = rng.uniform(3, 5, shape)[ri, ci]
    nuclei = np.clip((radius - dist) / 1.5, 0, 1) * tissue
    stroma = ndi.gaussian_filter(rng.random(shape), 6)
    stroma = (0.3 + 2.0 * (stroma - stroma.min()) / (np.ptp(stroma) + 1e-6)) * tissue * (1 - nuclei)
    conc = np.stack([1.4 * nuclei, stroma], axis=-1).astype(np.float32)
    matrix = np.asarray(matrix, dtype=np.float32)[:2]
    matrix = matrix / np.linalg.norm(matrix, axis=1, keepdims=True)
    rgb = I0 * np.exp(-(conc @ matrix)) + rng.normal(0, noise, (*shape, 3))
    return np.clip(rgb, 0, 255).astype(np.uint8)
