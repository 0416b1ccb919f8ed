"""plot_mask of a mask that explains itself (issue 20): excluded pixels coloured by
component kind with a legend; plain masks draw as before.  Oracles: the mask's
provenance (kind of each pixel's first component), matplotlib's colour conversion."""

from __future__ import annotations

import numpy as np
import pytest

import gpumask
from gpumask import WcsGeom
from gpumask.sky._plot import KIND_COLORS

matplotlib = pytest.importorskip("matplotlib")


@pytest.fixture(autouse=True)
def agg():
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    plt.close("all")
    yield plt
    plt.close("all")


@pytest.fixture
def geom():
    return WcsGeom.create(npix=(60, 40), binsz=0.05, frame="galactic")


def _explained(geom, backend):
    regions = gpumask.exclusion_mask(geom, regions="galactic;circle(0.5,0.3,0.3)", backend=backend.name,
                                     explain=True)
    rng = np.random.default_rng(2)
    sig = gpumask.Map.from_geom(geom, data=rng.normal(size=geom.data_shape), backend=backend.name)
    sig.data[5:9, 5:10] = 8.0
    blobs = gpumask.exclusion_from_significance(sig, 5.0, explain=True)
    return regions & gpumask.binary_erode(blobs, "0.1 deg")


def test_plot_mask_colours_by_kind(geom, backend):
    from matplotlib.colors import to_rgba

    mask = _explained(geom, backend)
    kinds = mask.provenance.kind_image()
    with gpumask.count_transfers() as copies:
        ax = mask.plot_mask()
    assert copies.calls == 2  # the mask and its kind image
    assert mask.backend.name == backend.name
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    present = ["region", "significance blob", "dilation ring"]
    assert [label.split(" (")[0] for label in labels] == present  # COMPONENT_KINDS order
    for label, kind in zip(labels, present):
        code = gpumask.sky.provenance.COMPONENT_KINDS.index(kind)
        assert label == f"{kind} ({100 * np.mean(kinds == code):.1f}%)"
    (im,) = ax.images
    rgba = im.to_rgba(im.get_array())
    for (y, x), kind in (((6, 6), "significance blob"), ((4, 5), "dilation ring"), ((26, 20), "region")):
        assert gpumask.sky.provenance.COMPONENT_KINDS[kinds[y, x]] == kind
        np.testing.assert_allclose(rgba[y, x, :3], to_rgba(KIND_COLORS[kind])[:3])
    assert kinds[35, 2] == -1 and np.ma.getmaskarray(im.get_array())[35, 2]  # usable: transparent
    handles = ax.get_legend().legend_handles
    np.testing.assert_allclose(handles[0].get_facecolor()[:3], to_rgba(KIND_COLORS["region"])[:3])


def test_plain_mask_draws_as_before(geom, backend):
    explained = _explained(geom, backend)
    plain = gpumask.Map.from_geom(geom, data=explained.data.copy(), backend=backend.name)
    assert plain.provenance is None
    ax = plain.plot_mask()
    assert not ax.images and ax.get_legend() is None and len(ax.collections) == 1
    # explicit colours or a hatch switch the kinds off; by_kind=False too
    for kwargs in ({"colors": "red"}, {"hatch": "//"}, {"by_kind": False}):
        ax = explained.plot_mask(fig=matplotlib.pyplot.figure(), **kwargs)
        assert not ax.images and ax.get_legend() is None


def test_by_kind_errors(geom):
    plain = gpumask.Map.from_geom(geom, data=np.ones(geom.data_shape, bool), backend="numpy")
    with pytest.raises(ValueError, match="by_kind=True needs a mask with a provenance"):
        plain.plot_mask(by_kind=True)
    with pytest.raises(TypeError, match="by_kind must be None"):
        plain.plot_mask(by_kind="yes")


def test_by_kind_with_contour_and_nothing_excluded(geom):
    mask = gpumask.exclusion_mask(geom, regions="galactic;circle(0.5,0.3,0.3)", explain=True)
    ax = mask.plot_mask(contour="cyan")
    assert len(ax.images) == 1 and len(ax.collections) >= 1
    empty = gpumask.exclusion_mask(geom, regions="galactic;circle(40,40,0.1)", explain=True)
    ax = empty.plot_mask(fig=matplotlib.pyplot.figure())
    assert ax.get_legend() is None
