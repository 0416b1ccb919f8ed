"""The package's layering, read from the source: which layer may import which.

gpumask is a stack of layers (see ``gpumask/__init__.py``):

    device (backend, _kernels, errors, _utils, info)
      < sky < catalog < stats < masks < background < batch < cli

A module may import, at module level, only its own layer and the layers its
subpackage's ``__init__`` docstring names (the ``ALLOWED`` table below).  Going up
is allowed only inside a function, only for the thin gammapy-style convenience
methods listed in ``CONVENIENCE``, and only where the module docstring says which
layer it reaches into.  Only the device layer imports CuPy, even lazily.

The tests read the installed package's source (the wheel in CI), so what ships is
what is checked.
"""

from __future__ import annotations

import ast
import importlib
from pathlib import Path

import pytest

import gpumask

PACKAGE = Path(gpumask.__file__).resolve().parent
TESTS = Path(__file__).resolve().parent

DEVICE = "device"
LAYERS = (DEVICE, "sky", "catalog", "stats", "masks", "background", "batch", "cli")

#: What each layer may import at module level (besides itself).  ``catalog`` does
#: not need maps, so it sits beside ``sky`` rather than on it.
ALLOWED = {
    DEVICE: set(),
    "sky": {DEVICE},
    "catalog": {DEVICE},
    "stats": {DEVICE, "sky"},
    "masks": {DEVICE, "sky", "catalog", "stats"},
    "background": {DEVICE, "sky", "stats", "masks"},
    "batch": {DEVICE, "sky", "catalog", "stats", "masks", "background"},
    "cli": set(LAYERS) - {"cli"},
}

#: Lazy imports that go up a layer: gammapy's convenience methods on the data
#: model (``WcsGeom.region_mask``, ``Map.binary_erode``, ``Map.convolve``, ...).
#: Each module must name the layer it reaches into in its docstring.
CONVENIENCE = {
    ("gpumask.sky.geom", "masks"),
    ("gpumask.sky.maps", "masks"),
    ("gpumask.sky.maps", "stats"),
}

#: The package facade re-exports every layer.
FACADE = {"gpumask", "gpumask.__main__"}

#: The only modules that may import cupy or cupyx (even inside a function).
CUPY_IMPORTERS = {"gpumask.backend", "gpumask._kernels"}


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _is_package(path: Path) -> bool:
    return path.name == "__init__.py"


def _layer(module: str) -> str:
    parts = module.split(".")
    if len(parts) >= 2 and parts[1] in LAYERS:
        return parts[1]
    return DEVICE


def _walk_imports(tree):
    """``(node, at_module_level)`` for every import statement of a module."""

    def visit(node, top):
        for child in ast.iter_child_nodes(node):
            if isinstance(child, (ast.Import, ast.ImportFrom)):
                yield child, top
            inner = top and not isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda))
            yield from visit(child, inner)

    yield from visit(tree, True)


def _targets(node, module: str, is_package: bool) -> list[str]:
    """Absolute names of what ``node`` imports (for ``from X import name``, the
    submodule ``X.name`` when it is one, else ``X``)."""
    if isinstance(node, ast.Import):
        return [alias.name for alias in node.names]
    if node.level:
        base = module.split(".")
        if not is_package:
            base = base[:-1]
        base = base[: len(base) - (node.level - 1)]
        source = ".".join(base + ([node.module] if node.module else []))
    else:
        source = node.module or ""
    out = []
    for alias in node.names:
        candidate = f"{source}.{alias.name}"
        out.append(candidate if candidate in _MODULES else source)
    return out


_SOURCES = sorted(PACKAGE.rglob("*.py"))
_MODULES = {_module_name(p) for p in _SOURCES}


def _imports():
    """Every import of every module: ``(module, path, lineno, target, top_level)``."""
    for path in _SOURCES:
        module = _module_name(path)
        tree = ast.parse(path.read_text(), filename=str(path))
        for node, top in _walk_imports(tree):
            for target in _targets(node, module, _is_package(path)):
                yield module, path, node.lineno, target, top


IMPORTS = list(_imports())


def _where(path, lineno):
    return f"{path.relative_to(PACKAGE.parent)}:{lineno}"


def test_the_scan_sees_the_whole_package():
    # guards the test itself: a parser that found nothing would pass everything
    assert {"gpumask.sky.geom", "gpumask.masks.regions", "gpumask.batch.runner", "gpumask.cli.demo"} <= _MODULES
    assert any(t == "gpumask.sky.maps" and top for _, _, _, t, top in IMPORTS)
    assert any(m == "gpumask.sky.geom" and _layer(t) == "masks" and not top for m, _, _, t, top in IMPORTS)


def test_every_module_belongs_to_a_layer():
    stray = [m for m in _MODULES if m not in FACADE and len(m.split(".")) > 2 and _layer(m) == DEVICE]
    assert not stray, f"modules in a folder that is not a layer: {stray}; add the layer to LAYERS"


def test_no_module_level_import_goes_up_a_layer():
    offenders = []
    for module, path, lineno, target, top in IMPORTS:
        if not top or module in FACADE or not target.startswith("gpumask"):
            continue
        src, dst = _layer(module), _layer(target)
        if dst != src and dst not in ALLOWED[src]:
            offenders.append(f"{_where(path, lineno)}: {module} ({src}) imports {target} ({dst})")
    assert not offenders, "\n".join(offenders)


