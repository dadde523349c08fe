"""Device names: a typo or an absent GPU is a KaryoError with the fix, never a torch traceback."""

import pytest

from napari_karyo.core.device import pick_device
from napari_karyo.core.errors import KaryoError


@pytest.mark.parametrize("name, message", [("xyz", "unknown device 'xyz'"), ("meta", "unsupported device")])
def test_bad_device_names_are_clear_errors(name, message):
    with pytest.raises(KaryoError, match=message):
        pick_device(name)


def test_cpu_is_always_there():
    assert pick_device("cpu").type == "cpu"
