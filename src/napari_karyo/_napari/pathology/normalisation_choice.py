"""The stain normalisation chosen in either pathology dock is the one both use: the Multi-stain dock's method
(Normalise stain) and the Lesion classifier's colour normalisation (Train). Kept in the user's settings
(`stain_normalisation`), so it also holds for the next session, and handed to the other open dock at once."""

from __future__ import annotations

from napari_karyo.core.storage.settings import change_setting, setting


def chosen_normalisation() -> str:
    return setting("stain_normalisation")


def choose_normalisation(viewer, method: str) -> None:
    """Remember `method` and tell every open dock that follows the choice (`follow_normalisation`)."""
    if method != setting("stain_normalisation"):
        change_setting("stain_normalisation", method)
    window = getattr(viewer, "window", None)
    for widget in list(getattr(window, "dock_widgets", {}).values()) if window is not None else []:
        follow = getattr(widget, "follow_normalisation", None)
        if follow is not None:
            follow(method)
