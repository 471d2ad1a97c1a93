"""The package's layers: a module imports only from its own part of the package or from lower layers.

The order, lowest first (parts in one layer are independent of each other):

- ``errors``, ``utils``: the project's exception and small shared helpers;
- ``io`` (image files, COCO files and their RLE masks), ``ops`` (tensor operations on boxes and masks);
- ``detectors`` (adapters and loading), ``mmlab`` (the module OpenMMLab configs import);
- ``attr`` (BBAM, Grad-CAM), ``labels`` (the label chain: maps to pseudo labels);
- the package's own ``__init__`` (the public API: ``BBAM``, ``load_detector``);
- ``metrics``, ``visualization`` (figures of maps and boxes);
- ``pipeline`` (``generate``, its maps and label files);
- ``report``, ``synth`` (draws data; nothing of the library depends on it);
- ``cli``;
- ``demo``, ``export_detector`` (``python -m`` tools).

Imports inside functions count as much as those at the top of a module.
"""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "bbam_captum"
ROOT = "__init__"  # the package's own __init__.py, as a part
LAYERS: tuple[tuple[str, ...], ...] = (
    ("errors", "utils"),
    ("io", "ops"),
    ("detectors", "mmlab"),
    ("attr", "labels"),
    (ROOT,),
    ("metrics", "visualization"),
    ("pipeline",),
    ("report", "synth"),
    ("cli",),
    ("demo", "export_detector"),
)
LAYER_OF = {part: i for i, layer in enumerate(LAYERS) for part in layer}


def package_parts(package: Path = PACKAGE) -> set[str]:
    """The top-level modules and subpackages of the package (data folders such as ``assets`` are none)."""
    return {p.stem for p in package.glob("*.py")} | {p.name for p in package.iterdir() if (p / "__init__.py").is_file()}


def _part_of(dotted: str, parts: set[str]) -> str | None:
    """The part of the package that the absolute module name ``dotted`` lies in; None outside the package."""
    names = dotted.split(".")
    if names[0] != PACKAGE.name:
        return None
    return names[1] if len(names) > 1 and names[1] in parts else ROOT


def imported_parts(source: str, module: str, parts: set[str]) -> list[tuple[str, int]]:
    """The parts of the package that a module's source imports, each with its line.

    Args:
        source: the module's text.
        module: its dotted name (``bbam_captum.pipeline.writers``, ``bbam_captum.io.__init__``);
            relative imports resolve against it.
        parts: the package's parts (:func:`package_parts`).
    """
    home = module.split(".")[:-1]  # the package that relative imports start from
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found += [(_part_of(alias.name, parts), node.lineno) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # relative: level 1 is the module's own package
                base = home[:len(home) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            if target == PACKAGE.name:  # `from bbam_captum import X`: X is a part, or a name of the package's API
                found += [(alias.name if alias.name in parts else ROOT, node.lineno) for alias in node.names]
            else:
                found.append((_part_of(target, parts), node.lineno))
    return [(part, line) for part, line in found if part is not None]


def _modules() -> list[tuple[str, str, Path]]:
    """(dotted name, part, path) of every module of the package."""
    parts = package_parts()
    modules = []
    for path in sorted(PACKAGE.rglob("*.py")):
        rel = path.relative_to(PACKAGE)
        part = rel.stem if len(rel.parts) == 1 else rel.parts[0]
        if part not in parts:  # assets/, .mim/: configs, not modules
            continue
        dotted = ".".join((PACKAGE.name, *rel.with_suffix("").parts))
        modules.append((dotted, part, path))
    return modules


def upward_imports(modules: list[tuple[str, str, str]], parts: set[str]) -> list[str]:
    """Every import of a part of the same or a higher layer than the importer's own (``modules``:
    dotted name, part and source of each module), as ``"module:line imports part (layer i >= j)"``."""
    bad = []
    for dotted, part, source in modules:
        for target, line in imported_parts(source, dotted, parts):
            if target != part and LAYER_OF[target] >= LAYER_OF[part]:
                bad.append(f"{dotted}:{line} imports {target} (layer {LAYER_OF[target]} >= its own {LAYER_OF[part]})")
    return bad


def test_every_part_of_the_package_has_a_layer():
    unplaced = package_parts() - LAYER_OF.keys()
    assert not unplaced, f"parts of bbam_captum without a layer: {sorted(unplaced)}; add them to LAYERS"
    assert not LAYER_OF.keys() - package_parts() - {ROOT}, "LAYERS names parts the package no longer has"


def test_no_layer_imports_its_own_or_a_higher_layer():
    modules = [(dotted, part, path.read_text(encoding="utf-8")) for dotted, part, path in _modules()]
    bad = upward_imports(modules, package_parts())
    assert not bad, "imports against the layer order (see this file's docstring):\n  " + "\n  ".join(bad)


def test_the_check_sees_imports():
    """The scan finds real imports of every form, so an empty list of violations means something."""
    parts = package_parts()
    seen = {(part, target) for dotted, part, path in _modules()
            for target, _ in imported_parts(path.read_text(encoding="utf-8"), dotted, parts)}
    assert {("pipeline", "labels"), ("pipeline", "io"), ("metrics", "labels"), ("cli", "detectors"),
            ("attr", "detectors")} <= seen
    assert imported_parts("from .coco import encode_mask", "bbam_captum.io.__init__", parts) == [("io", 1)]
    assert imported_parts("def f():\n    from .. import load_detector", "bbam_captum.cli.explain_cmd",
                          parts) == [(ROOT, 2)]


@pytest.mark.parametrize("source, module", [
    ("from ..pipeline.coco_input import read_coco", "bbam_captum.metrics.pseudo_labels"),  # relative
    ("from bbam_captum.metrics import mask_iou", "bbam_captum.detectors.loading"),  # absolute
    ("def f():\n    from .. import BBAM", "bbam_captum.attr.bbam"),  # the package's API, inside a function
    ("import bbam_captum.labels", "bbam_captum.attr._utils"),  # a sibling of the same layer
])
def test_an_upward_import_is_reported(source, module):
    parts = package_parts()
    part = module.split(".")[1]
    assert len(upward_imports([(module, part, source)], parts)) == 1


def _public_names(init: Path) -> list[str]:
    for node in ast.parse(init.read_text(encoding="utf-8")).body:
        if isinstance(node, ast.Assign) and any(getattr(t, "id", None) == "__all__" for t in node.targets):
            return list(ast.literal_eval(node.value))
    return []


def test_no_public_name_is_also_a_submodule_name():
    """Importing ``pkg.name`` as a module sets ``pkg.name`` to that module, so a lazily exported
    function of the same name (``pipeline.relabel``) turns into a module once anything imports it."""
    clashes = []
    for init in sorted(PACKAGE.rglob("__init__.py")):
        folder = init.parent
        submodules = {p.stem for p in folder.glob("*.py")}
        submodules |= {p.name for p in folder.iterdir() if (p / "__init__.py").is_file()}
        where = folder.relative_to(PACKAGE.parent)
        clashes += [f"{where}: {name}" for name in _public_names(init) if name in submodules]
    assert not clashes, "public names that are also submodules: " + ", ".join(clashes)
