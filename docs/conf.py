"""Sphinx configuration of the gpumask documentation.

The site is built from three sources, none of them copied by hand:

* the user guide: README.md, split at its ``##`` headings into one page per
  section (``GUIDE`` below says which sections make which page);
* the API reference: one page per subpackage listing every name in its
  ``__all__`` (names re-exported by ``gpumask`` itself are documented there);
* the example notebooks: ``examples/*.md`` (MyST text notebooks), executed by
  myst-nb at every build; a failing cell fails the build.

Build it with ``bash ci/build-docs.sh`` (warnings are errors).
"""

from __future__ import annotations

import importlib
import os
import re
from pathlib import Path

import gpumask

DOCS = Path(__file__).resolve().parent
REPO = DOCS.parent
GENERATED = ("guide", "api", "examples")  # folders written by this file; ignored by git

project = "gpumask"
author = "gpumask developers"
copyright = "2026, gpumask developers"
release = gpumask.__version__
version = release

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "sphinx.ext.mathjax",
    "sphinx.ext.viewcode",
    "numpydoc",
    "myst_nb",
]
templates_path = ["_templates"]
exclude_patterns = ["_build", "_intro.md", "Thumbs.db", ".DS_Store", "**.ipynb_checkpoints"]
source_suffix = {".rst": "restructuredtext", ".md": "myst-nb"}

html_theme = "pydata_sphinx_theme"
html_title = f"gpumask {release}"
html_theme_options = {"navigation_with_keys": False, "show_toc_level": 2}
html_static_path: list[str] = []

# -- API reference ---------------------------------------------------------------
autosummary_generate = True
autosummary_imported_members = True
autodoc_typehints = "none"  # numpydoc's Parameters sections say it better
autodoc_default_options = {"member-order": "bysource"}
numpydoc_show_class_members = False  # the class template lists members itself
numpydoc_class_members_toctree = False
numpydoc_xref_param_type = False
numpydoc_validation_checks = {"GL08"}  # every documented object has a docstring

# -- cross-references (the build runs nitpicky: every reference must resolve) --------
# No intersphinx (CI has no network): references into other packages are left
# unresolved on purpose.  Only external packages here, never gpumask names.
nitpick_ignore_regex = [
    (r"py:.*", r"(numpy|astropy|regions|cupy|cupyx|gammapy|matplotlib|scipy|dask|distributed"
               r"|collections|pathlib|os|typing)(\..*)?"),
]
# Private base classes (in private modules, so never documented) that
# :show-inheritance: names on the pages of their public subclasses.
nitpick_ignore = [
    ("py:class", "gpumask.stats.counts_statistic._CountsStatistic"),  # CashCountsStatistic, WStat...
    ("py:class", "gpumask.sky._geom_tools.GeomToolsMixin"),  # base of WcsGeom
    ("py:class", "gpumask.sky._map_tools.MapSamplingMixin"),  # base of Map
    ("py:class", "gpumask.sky._map_resample.MapResampleMixin"),  # base of Map
]

# -- notebooks -------------------------------------------------------------------
nb_execution_mode = "force"  # run every notebook at every build
nb_execution_raise_on_error = True  # a failing cell fails the build
nb_execution_show_tb = True
nb_execution_timeout = 600
nb_merge_streams = True
myst_enable_extensions = ["dollarmath"]
myst_heading_anchors = 3
# progress bars are widgets in Jupyter; in a static page they are noise
os.environ.setdefault("GPUMASK_PROGRESS", "0")

# -- the user guide: README sections -> pages ----------------------------------------
#: page name -> (title, README ``##`` sections in order)
GUIDE = {
    "install": ("Installation", ["Install", "The two commands", "Documentation and examples",
                                 "Testing the CuPy path"]),
    "quickstart": ("Quick start", ["Example", "How the backend is chosen", "Geometry"]),
    "gammapy": ("Inside a gammapy analysis", ["Inside a gammapy analysis"]),
    "region-masks": ("Region masks", ["Region masks"]),
    "catalog-masks": ("Catalog masks", ["Catalog masks"]),
    "significance-masks": ("Significance masks", ["Significance masks"]),
    "morphology": ("Morphology", ["Morphology"]),
    "provenance": ("Why each pixel is excluded", ["Why each pixel is excluded"]),
    "background": ("Background estimation", ["Background estimation"]),
    "fits": ("FITS files", ["FITS"]),
    "cli": ("Command line and batch runs", ["Command line and batch runs"]),
    "failures": ("Failure behaviour", ["Failure behaviour"]),
    "layout": ("Package layout", ["Layout"]),
}