def test_lazy_upward_imports_are_only_the_documented_conveniences():
    seen, offenders = set(), []
    for module, path, lineno, target, top in IMPORTS:
        if top or module in FACADE or not target.startswith("gpumask"):
            continue
        src, dst = _layer(module), _layer(target)
        if dst == src or dst in ALLOWED[src]:
            continue
        if (module, dst) in CONVENIENCE:
            seen.add((module, dst))
        else:
            offenders.append(f"{_where(path, lineno)}: {module} ({src}) reaches up into {target} ({dst})")
    assert not offenders, (
        "lazy imports into a higher layer; move the logic down or out, or (for a thin gammapy-style "
        "convenience method) add it to CONVENIENCE and say so in the module docstring:\n" + "\n".join(offenders)
    )
    assert seen == CONVENIENCE, f"CONVENIENCE lists imports that no longer exist: {CONVENIENCE - seen}"


@pytest.mark.parametrize("module, layer", sorted(CONVENIENCE))
def test_conveniences_say_which_layer_they_reach_into(module, layer):
    path = PACKAGE.parent / (module.replace(".", "/") + ".py")
    doc = ast.get_docstring(ast.parse(path.read_text())) or ""
    assert f"gpumask.{layer}" in doc, f"{module}'s docstring must say that it reaches into gpumask.{layer}"


def test_module_level_imports_form_no_cycle():
    graph = {}
    for module, _, _, target, top in IMPORTS:
        if top and target in _MODULES and target != module:
            graph.setdefault(module, set()).add(target)
    state, cycles = {}, []

    def visit(node, stack):
        state[node] = "open"
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == "open":
                cycles.append(stack[stack.index(nxt):] + [nxt])
            elif nxt not in state:
                visit(nxt, stack)
        stack.pop()
        state[node] = "done"

    for node in sorted(graph):
        if node not in state:
            visit(node, [])
    # a package __init__ importing its own modules and nothing importing the
    # package back is the only loop-free shape; anything else is a real cycle
    assert not cycles, " ; ".join(" -> ".join(c) for c in cycles)


def test_only_the_device_layer_imports_cupy():
    offenders = [
        f"{_where(path, lineno)}: {module} imports {target}"
        for module, path, lineno, target, _ in IMPORTS
        if target.split(".")[0] in ("cupy", "cupyx") and module not in CUPY_IMPORTERS
    ]
    assert not offenders, "\n".join(offenders) + "\nreach cupy through gpumask.backend (Backend.xp, gpu_devices)"


def test_cupy_importers_import_it_lazily():
    # ``import gpumask`` must never load cupy: even the device layer imports it in functions
    offenders = [
        f"{_where(path, lineno)}: {target}"
        for module, path, lineno, target, top in IMPORTS
        if top and target.split(".")[0] in ("cupy", "cupyx")
    ]
    assert not offenders


@pytest.mark.parametrize("layer", [name for name in LAYERS if name != DEVICE])
def test_every_layer_says_what_it_is_for_and_may_import(layer):
    init = PACKAGE / layer / "__init__.py"
    assert init.is_file(), f"gpumask/{layer}/ is not a package"
    doc = ast.get_docstring(ast.parse(init.read_text()))
    assert doc, f"gpumask/{layer}/__init__.py has no docstring"
    assert "May import" in doc, f"gpumask/{layer}/__init__.py must say what the layer may import"
    if layer == "cli":  # the top layer: "every layer"
        return
    for other in ALLOWED[layer] - {DEVICE}:
        assert f"gpumask.{other}" in doc, f"gpumask/{layer}/__init__.py does not mention gpumask.{other}"


@pytest.mark.parametrize("layer", [name for name in LAYERS if name != DEVICE])
def test_tests_mirror_the_package(layer):
    folder = TESTS / layer
    assert folder.is_dir() and any(folder.glob("test_*.py")), f"no tests/{layer}/ for gpumask/{layer}/"


# test folders that test the test tooling, not a layer of the package
TOOLING = {"emulator", "fuzz"}  # tests of tests/emulated_cupy; the fuzz suite (every layer)


def test_test_folders_are_layers():
    folders = {p.name for p in TESTS.iterdir() if p.is_dir() and any(p.glob("test_*.py"))}
    assert folders <= set(LAYERS) | TOOLING, f"test folders without a package layer: {folders - set(LAYERS)}"


def test_public_names_still_exported():
    # user code written against the flat package keeps working
    expected = {
        "AdaptiveRingBackgroundEstimator", "Backend", "BackendError", "ExcessMapEstimator", "ExcessMaps",
        "FitsReadError", "GammapyCompatibilityWarning", "GpumaskWarning", "HostFallbackWarning",
        "KernelBackgroundEstimator", "KernelBackgroundResult", "Map", "MapAxis", "MapDataset",
        "MapDatasetOnOff", "MixedBackendError", "SourceCatalog", "WcsGeom", "WcsNDMap", "binary_dilate",
        "binary_erode", "count_transfers", "excess_map", "exclusion_mask", "exclusion_from_significance",
        "fill_holes", "get_backend", "hysteresis_threshold", "info", "label", "make_region",
        "parse_regions", "read_dataset", "read_map", "remove_small_regions", "RingBackgroundEstimator",
        "to_device", "to_host", "use_backend", "write_map", "__version__",
    }
    assert expected <= set(gpumask.__all__)
    for name in expected:
        assert getattr(gpumask, name) is not None
    # the one module path the README documented for users
    assert gpumask.catalog.load is gpumask.catalog.source_catalog.load


@pytest.mark.parametrize("layer", [name for name in LAYERS if name not in (DEVICE, "cli")])
def test_layer_exports_resolve(layer):
    package = importlib.import_module(f"gpumask.{layer}")
    for name in package.__all__:
        assert getattr(package, name) is not None, f"gpumask.{layer}.{name}"
