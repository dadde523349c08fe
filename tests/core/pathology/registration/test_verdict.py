"""A verdict per registered stain: good / check / failed, with the numbers it rests on."""

from napari_karyo.core.pathology.registration.register import GOOD_DETAIL, MIN_DETAIL, PairResult, verdict
from napari_karyo.core.pathology.transform import Transform


def _result(detail: float, dice: float, ok: bool = True) -> PairResult:
    return PairResult(Transform.identity(), quality={"detail": detail, "dice": dice, "identity": 0.1}, ok=ok)


def test_good_check_and_failed_say_the_number_behind_them():
    good = verdict(_result(0.08, 0.93))
    assert good.word == "good" and str(good).startswith("good: detail 0.080") and "overlap 0.93" in str(good)
    near = verdict(_result((MIN_DETAIL + GOOD_DETAIL) / 2, 0.95))  # accepted, but in the thin margin
    assert near.word == "check" and "look at the blend" in str(near)
    partial = verdict(_result(0.08, 0.6))  # aligned detail, but part of a slide lies off the other
    assert partial.word == "check"
    failed = verdict(_result(0.01, 0.9, ok=False))
    assert failed.word == "failed" and "0.010" in str(failed) and "landmarks" in str(failed)
