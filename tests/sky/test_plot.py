"""Map.plot, Map.plot_mask, Map.plot(masks=...) and Map.plot_grid: the figure objects
(axes labels, colorbar, legend, image data), the near-constant case, squeezing, errors.
Oracles: the map's own data, astropy's simple_norm, gammapy 2.1's plot and plot_grid."""

from __future__ import annotations

import numpy as np
import pytest
from astropy import units as u

import gpumask
from gpumask import Map, MapAxis, WcsGeom

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
    return WcsGeom.create(npix=(30, 20), binsz=0.1, frame="galactic", skydir=(10, 1))


def energy(nbin):
    return MapAxis.from_energy_bounds("1 TeV", "10 TeV", nbin)


def random_map(geom, backend, unit="", seed=0):
    data = np.random.default_rng(seed).normal(size=geom.data_shape)
    return Map.from_geom(geom, data=data, unit=unit, backend=backend)


def test_plot_squeezes_one_bin_axes(geom, backend):
    """A sqrt_ts-like map with one energy bin plots as its image; one counted host copy."""
    cube = random_map(geom.to_cube([energy(1)]), backend, unit="cm-2 s-1")
    host = gpumask.to_host(cube.data)
    with gpumask.count_transfers() as c:
        ax = cube.plot(add_cbar=True)
    assert c.calls == 1
    assert cube.backend.name == backend.name  # the map stays where it was
    assert len(ax.images) == 1
    np.testing.assert_array_equal(ax.images[0].get_array(), host[0])
    assert ax.coords[0].get_axislabel() == "Galactic Longitude"
    assert ax.coords[1].get_axislabel() == "Galactic Latitude"
    cbar_ax = ax.images[0].colorbar.ax
    assert cbar_ax.get_ylabel() == u.Unit("cm-2 s-1").to_string()
    assert ax.images[0].cmap.name == "afmhot"  # gammapy's default


def test_plot_icrs_labels_and_colorbar_kwargs(agg):
    m = Map.create(npix=10, binsz=0.1, frame="icrs", backend="numpy", unit="TeV")
    m.data[...] = np.arange(100).reshape(10, 10)
    fig = agg.figure()
    ax = m.plot(fig=fig, add_cbar=True, kwargs_colorbar={"label": "energy"}, cmap="viridis")
    assert ax.figure is fig
    assert (ax.coords[0].get_axislabel(), ax.coords[1].get_axislabel()) == ("Right Ascension", "Declination")
    assert ax.images[0].colorbar.ax.get_ylabel() == "energy"
    assert ax.images[0].cmap.name == "viridis"


@pytest.mark.parametrize("stretch", ["linear", "sqrt", "log", "asinh"])
def test_plot_stretch_is_astropy_simple_norm(geom, stretch):
    from astropy.visualization import simple_norm

    m = Map.from_geom(geom, data=np.random.default_rng(1).uniform(0.5, 9, geom.data_shape), backend="numpy")
    m.data[3, 4] = np.nan
    ax = m.plot(stretch=stretch)
    norm = ax.images[0].norm
    data = m.to_numpy()
    expected = simple_norm(data[np.isfinite(data)], stretch)
    assert (norm.vmin, norm.vmax) == (expected.vmin, expected.vmax) == (np.nanmin(data), np.nanmax(data))
    assert type(norm.stretch) is type(expected.stretch)
    values = np.linspace(0.6, 8.9, 7)
    np.testing.assert_allclose(norm(values), expected(values))


def test_plot_nan_pixels_blank(geom):
    m = random_map(geom, "numpy")
    m.data[:5, :7] = np.nan
    ax = m.plot(vmin=-1, vmax=1)
    image = ax.images[0]
    array = image.get_array()
    assert np.isnan(np.asarray(array, dtype=float)[:5, :7]).all()
    rgba = image.to_rgba(array)
    assert (rgba[:5, :7, 3] == 0).all()  # afmhot's "bad" colour is transparent
    assert (rgba[5:, 7:, 3] == 1).all()
    assert (image.norm.vmin, image.norm.vmax) == (-1, 1)


def test_plot_all_nan(geom):
    m = Map.from_geom(geom, data=np.full(geom.data_shape, np.nan), backend="numpy")
    ax = m.plot(add_cbar=True)  # no warning (warnings are errors here)
    assert np.isnan(np.asarray(ax.images[0].get_array(), dtype=float)).all()


def test_plot_near_constant_is_uniform(geom):
    """The KBE seed background of issue 18: 41.99999999999996 .. 42.00000000000004.
    One colour everywhere, one colorbar tick '42 (uniform)' (no 20-digit labels)."""
    values = np.linspace(41.99999999999996, 42.00000000000004, geom.data_shape[0] * geom.data_shape[1])
    m = Map.from_geom(geom, data=values.reshape(geom.data_shape), unit="", backend="numpy")
    ax = m.plot(add_cbar=True)
    image = ax.images[0]
    np.testing.assert_array_equal(image.get_array(), m.to_numpy())  # the data, not a stand-in
    colours = image.to_rgba(image.get_array()).reshape(-1, 4)
    assert len(np.unique(colours, axis=0)) == 1
    cbar = image.colorbar
    np.testing.assert_allclose(cbar.get_ticks(), [42.0])
    assert [t.get_text() for t in cbar.ax.get_yticklabels()] == ["42 (uniform)"]

    ax2 = m.plot(ax=agg_axes(geom))
    assert ax2.get_title() == "uniform: 42"
    zeros = Map.from_geom(geom, backend="numpy")
    ax3 = zeros.plot(ax=agg_axes(geom), add_cbar=True)
    assert [t.get_text() for t in ax3.images[0].colorbar.ax.get_yticklabels()] == ["0 (uniform)"]