#: API pages: subpackage -> title.  Names ``gpumask`` re-exports are documented on
#: the first page only.
API = {
    "gpumask": "The gpumask namespace",
    "gpumask.sky": "Geometries, maps, datasets, FITS (gpumask.sky)",
    "gpumask.catalog": "Source catalogs (gpumask.catalog)",
    "gpumask.stats": "Statistics, convolution, excess maps (gpumask.stats)",
    "gpumask.masks": "Masks and morphology (gpumask.masks)",
    "gpumask.background": "Background estimators (gpumask.background)",
    "gpumask.batch": "Batch runs and example data (gpumask.batch)",
    "gpumask.backend": "Backends and device residency (gpumask.backend)",
    "gpumask.errors": "Warnings (gpumask.errors)",
    "gpumask.info": "Environment report (gpumask.info)",
}


def readme_sections(text):
    """README's ``##`` sections: {title: body} (the body's headings one level up)."""
    parts = re.split(r"^## (.+)$", text, flags=re.MULTILINE)
    intro, rest = parts[0], parts[1:]
    sections = {}
    for title, body in zip(rest[::2], rest[1::2]):
        fenced = False
        lines = []
        for line in body.strip("\n").splitlines():
            if line.startswith("```"):
                fenced = not fenced
            if not fenced and re.match(r"^#{3,6} ", line):
                line = line[1:]  # ### -> ## on its own page
            lines.append(line)
        sections[title.strip()] = "\n".join(lines) + "\n"
    return intro, sections


def write_guide():
    intro, sections = readme_sections((REPO / "README.md").read_text())
    used = [name for _, names in GUIDE.values() for name in names]
    missing = sorted(set(sections) - set(used))
    unknown = sorted(set(used) - set(sections))
    if missing or unknown:
        raise RuntimeError(f"docs/conf.py GUIDE is out of date with README.md: sections not placed {missing}, "
                           f"placed but absent {unknown}")
    folder = DOCS / "guide"
    folder.mkdir(exist_ok=True)
    for page, (title, names) in GUIDE.items():
        body = [f"# {title}\n"]
        for name in names:
            if len(names) > 1 or name != title:
                body.append(f"## {name}\n")
            body.append(sections[name])
        _write_if_changed(folder / f"{page}.md", "\n".join(body))
    _write_if_changed(DOCS / "_intro.md", intro.split("\n", 1)[1].strip() + "\n")


def write_api():
    folder = DOCS / "api"
    folder.mkdir(exist_ok=True)
    seen = set(getattr(gpumask, "__all__"))
    index = ["# API reference\n", "```{toctree}", ":maxdepth: 1", ""]
    for modname, title in API.items():
        module = importlib.import_module(modname)
        names = [n for n in module.__all__ if not n.startswith("__")]
        if modname != "gpumask":
            names = [n for n in names if n not in seen or getattr(module, n) is not getattr(gpumask, n, None)]
        if not names:
            continue
        classes = [n for n in names if isinstance(getattr(module, n), type)]
        functions = [n for n in names if callable(getattr(module, n)) and n not in classes]
        data = [n for n in names if n not in classes and n not in functions]
        lines = [title, "=" * len(title), ""]
        if modname != "gpumask.info":  # also the name of the function gpumask re-exports
            lines += [f".. automodule:: {modname}", "   :no-members:", ""]
        lines += [f".. currentmodule:: {modname}", ""]
        # classes use _templates/autosummary/class.rst (members listed)
        for heading, group in (("Classes", classes), ("Functions", functions)):
            if group:
                lines += [heading, "-" * len(heading), "", ".. autosummary::", "   :toctree: generated/",
                          "   :nosignatures:", ""]
                lines += [f"   {n}" for n in sorted(group, key=str.lower)] + [""]
        if data:
            lines += ["Constants", "---------", ""]
            lines += [f".. autodata:: {n}\n   :no-value:\n" for n in sorted(data, key=str.lower)]
        _write_if_changed(folder / f"{modname}.rst", "\n".join(lines))
        index.append(modname)
    index.append("```\n")
    _write_if_changed(folder / "index.md", "\n".join(index))


def copy_examples():
    folder = DOCS / "examples"
    folder.mkdir(exist_ok=True)
    sources = sorted((REPO / "examples").glob("*.md"))
    keep = {p.name for p in sources}
    for stale in folder.glob("*.md"):
        if stale.name not in keep:
            stale.unlink()
    for src in sources:
        _write_if_changed(folder / src.name, src.read_text())
    toc = ["# Examples\n", "Notebooks executed when this site was built; the sources are MyST text",
           "notebooks in the repository's `examples/` folder (open them in Jupyter with jupytext).\n",
           "```{toctree}", ":maxdepth: 1", ""] + [p.stem for p in sources] + ["```\n"]
    _write_if_changed(folder / "index.md", "\n".join(toc))


def _write_if_changed(path, text):
    if not path.exists() or path.read_text() != text:
        path.write_text(text)


write_guide()
write_api()
copy_examples()
