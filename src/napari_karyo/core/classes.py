"""The 24 chromosome classes: ids, ISCN names, Denver groups and the one colour palette.

Class ids follow the data sets and the output contract: 1-22 autosomes, 23 = X, 24 = Y.
"""

from __future__ import annotations

N_CLASSES = 24
CLASS_IDS: tuple[int, ...] = tuple(range(1, N_CLASSES + 1))
NAMES: dict[int, str] = {i: str(i) for i in range(1, 23)} | {23: "X", 24: "Y"}
IDS_BY_NAME: dict[str, int] = {v: k for k, v in NAMES.items()}

# Denver groups as laid out on a karyogram (ISCN); X goes with C, Y with G by size but is shown last.
GROUPS: dict[str, tuple[int, ...]] = {
    "A": (1, 2, 3),
    "B": (4, 5),
    "C": (6, 7, 8, 9, 10, 11, 12),
    "D": (13, 14, 15),
    "E": (16, 17, 18),
    "F": (19, 20),
    "G": (21, 22),
    "XY": (23, 24),
}


# Relative length (% of the haploid autosome set) per class, ISCN standard values; used to judge sizes.
RELATIVE_LENGTH: dict[int, float] = {
    1: 8.44,
    2: 8.02,
    3: 6.83,
    4: 6.30,
    5: 6.08,
    6: 5.90,
    7: 5.36,
    8: 4.93,
    9: 4.80,
    10: 4.59,
    11: 4.61,
    12: 4.66,
    13: 3.74,
    14: 3.56,
    15: 3.46,
    16: 3.36,
    17: 3.25,
    18: 2.93,
    19: 2.67,
    20: 2.56,
    21: 1.90,
    22: 2.04,
    23: 5.12,
    24: 2.15,
}

# Centromeric index (100 * p / (p + q)) per class: the ISCN (1978) table of mean relative lengths and centromeric
# indices from the Paris Conference (1971) measurements, the same table RELATIVE_LENGTH comes from (e.g. as
# reproduced in Therman & Susman, "Human Chromosomes", and Rooney, "Human Cytogenetics").
CENTROMERIC_INDEX: dict[int, float] = {
    1: 48.36,
    2: 39.23,
    3: 46.95,
    4: 29.07,
    5: 29.25,
    6: 39.05,
    7: 39.05,
    8: 34.08,
    9: 35.43,
    10: 33.95,
    11: 40.14,
    12: 30.16,
    13: 17.08,
    14: 18.74,
    15: 20.30,
    16: 41.33,
    17: 33.86,
    18: 30.34,
    19: 46.54,
    20: 45.45,
    21: 30.89,
    22: 32.46,
    23: 40.12,
    24: 27.17,
}


def name(class_id: int) -> str:
    """ISCN name of a class id ('1'..'22', 'X', 'Y'); 0 or unknown ids give '?'."""
    return NAMES.get(int(class_id), "?")


def class_id(label: str | int) -> int:
    """Class id from an ISCN name or a number ('21', 21, 'x', '23' all work)."""
    text = str(label).strip().upper()
    if text in IDS_BY_NAME:
        return IDS_BY_NAME[text]
    if text.isdigit() and int(text) in NAMES:
        return int(text)
    raise ValueError(f"unknown chromosome class {label!r}: expected 1-22, X or Y")


def group(class_id: int) -> str:
    for g, members in GROUPS.items():
        if class_id in members:
            return g
    return "?"


def _palette() -> dict[int, tuple[float, float, float, float]]:
    """24 well-separated colours; pairs of neighbouring classes differ in hue and lightness."""
    import colorsys

    colours = {0: (0.55, 0.55, 0.55, 1.0)}  # 0 = not yet named
    for i in CLASS_IDS:
        hue = ((i - 1) * 0.381966) % 1.0  # golden-ratio steps keep neighbours apart
        light = 0.45 if i % 2 else 0.62
        r, g, b = colorsys.hls_to_rgb(hue, light, 0.85)
        colours[i] = (round(r, 4), round(g, 4), round(b, 4), 1.0)
    return colours


PALETTE: dict[int, tuple[float, float, float, float]] = _palette()


def colour(class_id: int) -> tuple[float, float, float, float]:
    """RGBA (0-1) of a class; unnamed objects are grey."""
    return PALETTE.get(int(class_id), PALETTE[0])