def agg_axes(geom):
    import matplotlib.pyplot as plt

    return plt.figure().add_subplot(projection=geom.wcs)


def test_plot_small_but_real_range_is_not_uniform(geom):
    values = 42 + 1e-6 * np.random.default_rng(2).normal(size=geom.data_shape)
    ax = Map.from_geom(geom, data=values, backend="numpy").plot(add_cbar=True)
    image = ax.images[0]
    assert (image.norm.vmin, image.norm.vmax) == (values.min(), values.max())
    assert len(np.unique(image.to_rgba(image.get_array()).reshape(-1, 4), axis=0)) > 50
    assert not any("uniform" in t.get_text() for t in image.colorbar.ax.get_yticklabels())


def test_plot_mask_map(geom, backend):
    mask = geom.boundary_mask("0.3 deg", backend=backend)
    with gpumask.count_transfers() as c:
        ax = mask.plot(add_cbar=True)
    assert c.calls == 1
    image = ax.images[0]
    np.testing.assert_array_equal(image.get_array(), gpumask.to_host(mask.data).astype(float))
    assert (image.norm.vmin, image.norm.vmax) == (0, 1)
    np.testing.assert_array_equal(image.cmap([0.0, 1.0])[:, :3], [[0, 0, 0], [1, 1, 1]])  # gammapy's mask look
    labels = [t.get_text() for t in image.colorbar.ax.get_yticklabels()]
    assert labels == ["False\n(excluded)", "True\n(used)"]


def test_plot_errors(geom):
    cube = Map.from_geom(geom.to_cube([energy(3)]), backend="numpy")
    with pytest.raises(ValueError, match=r"plot_grid\(\).*slice_by_idx\(\{'energy': 0\}\).*sum_over_axes"):
        cube.plot()
    with pytest.raises(ValueError, match="stretch must be one of .*'sqrt'.* got 'cubic'"):
        Map.from_geom(geom, backend="numpy").plot(stretch="cubic")
    with pytest.raises(ValueError, match="plot_mask.*boolean.*float32"):
        Map.from_geom(geom, backend="numpy").plot_mask()
    with pytest.raises(ValueError, match="plot_grid"):
        cube.astype(bool).plot_mask()


def _square_mask(geom, backend, rows=slice(4, 9), cols=slice(10, 16)):
    data = np.ones(geom.data_shape, bool)
    data[rows, cols] = False
    return Map.from_geom(geom, data=data, backend=backend)


def _bbox(contour_set):
    segments = np.concatenate(contour_set.allsegs[0])
    return segments.min(axis=0), segments.max(axis=0)


def test_plot_mask_shades_and_outlines(geom, backend):
    mask = _square_mask(geom, backend)
    ax = mask.plot_mask(hatch="//", contour="red")
    filled, edge = ax.collections
    assert list(filled.hatches) == ["//"] and filled.get_alpha() == 0.5  # gammapy's default alpha
    # the edge runs on pixel edges around columns 10..15, rows 4..8
    lo, hi = _bbox(edge)
    np.testing.assert_allclose(lo, [9.5, 3.5])
    np.testing.assert_allclose(hi, [15.5, 8.5])
    np.testing.assert_allclose(matplotlib.colors.to_rgba("red"), edge.get_edgecolor()[0])
    # nothing excluded: nothing drawn, no warning
    ax2 = geom.boundary_mask("0 deg", backend=backend).plot_mask(ax=agg_axes(geom), contour=True)
    assert not ax2.collections


def test_plot_mask_edge_closed_at_border(geom):
    mask = _square_mask(geom, "numpy", rows=slice(0, 3), cols=slice(0, 2))
    ax = mask.plot_mask(contour=True)
    lo, hi = _bbox(ax.collections[1])
    np.testing.assert_allclose(lo, [-0.5, -0.5])
    np.testing.assert_allclose(hi, [1.5, 2.5])
    with pytest.raises(TypeError, match="contour must be"):
        mask.plot_mask(contour=3)


