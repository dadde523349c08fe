"""Probe kits recognised from channel names (case- and space-insensitive), `--kit` checks, clear refusals."""

import pytest

from napari_karyo.core.karyotype.mfish.kits import KITS, KitError, plane_order, recognise_kit


@pytest.mark.parametrize("kit", sorted(KITS))
def test_each_kit_is_recognised_in_any_order_and_spelling(kit):
    names = [n.upper().replace(" ", "") for n in reversed(KITS[kit])]
    assert recognise_kit(names) == kit


def test_unknown_names_say_what_is_missing_and_what_to_do():
    names = ["DAPI", "Cy 5.5", "Cy 5", "S. Green", "S. Orange", "Alexa 647"]
    with pytest.raises(
        KitError, match=r"cell.ome.tif: .*nearest: kit A, missing Texas Red, unknown Alexa 647.*train-kit"
    ):
        recognise_kit(names, "cell.ome.tif")


def test_no_dapi_is_refused():
    with pytest.raises(KitError, match="no DAPI plane"):
        recognise_kit(["Cy 5", "FITC"], "x.tif")


def test_kit_override_needs_every_plane_of_that_kit():
    assert recognise_kit(list(KITS["P"]) + ["extra"], kit="P") == "P"
    with pytest.raises(KitError, match="kit A needs .* missing Texas Red"):
        recognise_kit(list(KITS["A"][:4]) + ["DAPI"], "c.tif", kit="A")


def test_plane_order_follows_the_model():
    names = ("dapi", "texasred", "cy5.5", "cy 5", "S.Green", "s. orange")
    assert plane_order(names, KITS["A"], "c") == [2, 3, 4, 5, 1, 0]
