"""ISCN 2020 karyotype strings for numerical changes: writing (`iscn`), reading (`parse_iscn`), Case Info files.

Supported forms: `46,XX`, `47,XY,+21`, `45,X`, `47,XXY`, `45,XY,-15`, `44,XX,-8,-13`, `48,XY,+21,+21`: the count,
the sex chromosome complement as observed (constitutional style: `45,X`, not `45,X,-X`), then autosomal gains and
losses in chromosome order (a chromosome's losses before its gains, repeats written out). Structural changes
(`t(9;22)`, `der(5)`, `r(9)`, `ins(11;8)`, `i(17q)`...) are recognised and refused with `UnsupportedKaryotype`:
the naming can only count whole chromosomes.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from napari_karyo.core import classes
from napari_karyo.core.errors import KaryoError

NORMAL_SEX = ("XX", "XY")
_COUNT = re.compile(r"^\d{1,3}$")
_SEX = re.compile(r"^X*Y*$")
_NUMERICAL = re.compile(r"^([+-])(\d{1,2}|X|Y)$")
_STRUCTURAL = re.compile(r"^[+-]?\s*[a-z]{1,4}\(", re.IGNORECASE)
# a Case Info record: the karyotype is the leading run of ISCN characters; the rest of the buffer is stale bytes
_CASE_INFO = re.compile(
    r"^[0-9]{1,3},[XY]*(?:,\s*(?:[+-]?\s*[0-9XY]{1,2}|[+-]?\s*[a-zA-Z]{1,4}(?:\([^)]*\))+))*"
)


class UnsupportedKaryotype(KaryoError):
    """A karyotype string with structural changes, or one that is not ISCN at all."""


@dataclass(frozen=True)
class Karyotype:
    """A numerical karyotype: count, sex complement ('XY', 'X', 'XXY'...), autosomal gains and losses."""

    count: int
    sex: str
    gains: tuple[int, ...] = field(default=())  # class ids, sorted, repeated for extra copies
    losses: tuple[int, ...] = field(default=())

    def __str__(self) -> str:
        return format_karyotype(self.count, self.sex, self.gains, self.losses)

    @property
    def is_normal(self) -> bool:
        return self.count == 46 and self.sex in NORMAL_SEX and not self.gains and not self.losses


def format_karyotype(count: int, sex: str, gains: Iterable[int] = (), losses: Iterable[int] = ()) -> str:
    changes = [(c, 0, f"-{classes.name(c)}") for c in losses] + [(c, 1, f"+{classes.name(c)}") for c in gains]
    return ",".join([str(count), sex or "?"] + [text for _, _, text in sorted(changes)])


def karyotype_of(class_ids_or_counts: Iterable[int] | Mapping, *, sex: str | None = None) -> Karyotype:
    """Karyotype from the class ids of a cell's chromosomes (0 = not counted) or from counts per class
    (keys: class ids or names such as '21', 'X'). `sex` overrides the observed sex complement."""
    counts = {c: 0 for c in classes.CLASS_IDS}
    if isinstance(class_ids_or_counts, Mapping):
        for key, n in class_ids_or_counts.items():
            if str(key) in ("0", "?"):
                continue
            counts[classes.class_id(key)] += int(n)
    else:
        for cid in class_ids_or_counts:
            if int(cid) != 0:
                counts[int(cid)] += 1
    if sex is None:
        sex = "X" * counts[23] + "Y" * counts[24]
    elif not _SEX.match(sex.upper()):
        raise ValueError(f"sex complement must be like XX, XY, X or XXY, not {sex!r}")
    sex = sex.upper()
    gains, losses = [], []
    for cid in range(1, 23):
        gains += [cid] * max(counts[cid] - 2, 0)
        losses += [cid] * max(2 - counts[cid], 0)
    count = sum(counts[c] for c in range(1, 23)) + len(sex)
    return Karyotype(count, sex, tuple(gains), tuple(losses))


def iscn(class_ids_or_counts: Iterable[int] | Mapping, *, sex: str | None = None) -> str:
    """ISCN string of one cell: `iscn([...46 ids...])` -> '46,XY'; trisomy 21 -> '47,XY,+21'."""
    return str(karyotype_of(class_ids_or_counts, sex=sex))


def parse_iscn(text: str) -> Karyotype:
    """Parse a numerical karyotype ('45,XY,-15', '44,XX,-8, -13'). Raises UnsupportedKaryotype for structural
    changes, mosaics and strings that are not ISCN. The stated count must agree with the changes listed."""
    tokens = [t.strip() for t in text.strip().split(",")]
    if "/" in text or "[" in text:
        raise UnsupportedKaryotype(
            f"{text!r}: mosaic karyotypes ([n] or /) are read per clone; pass one clone"
        )
    if len(tokens) < 2 or not _COUNT.match(tokens[0]) or not tokens[1] or not _SEX.match(tokens[1].upper()):
        raise UnsupportedKaryotype(
            f"{text!r} is not an ISCN karyotype (expected e.g. '46,XX' or '45,XY,-15')"
        )
    sex = tokens[1].upper()
    gains, losses = [], []
    for tok in tokens[2:]:
        tok = tok.replace(" ", "")
        m = _NUMERICAL.match(tok.upper())
        if m is None:
            kind = "structural change" if _STRUCTURAL.match(tok) else "unrecognised term"
            raise UnsupportedKaryotype(f"{text!r}: {kind} {tok!r} is not supported (numerical changes only)")
        cid = classes.class_id(m.group(2))
        if cid > 22:  # '+X' / '-Y' style: fold into the sex complement
            sex = sex + m.group(2) if m.group(1) == "+" else sex.replace(m.group(2), "", 1)
            continue
        (gains if m.group(1) == "+" else losses).append(cid)
    kt = Karyotype(int(tokens[0]), "".join(sorted(sex)), tuple(sorted(gains)), tuple(sorted(losses)))
    expected = 44 + len(kt.sex) + len(kt.gains) - len(kt.losses)
    if expected != kt.count:
        raise UnsupportedKaryotype(
            f"{text!r}: count {kt.count} does not add up (the changes listed give {expected})"
        )
    return kt


def read_case_info(folder: str | Path) -> str:
    """The karyotype from an M-FISH `Case Info` file in `folder`, or '' when there is none.

    The files are fixed-size records: the karyotype comes first, followed by NULs or stale bytes of other records
    (e.g. '46,XX,t(X;4)etics Laboratory'); only the leading ISCN-shaped run is kept."""
    files = sorted(Path(folder).glob("Case Info*"))
    if not files:
        return ""
    raw = files[0].read_bytes().split(b"\0", 1)[0].decode("latin-1").strip()
    m = _CASE_INFO.match(raw)
    return m.group(0).strip().rstrip(",") if m else ""
