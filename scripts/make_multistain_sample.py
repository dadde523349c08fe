"""Build the bundled multi-stain sample (File > Open Sample > napari-karyo > Multi-stain IHC sections).

scikit-image's immunohistochemistry image (H-DAB, BSD-compatible, see samples/multistain/NOTICE.txt) is separated
into stain amounts (Ruifrok & Johnston's H-E-DAB matrix), a synthetic counterstain is derived from the tissue, and
the amounts are re-rendered with other stains' colours as four consecutive 'sections'. Each non-reference section is
warped by a known affine and cut to its own canvas size, so the sample comes with its true transforms
(moving -> reference pixels, the format of `core.pathology.transform.save_transforms`).

    .venv/bin/python scripts/make_multistain_sample.py [--out src/napari_karyo/samples/multistain]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from scipy import ndimage as ndi

from napari_karyo.core.pathology.stain import render
from napari_karyo.core.pathology.transform import Transform, save_transforms
from napari_karyo.core.storage.atomic import write_with

OUT = Path(__file__).resolve().parents[1] / "src/napari_karyo/samples/multistain"
REFERENCE = "HE"

# (stain name, nuclear stain OD vector, second stain OD vector, rotation deg, scale, shift (row, col), canvas)
SECTIONS = [
    ("HE", "hematoxylin", "eosin", 0.0, 1.0, (0.0, 0.0), (512, 512)),
    ("IHC", "hematoxylin", "dab", 14.0, 0.97, (18.0, -25.0), (500, 530)),
    ("Masson", "iron_hematoxylin", "aniline_blue", -11.0, 1.03, (-20.0, 12.0), (530, 505)),
    ("VG", "iron_hematoxylin", "picro_fuchsin", 24.0, 1.0, (10.0, 30.0), (520, 520)),
]


def stain_vectors() -> dict[str, np.ndarray]:
    from skimage import color

    return {
        "hematoxylin": color.rgb_from_hed[0],
        "eosin": color.rgb_from_hed[1],
        "dab": color.rgb_from_hed[2],
        "iron_hematoxylin": np.array([0.55, 0.60, 0.58]),  # near-black nuclei of Masson / van Gieson
        "aniline_blue": color.rgb_from_ahx[0],  # blue collagen (alcian blue's OD direction)
        "picro_fuchsin": color.rgb_from_fgx[0],  # red collagen (basic fuchsin's OD direction)
    }


def amounts(rgb: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Hematoxylin, DAB and a synthetic cytoplasm/collagen amount (tissue that is neither) from the IHC image."""
    from skimage.color import rgb2hed

    hed = np.maximum(rgb2hed(rgb), 0)
    h, d = hed[..., 0] / np.percentile(hed[..., 0], 99.5), hed[..., 2] / np.percentile(hed[..., 2], 99.5)
    od = -np.log((rgb.astype(np.float32).mean(-1) + 1) / 256)
    tissue = ndi.gaussian_filter(od, 2) / np.percentile(od, 99)
    counter = np.clip(tissue - 0.6 * h - 0.6 * d, 0, None)
    return np.clip(h, 0, 1.5), np.clip(d, 0, 1.5), np.clip(counter, 0, 1.5)


def warp_matrix(angle: float, scale: float, shift, fixed_shape, moving_shape) -> np.ndarray:
    """Affine taking MOVING (row, col) to FIXED (row, col): rotate/scale about the centres, then shift."""
    a = np.radians(angle)
    lin = scale * np.array([[np.cos(a), -np.sin(a)], [np.sin(a), np.cos(a)]])
    cf = (np.array(fixed_shape) - 1) / 2
    cm = (np.array(moving_shape) - 1) / 2
    m = np.eye(3)
    m[:2, :2] = lin
    m[:2, 2] = cf - lin @ cm + np.asarray(shift)
    return m


def make(out: Path, seed: int = 0) -> dict[str, Transform]:
    from PIL import Image
    from skimage.data import immunohistochemistry

    rng = np.random.default_rng(seed)
    vec = stain_vectors()
    h, d, counter = amounts(immunohistochemistry())
    second = {"eosin": counter, "dab": d, "aniline_blue": counter, "picro_fuchsin": counter}
    transforms = {}
    for name, nuc, other, angle, scale, shift, canvas in SECTIONS:
        conc = np.stack([h * (1.2 if nuc == "iron_hematoxylin" else 1.0), second[other]], -1)
        matrix = np.stack([vec[nuc], vec[other]]) / np.linalg.norm([vec[nuc], vec[other]], axis=1)[:, None]
        m = warp_matrix(angle, scale, shift, h.shape, canvas)
        # moving(p) = reference(m @ p): scipy pulls each output pixel from input coords m @ p
        warped = np.stack(
            [
                ndi.affine_transform(conc[..., k], m[:2, :2], m[:2, 2], output_shape=canvas, order=1)
                for k in range(2)
            ],
            -1,
        )
        rgb = render(warped, matrix).astype(np.float32) + rng.normal(0, 2.0, (*canvas, 3))
        rgb = np.clip(rgb, 0, 255).astype(np.uint8)
        write_with(
            out / f"{name}.jpg", lambda p, rgb=rgb: Image.fromarray(rgb).save(p, format="JPEG", quality=88)
        )
        transforms[name] = Transform(m)
    save_transforms(
        out / "true_transforms.json",
        transforms,
        {
            "reference": REFERENCE,
            "truth": True,
            "note": "ground truth of the synthetic warps (moving -> reference pixels); made by "
            "scripts/make_multistain_sample.py",
        },
    )
    return transforms


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", type=Path, default=OUT)
    args = p.parse_args()
    make(args.out)
    total = sum(f.stat().st_size for f in args.out.iterdir())
    print(f"wrote {args.out} ({total / 1e6:.2f} MB)")


if __name__ == "__main__":
    main()
