"""ISCN strings for numerical karyotypes: writing, parsing, M-FISH Case Info records, case-level [n] notation."""

import pytest

from napari_karyo.core.iscn import (
    UnsupportedKaryotype,
    iscn,
    karyotype_of,
    parse_iscn,
    read_case_info,
)
from napari_karyo.core.karyotype.report.case import case_iscn

TWO_EACH = [c for c in range(1, 23) for _ in range(2)]


@pytest.mark.parametrize(
    ("ids", "expected"),
    [
        (TWO_EACH + [23, 24], "46,XY"),
        (TWO_EACH + [23, 23], "46,XX"),
        (TWO_EACH + [21, 23, 24], "47,XY,+21"),
        (TWO_EACH + [23], "45,X"),
        (TWO_EACH + [23, 23, 24], "47,XXY"),
        ([c for c in TWO_EACH if c != 15] + [15, 23, 24, 0, 0], "45,XY,-15"),  # 0 = not counted
        (TWO_EACH + [21, 21, 23, 24], "48,XY,+21,+21"),
        (
            [c for c in TWO_EACH if c != 7] + [8, 8, 23, 23],
            "46,XX,-7,-7,+8,+8",
        ),  # chromosome order, not by sign
    ],
)
def test_iscn_from_class_ids(ids, expected):
    assert iscn(ids) == expected


def test_iscn_from_counts_and_sex_override():
    counts = {str(c): 2 for c in range(1, 23)} | {"X": 1, "Y": 1, "21": 3}
    assert iscn(counts) == "47,XY,+21"
    assert iscn({c: 2 for c in range(1, 23)} | {13: 1}, sex="XX") == "45,XX,-13"
    with pytest.raises(ValueError, match="sex complement"):
        iscn(TWO_EACH, sex="XZ")


@pytest.mark.parametrize(
    "text",
    [
        "46,XX",
        "47,XY,+21",
        "45,X",
        "47,XXY",
        "45,XY,-15",
        "41,XX,-5,-6,-7,-9,-22",
        "50,XY,+7,+8,+15,+20",
        "43,XX,-7,-22,-22",
    ],
)
def test_parse_round_trips(text):
    kt = parse_iscn(text)
    assert str(kt) == text
    assert kt.is_normal == (text in ("46,XX", "46,XY"))


def test_parse_tolerates_spaces_and_folds_sex_terms():
    assert str(parse_iscn(" 44,XX,-8, -13 ")) == "44,XX,-8,-13"
    assert str(parse_iscn("47,XX,+X")) == "47,XXX"
    assert parse_iscn("45,XY,-15").losses == (15,)


@pytest.mark.parametrize(
    ("text", "why"),
    [
        ("46,XY,t(9;22)", "structural"),
        ("47,XX,+r(9)", "structural"),
        ("45,XX,-13,-18,+der(5)", "structural"),
        ("36,XY,-1,-3,-4,-9,-9,-14,-16,-16,-18", "does not add up"),
        ("hello", "not an ISCN"),
        ("46,XY[18]/47,XY,+21[2]", "mosaic"),
    ],
)
def test_parse_refuses_what_it_cannot_count(text, why):
    with pytest.raises(UnsupportedKaryotype, match=why):
        parse_iscn(text)


def test_read_case_info_keeps_only_the_karyotype(tmp_path):
    (tmp_path / "Case Info").write_bytes(b"46,XX,t(X;4)etics Laboratory\nPt Name: x")
    assert read_case_info(tmp_path) == "46,XX,t(X;4)"
    (tmp_path / "Case Info").write_bytes(b"46,XY\x00\x00\x00")
    assert read_case_info(tmp_path) == "46,XY"
    (tmp_path / "Case Info").write_bytes(b"44,XX,-8, -13")
    assert read_case_info(tmp_path) == "44,XX,-8, -13"
    assert read_case_info(tmp_path / "nothing") == ""


def test_case_iscn_lists_abnormal_clones_first_and_normal_last():
    assert case_iscn(["46,XY"] * 18 + ["47,XY,+21"] * 2) == "47,XY,+21[2]/46,XY[18]"
    assert case_iscn(["46,XX"] * 20) == "46,XX[20]"


def test_case_iscn_clone_rule():
    # one cell with a gain, or two with a loss, is not a clone; three with a loss is
    assert case_iscn(["46,XY"] * 19 + ["47,XY,+8"]) == "46,XY[19]"
    assert case_iscn(["46,XY"] * 18 + ["45,XY,-15"] * 2) == "46,XY[18]"
    assert case_iscn(["46,XY"] * 17 + ["45,XY,-15"] * 3) == "45,XY,-15[3]/46,XY[17]"
    assert case_iscn(["45,X"] * 5 + ["47,XXY"] * 3 + ["46,XY"] * 2) == "45,X[5]/47,XXY[3]/46,XY[2]"


def test_case_iscn_without_a_clone_lists_the_most_frequent():
    assert case_iscn(["45,XY,-15"]) == "45,XY,-15[1]"
    assert case_iscn([]) == ""


def test_karyotype_of_ignores_unknown_keys():
    assert karyotype_of({"?": 3} | {c: 2 for c in range(1, 23)} | {23: 2}).count == 46
