"""Regenerate the README screenshots from the widget tests' Xvfb runs, so they always show the current dock.

    python scripts/readme_screenshots.py            # needs xvfb-run (make test installs it)

Runs the GUI tests that save screenshots with $KARYO_SCREENSHOTS pointing at docs/images/; the tests' own checks
still apply, so a broken screen fails here instead of landing in the README.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "docs" / "images"
TESTS = [  # (test file, test name): each saves the screenshots named in its body
    ("tests/napari/karyotype/test_dock.py", "test_real_model_on_sample"),  # karyotype_real.png
    (
        "tests/napari/karyotype/test_dock.py",
        "test_dock_is_grouped_fits_a_small_screen_and_explains_disabled_buttons",
    ),
    ("tests/napari/karyotype/test_karyogram_view.py", "test_karyogram_layers_follow_the_spread"),
]


def main() -> int:
    OUT.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "KARYO_SCREENSHOTS": str(OUT), "PYTHONPATH": str(ROOT / "src")}
    ids = [f"{path}::{name}" for path, name in TESTS]
    cmd = ["xvfb-run", "-a", "-s", "-screen 0 1280x1024x24", sys.executable, "-m", "pytest", "-q", *ids]
    done = subprocess.run(cmd, cwd=ROOT, env=env, check=False)
    if done.returncode == 0:
        print("screenshots ->", ", ".join(sorted(p.name for p in OUT.glob("*.png"))))
    return done.returncode


if __name__ == "__main__":
    sys.exit(main())
