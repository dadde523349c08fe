"""M-FISH probe kits: which fluor planes a kit has, recognised from a cell's channel names.

Names compare case- and space-insensitively ("Cy 5.5" = "cy5.5" = "CY 5.5"). A kit is recognised when the cell's
names are exactly the kit's (any order); `kit=` overrides the recognition, and the cell must then hold every plane
of that kit. Planes are always handed to a model in the kit's order below (DAPI last).
"""

from __future__ import annotations

from napari_karyo.core.errors import KaryoError

KITS: dict[str, tuple[str, ...]] = {
    "A": ("Cy 5.5", "Cy 5", "S. Green", "S. Orange", "Texas Red", "DAPI"),  # ASI
    "P": ("532", "568", "Cy 5", "DEAC", "FITC", "DAPI"),  # PSI / Cytocell
    "V": ("S. Aqua", "Far Red", "S. Green", "S. Red", "S. Gold", "DAPI"),  # Vysis
}
DAPI = "DAPI"


class KitError(KaryoError):
    pass


def key(name: str) -> str:
    return "".join(str(name).split()).lower()


def recognise_kit(names: tuple[str, ...] | list[str], source: str = "cell", kit: str | None = None) -> str:
    """The kit whose planes `names` are; with `kit` given, check the cell holds that kit's planes."""
    have = {key(n) for n in names}
    if kit is not None:
        if kit not in KITS:
            raise KitError(
                f"{source}: unknown probe kit {kit!r}; use one of {', '.join(KITS)} or a --kit-model"
            )
        missing = [n for n in KITS[kit] if key(n) not in have]
        if missing:
            raise KitError(
                f"{source}: kit {kit} needs the planes {', '.join(KITS[kit])}; missing {', '.join(missing)} "
                f"(the cell has {', '.join(names)})"
            )
        return kit
    if key(DAPI) not in have:
        raise KitError(
            f"{source}: no DAPI plane among {', '.join(names)}; M-FISH needs the DAPI counterstain"
        )
    for name, planes in KITS.items():
        if have == {key(n) for n in planes}:
            return name
    close = max(KITS, key=lambda k: len(have & {key(n) for n in KITS[k]}))
    missing = [n for n in KITS[close] if key(n) not in have]
    unknown = [n for n in names if key(n) not in {key(p) for p in KITS[close]}]
    raise KitError(
        f"{source}: channel names {', '.join(names)} match no known probe kit (nearest: kit {close}"
        + (f", missing {', '.join(missing)}" if missing else "")
        + (f", unknown {', '.join(unknown)}" if unknown else "")
        + "). Rename the channels, pass --kit, train a model for your kit (napari-karyo train-kit) and pass "
        "--kit-model, or pass --dapi-only to name from DAPI alone"
    )


def plane_order(
    names: tuple[str, ...] | list[str], wanted: tuple[str, ...] | list[str], source: str
) -> list[int]:
    """Indices into `names` giving the planes `wanted`, in that order."""
    index = {key(n): i for i, n in enumerate(names)}
    missing = [w for w in wanted if key(w) not in index]
    if missing:
        raise KitError(
            f"{source}: missing the plane(s) {', '.join(missing)} (the cell has {', '.join(names)})"
        )
    return [index[key(w)] for w in wanted]
