"""The layering rules of docs/architecture.md, checked on the source: what may import what, and sizes."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src" / "napari_karyo"
MAX_MODULE_LINES = 400
MAX_FUNCTION_LINES = 80
PARSER_BUILDERS = {"build_parser", "add_commands"}  # argparse builders: long by nature

BASE = {"core", "core.storage"}
# package -> the packages it may import (besides itself); `core` = the modules directly in core/
ALLOWED = {
    "core": set(),
    "core.storage": {"core"},
    "core.training": BASE,
    "core.karyotype.infer": BASE,
    "core.karyotype.edit": BASE | {"core.karyotype.infer"},
    "core.karyotype.report": BASE | {"core.karyotype.infer"},
    "core.karyotype.evaluate": BASE
    | {"core.karyotype.infer", "core.karyotype.edit", "core.karyotype.report"},
    "core.karyotype.mfish": BASE | {"core.karyotype.infer"},
    "core.karyotype.karyogram_import": BASE | {"core.karyotype.infer", "core.karyotype.report"},
    # modules directly in core/karyotype (batch, queue_run): whole jobs over the stages
    "core.karyotype": BASE
    | {"core.karyotype.infer", "core.karyotype.edit", "core.karyotype.report", "core.karyotype.mfish"},
    "core.karyotype.training": BASE
    | {"core.training", "core.karyotype.infer", "core.karyotype.edit", "core.karyotype.evaluate"},
    "core.pathology": BASE,
    "core.pathology.registration": BASE | {"core.pathology"},
    "core.pathology.lesions": BASE | {"core.training", "core.pathology", "core.pathology.registration"},
}
DIRECT_ONLY = {"core", "core.karyotype"}  # these keys hold only the modules sitting directly in the folder
GUI = ("qtpy", "napari", "magicgui", "PyQt5", "PyQt6", "PySide2", "PySide6", "vispy")


def _modules():
    for path in sorted(SRC.rglob("*.py")):
        rel = path.relative_to(SRC).with_suffix("")
        yield ".".join(p for p in rel.parts if p != "__init__"), path


def _package(module: str) -> str | None:
    """The longest ALLOWED key the module belongs to (core.x.y is in core only when it sits in core/)."""
    keys = [
        k
        for k in ALLOWED
        if module.startswith(k + ".") and (k not in DIRECT_ONLY or module.count(".") == k.count(".") + 1)
    ]
    if module in ALLOWED and module.count(".") > 1:  # a sub-package's __init__
        keys.append(module)
    return max(keys, key=len, default=None)


def _imports(path: Path):
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module:
            yield node.module, [a.name for a in node.names], node.lineno
        elif isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name, [], node.lineno


def test_core_never_imports_the_gui():
    bad = [
        f"{path.relative_to(SRC)}:{line} imports {mod}"
        for module, path in _modules()
        if module.startswith("core")
        for mod, _, line in _imports(path)
        if mod.split(".")[0] in GUI or mod.startswith(("napari_karyo._napari", "napari_karyo.cli"))
    ]
    assert not bad, "\n".join(bad)


def test_layers_import_only_their_own_or_lower_layers():
    bad = []
    for module, path in _modules():
        own = _package(module)
        if own is None:
            continue
        for mod, names, line in _imports(path):
            if not mod.startswith("napari_karyo."):
                continue
            target = mod.removeprefix("napari_karyo.")
            # `from napari_karyo.core.x import module` names a module: judge the module itself
            targets = [
                f"{target}.{n}"
                for n in names
                if (SRC / Path(*f"{target}.{n}".split("."))).with_suffix(".py").exists()
            ]
            for t in targets or [target]:
                other = _package(t)
                if other is not None and other != own and other not in ALLOWED[own]:
                    bad.append(f"{path.relative_to(SRC)}:{line} ({own}) imports {t} ({other})")
    assert not bad, "\n".join(bad)


@pytest.mark.parametrize("module,path", list(_modules()), ids=lambda v: str(v) if isinstance(v, str) else "")
def test_modules_and_functions_stay_small(module, path):
    source = path.read_text()
    assert source.count("\n") <= MAX_MODULE_LINES, f"{path.relative_to(SRC)}: over {MAX_MODULE_LINES} lines"
    long = [
        f"{node.name} ({node.end_lineno - node.lineno + 1} lines)"
        for node in ast.walk(ast.parse(source))
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)
        and node.name not in PARSER_BUILDERS
        and node.end_lineno - node.lineno + 1 > MAX_FUNCTION_LINES
    ]
    assert not long, f"{path.relative_to(SRC)}: " + ", ".join(long)