def test_plot_with_mask_contours_and_legend(geom, backend):
    image = random_map(geom, backend)
    masks = {"catalog": _square_mask(geom, backend), "significance": geom.boundary_mask("0.2 deg", backend=backend),
             "nothing": geom.boundary_mask("0 deg", backend=backend)}
    with gpumask.count_transfers() as c:
        ax = image.plot(masks=masks, kwargs_masks={"colors": ["cyan", "red", "white"]})
    assert c.calls == 4  # the image and each mask, once
    legend = ax.get_legend()
    assert [t.get_text() for t in legend.get_texts()] == ["catalog", "significance", "nothing"]
    assert [line.get_color() for line in legend.get_lines()] == ["cyan", "red", "white"]
    catalog, significance = ax.collections  # the all-True mask draws no line
    np.testing.assert_allclose(_bbox(catalog)[0], [9.5, 3.5])
    lo, hi = _bbox(significance)  # 2 px border band: inner edge at 1.5 .. n-2.5
    np.testing.assert_allclose(lo, [-0.5, -0.5])
    np.testing.assert_allclose(hi, [29.5, 19.5])


def test_plot_contours_function_and_errors(geom):
    from gpumask.sky._plot import MASK_COLORS, plot_contours

    ax = random_map(geom, "numpy").plot()
    handles = plot_contours(ax, _square_mask(geom, "numpy"), legend=False)
    assert [h.get_label() for h in handles] == ["mask"] and handles[0].get_color() == MASK_COLORS[0]
    assert ax.get_legend() is None
    with pytest.raises(TypeError, match="'sig' must be a boolean gpumask Map.*float32"):
        plot_contours(ax, {"sig": Map.from_geom(geom, backend="numpy")})
    other = WcsGeom.create(npix=(30, 20), binsz=0.1, frame="galactic", skydir=(11, 1))
    with pytest.raises(ValueError, match="'x' is on another geometry.*interp_to_geom"):
        random_map(geom, "numpy").plot(masks={"x": other.boundary_mask("0.2 deg")})
    with pytest.raises(ValueError, match="colors needs one value per mask"):
        plot_contours(ax, {"a": _square_mask(geom, "numpy")}, colors=["r", "g"])
    with pytest.raises(TypeError, match="non-empty dict"):
        plot_contours(ax, {})


def test_plot_grid(geom, backend):
    cube = random_map(geom.to_cube([energy(4)]), backend, unit="s-1")
    host = gpumask.to_host(cube.data)
    with gpumask.count_transfers() as c:
        axes = cube.plot_grid(ncols=3, add_cbar=True)
    assert c.calls == 1
    assert axes.shape == (2, 3)
    assert [ax.get_title() for ax in axes.flat[:4]] == [
        "Energy 1.00 TeV - 1.78 TeV", "Energy 1.78 TeV - 3.16 TeV", "Energy 3.16 TeV - 5.62 TeV",
        "Energy 5.62 TeV - 10.0 TeV"]
    for idx, ax in enumerate(axes.flat[:4]):
        np.testing.assert_array_equal(ax.images[0].get_array(), host[idx])
    assert not axes.flat[4].get_visible() and not axes.flat[5].get_visible()
    assert axes[0, 0].coords[1].get_axislabel() == "Galactic Latitude"
    assert axes[0, 1].coords[1].get_axislabel() == ""


def test_plot_grid_errors(geom):
    with pytest.raises(ValueError, match=r"one image: use plot\(\)"):
        Map.from_geom(geom, backend="numpy").plot_grid()
    two = MapAxis.from_edges([0, 1, 2], name="time", unit="s")
    with pytest.raises(ValueError, match="one non-spatial axis with several bins"):
        Map.from_geom(geom.to_cube([energy(2), two]), backend="numpy").plot_grid()
    with pytest.raises(ValueError, match="ncols must be a positive integer"):
        Map.from_geom(geom.to_cube([energy(2)]), backend="numpy").plot_grid(ncols=0)


def test_plot_grid_other_axis_titles(geom):
    time = MapAxis.from_edges([0, 1.5, 3], name="time", unit="s")
    axes = Map.from_geom(geom.to_cube([time]), backend="numpy").plot_grid()
    assert [ax.get_title() for ax in axes.flat] == ["Time 0.0 s - 1.5 s", "Time 1.5 s - 3.0 s"]


@pytest.mark.gammapy
def test_plot_matches_gammapy(geom, gammapy_maps):
    """Same norm (stretch sqrt), frame labels and plot_grid titles as gammapy 2.1."""
    cube = Map.from_geom(geom.to_cube([energy(4)]),
                         data=np.random.default_rng(4).uniform(1, 5, geom.to_cube([energy(4)]).data_shape),
                         backend="numpy")
    theirs = cube.to_gammapy()
    ours_ax = cube.slice_by_idx({"energy": slice(0, 1)}).plot(stretch="sqrt")
    their_ax = theirs.slice_by_idx({"energy": slice(0, 1)}).plot(ax=agg_axes(geom), stretch="sqrt")
    for a, b in ((ours_ax, their_ax),):
        assert (a.images[0].norm.vmin, a.images[0].norm.vmax) == (b.images[0].norm.vmin, b.images[0].norm.vmax)
        np.testing.assert_array_equal(a.images[0].get_array(), b.images[0].get_array())
        assert a.coords[0].get_axislabel() == b.coords[0].get_axislabel()
    ours = [ax.get_title() for ax in cube.plot_grid().flat]
    theirs_titles = [ax.get_title() for ax in theirs.plot_grid().flat]
    assert ours == theirs_titles
