"""Bad-input corpus: every way a user can hand `napari-karyo` something wrong, generated into a temporary folder
(≥ 60 cases: damaged, huge, odd and non-spread images, paths that are not files, output folders that cannot be
written, a full disk, damaged or edited model files, damaged results, annotations and journals). Each case runs the
CLI in this process and is scored:

- clear error: exit 2, no traceback, the message names the file (or flag) at fault;
- correct: exit 0 and the output checks out (valid variants: a karyotype of 35-60 objects; non-spreads: no
  karyotype and a warning; batches: one folder per input, the same file once);
- traceback / silent wrong (exit 0 where an error was due, or output that fails its check) / unclear error.

    OMP_NUM_THREADS=1 python benchmarks/bad_inputs.py --json bench_results/bad_inputs.json
"""

from __future__ import annotations

import contextlib
import io
import os
import resource
import sys
import tempfile
import time
import traceback
from pathlib import Path

from bad_inputs_corpus import SAMPLE, Case, batch_cases, image_cases, output_cases, variant_cases
from bad_inputs_results import crop_cases, model_cases, result_cases
from bench_common import parser, report
from napari_karyo.cli import main


@contextlib.contextmanager
def file_limit(limit: int | None):
    """RLIMIT_FSIZE while a case runs: writes beyond it fail with EFBIG, as on a full disk (SIGXFSZ is ignored
    by Python)."""
    if limit is None:
        yield
        return
    old = resource.getrlimit(resource.RLIMIT_FSIZE)
    resource.setrlimit(resource.RLIMIT_FSIZE, (limit, old[1]))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, old)


def run_case(case: Case) -> dict:
    out, err = io.StringIO(), io.StringIO()
    crashed = False
    t0 = time.perf_counter()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err), file_limit(case.file_limit):
        try:
            code = main(["-q", *case.argv])
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else 2
        except BaseException:  # noqa: BLE001 - what the benchmark counts
            traceback.print_exc()
            crashed, code = True, 1
    seconds = time.perf_counter() - t0
    text = err.getvalue()
    return {
        "case": case.name,
        "expect": case.expect,
        "exit": code,
        "seconds": round(seconds, 2),
        "outcome": score(case, code, text, crashed),
        "message": text.strip().splitlines()[-1:] or [""],
    }


def score(case: Case, code: int, err: str, crashed: bool) -> str:
    if crashed or "Traceback" in err:
        return "traceback"
    if code == 2:
        named = case.token in err if case.expect == "error" else True
        return "clear error" if "error:" in err and named else "unclear error"
    if code != 0:
        return "unclear error"
    if case.expect == "error":
        return "silent wrong"
    try:
        good = case.check is None or case.check(Path())
    except (OSError, ValueError, KeyError, StopIteration):
        good = False
    return "correct" if good else "silent wrong"


def run(root: Path) -> dict:
    base = root / "base"
    with contextlib.redirect_stdout(io.StringIO()):
        assert main(["-q", "analyze", str(SAMPLE), "--out", str(base)]) == 0
    cases: list[Case] = []
    for build in (image_cases, variant_cases, batch_cases, output_cases, model_cases, crop_cases):
        cases += build(root)
    cases += result_cases(root, base / SAMPLE.stem)
    rows = []
    for case in cases:
        rows.append(run_case(case))
        print(f"{rows[-1]['outcome']:<14} {case.name}", file=sys.stderr)
    outcomes = ["clear error", "correct", "traceback", "silent wrong", "unclear error"]
    return {"cases": len(rows), **{o: sum(r["outcome"] == o for r in rows) for o in outcomes}, "rows": rows}


def table(result: dict) -> str:
    lines = [f"{'case':<42} {'expect':<6} {'exit':>4}  outcome", "-" * 72]
    lines += [f"{r['case'][:42]:<42} {r['expect']:<6} {r['exit']:>4}  {r['outcome']}" for r in result["rows"]]
    lines.append("-" * 72)
    lines.append(
        f"{result['cases']} cases: {result['clear error']} clear errors, {result['correct']} correct, "
        f"{result['traceback']} tracebacks, {result['silent wrong']} silent wrong, "
        f"{result['unclear error']} unclear errors"
    )
    return "\n".join(lines)


def cli() -> int:
    args = parser(__doc__, "bad_inputs").parse_args()
    json_path, here = os.path.abspath(args.json), os.getcwd()
    with tempfile.TemporaryDirectory(prefix="bad-inputs-") as tmp:
        os.chdir(
            tmp
        )  # a command that wrongly writes to the current folder writes there, not into the checkout
        try:
            result = run(Path(tmp))
        finally:
            os.chdir(here)
    return report(result, table(result), json_path)


if __name__ == "__main__":
    sys.exit(cli())
