"""MapAxis and bands tables against gammapy 2.1 (the oracle)."""

from __future__ import annotations

import numpy as np
import pytest
from astropy import units as u
from astropy.io import fits
from astropy.table import Table

from gpumask import MapAxis
from gpumask.sky.axes import axes_from_bands_hdu, axes_to_bands_hdu

RTOL = 1e-12


def _assert_axis_matches(ours, theirs, rtol=RTOL):
    """A gpumask MapAxis equals a gammapy MapAxis (metadata, edges, centres, widths).

    Values are compared with ``rtol`` plus an absolute floor of ``rtol`` times the
    largest edge (an edge extrapolated to 0 is 3e-17 in one and 6e-17 in the other)."""
    assert ours.name == theirs.name
    assert ours.interp == theirs.interp
    assert ours.node_type == theirs.node_type
    assert ours.nbin == theirs.nbin
    assert ours.unit == theirs.unit
    atol = rtol * float(np.max(np.abs(theirs.edges.value)))
    for attr in ("edges", "center", "bin_width", "edges_min", "edges_max"):
        np.testing.assert_allclose(getattr(ours, attr).to_value(theirs.unit),
                                   getattr(theirs, attr).value, rtol=rtol, atol=atol, err_msg=attr)


def _random_nodes(rng, n, interp):
    if interp == "lin":
        return np.sort(rng.uniform(-50.0, 50.0, 1)) + np.cumsum(rng.uniform(0.1, 5.0, n))
    if interp == "log":
        return 10 ** (rng.uniform(-2.0, 1.0) + np.cumsum(rng.uniform(0.05, 0.8, n)))
    return np.cumsum(rng.uniform(0.5, 20.0, n)) ** 1.3  # sqrt: positive nodes


# ---------------------------------------------------------------------- constructors


@pytest.mark.gammapy
@pytest.mark.parametrize(
    ("args", "kwargs"),
    [
        ((1.0, 100.0, 4), dict(unit="TeV")),
        ((0.1, 100.0, 1), dict(unit="TeV")),
        ((1.0 * u.TeV, 100.0 * u.TeV, 7), {}),
        ((10.0 * u.GeV, 10.0 * u.GeV * 1000, 5), {}),
        ((0.03, 300.0, 11), dict(unit="GeV", name="energy_true")),
        ((1.0, 100.0, 3), dict(unit="TeV", per_decade=True)),
        ((0.3, 50.0, 5), dict(unit="TeV", per_decade=True)),
        ((100.0, 1e6, 8), dict(unit="MeV", per_decade=True, name="energy_true")),
        # gammapy takes the unit of energy_max when unit is None
        ((10.0 * u.GeV, 1.0 * u.TeV, 3), {}),
        (("10 GeV", "1 TeV", 6), {}),
    ],
)
@pytest.mark.parametrize("node_type", ["edges", "center"])
def test_from_energy_bounds_matches_gammapy(gammapy_maps, args, kwargs, node_type):
    ours = MapAxis.from_energy_bounds(*args, node_type=node_type, **kwargs)
    theirs = gammapy_maps.MapAxis.from_energy_bounds(*args, node_type=node_type, **kwargs)
    _assert_axis_matches(ours, theirs)
    assert ours.is_energy_axis


@pytest.mark.gammapy
@pytest.mark.parametrize("interp", ["lin", "log", "sqrt"])
@pytest.mark.parametrize("nbin", [1, 2, 5, 17])
def test_from_edges_matches_gammapy(gammapy_maps, rng, interp, nbin):
    for unit, name in (("deg", "rad"), ("TeV", "energy"), ("", "migra")):
        edges = _random_nodes(rng, nbin + 1, interp)
        ours = MapAxis.from_edges(edges, unit=unit, interp=interp, name=name)
        theirs = gammapy_maps.MapAxis.from_edges(edges, unit=unit, interp=interp, name=name)
        _assert_axis_matches(ours, theirs)
        np.testing.assert_allclose(ours.edges.value, edges, rtol=RTOL)
        # the same from a Quantity
        ours_q = MapAxis.from_edges(edges * u.Unit(unit), interp=interp, name=name)
        _assert_axis_matches(ours_q, theirs)


@pytest.mark.gammapy
@pytest.mark.parametrize("interp", ["lin", "log", "sqrt"])
@pytest.mark.parametrize("nbin", [2, 3, 9])
def test_from_nodes_matches_gammapy(gammapy_maps, rng, interp, nbin):
    for unit, name in (("deg", "theta"), ("MeV", "energy_true")):
        nodes = _random_nodes(rng, nbin, interp)
        ours = MapAxis.from_nodes(nodes, unit=unit, interp=interp, name=name)
        theirs = gammapy_maps.MapAxis.from_nodes(nodes, unit=unit, interp=interp, name=name)
        _assert_axis_matches(ours, theirs)
        np.testing.assert_allclose(ours.center.value, nodes, rtol=RTOL)


@pytest.mark.gammapy
def test_from_energy_edges_matches_gammapy(gammapy_maps):
    edges = [0.1, 0.3, 1.0, 10.0] * u.TeV
    ours = MapAxis.from_energy_edges(edges)
    theirs = gammapy_maps.MapAxis.from_energy_edges(edges)
    _assert_axis_matches(ours, theirs)
    ours = MapAxis.from_energy_edges([1.0, 2.0, 3.0], unit="GeV", name="energy_true", interp="lin")
    theirs = gammapy_maps.MapAxis.from_energy_edges([1.0, 2.0, 3.0], unit="GeV",
                                                    name="energy_true", interp="lin")
    _assert_axis_matches(ours, theirs)


def test_log_centre_is_geometric_mean():
    axis = MapAxis.from_edges([1.0, 4.0, 100.0], unit="TeV", interp="log", name="energy")
    np.testing.assert_allclose(axis.center.value, [2.0, 20.0], rtol=RTOL)
    axis = MapAxis.from_edges([1.0, 4.0, 100.0], unit="TeV", interp="lin", name="energy")
    np.testing.assert_allclose(axis.center.value, [2.5, 52.0], rtol=RTOL)
    axis = MapAxis.from_edges([1.0, 4.0, 100.0], interp="sqrt")
    np.testing.assert_allclose(axis.center.value, [2.25, 36.0], rtol=RTOL)


# ---------------------------------------------------------------------- pixel <-> coordinate


def _axis_pairs(gm, rng):
    pairs = []
    for interp in ("lin", "log", "sqrt"):
        for node_type in ("edges", "center"):
            for n in (2, 3, 8):
                nodes = _random_nodes(rng, n, interp)
                ours = MapAxis(nodes, interp=interp, node_type=node_type, unit="TeV", name="energy")
                theirs = gm.MapAxis(nodes, interp=interp, node_type=node_type, unit="TeV",
                                    name="energy")
                pairs.append((ours, theirs))
    return pairs


def _pix_range(axis):
    """Pixel range for extrapolation tests.  For sqrt axes stay where the extrapolated
    sqrt-space value is >= 0: below that gammapy's inverse (v**2) folds back and is not
    monotonic, while gpumask's sign(v) v**2 is (not a parity point)."""
    lo, hi = -3.0, axis.nbin + 2.0
    if axis.interp == "sqrt":
        nodes = np.sqrt(axis.nodes.value)
        pix0 = np.arange(nodes.size) - (0.5 if axis.node_type == "edges" else 0.0)
        slope = (nodes[1] - nodes[0]) / (pix0[1] - pix0[0])
        lo = max(lo, pix0[0] - nodes[0] / slope + 1e-6)
    return lo, hi


@pytest.mark.gammapy
def test_pix_to_coord_and_back_match_gammapy(gammapy_maps, rng):
    for ours, theirs in _axis_pairs(gammapy_maps, rng):
        lo, hi = _pix_range(ours)
        pix = np.concatenate([rng.uniform(lo, hi, 300), np.arange(ours.nbin + 1) - 0.5,
                              [lo, hi, -0.5 - 1e-9, ours.nbin - 0.5 + 1e-9]])
        coord = ours.pix_to_coord(pix)
        assert coord.unit == u.TeV
        ref = theirs.pix_to_coord(pix)
        np.testing.assert_allclose(coord.value, u.Quantity(ref, "TeV").value, rtol=1e-10, atol=1e-12)
        back = ours.coord_to_pix(coord)
        np.testing.assert_allclose(back, theirs.coord_to_pix(coord), rtol=1e-10, atol=1e-9)
        np.testing.assert_allclose(back, pix, rtol=1e-9, atol=1e-9)
        # other units and plain numbers (taken in the axis unit)
        np.testing.assert_allclose(ours.coord_to_pix(coord.to("GeV")), back, rtol=1e-12, atol=1e-12)
        np.testing.assert_allclose(ours.coord_to_pix(coord.value), back, rtol=1e-12, atol=1e-12)


@pytest.mark.gammapy
def test_coord_to_pix_random_coords_match_gammapy(gammapy_maps, rng):
    for ours, theirs in _axis_pairs(gammapy_maps, rng):
        e = theirs.edges.value
        span = e[-1] - e[0]
        if ours.interp == "log":
            coord = 10 ** rng.uniform(np.log10(e[0]) - 1.0, np.log10(e[-1]) + 1.0, 300)
        elif ours.interp == "sqrt":
            coord = rng.uniform(max(e[0] - 0.5 * span, 0.0), e[-1] + 0.5 * span, 300)
        else:
            coord = rng.uniform(e[0] - 0.5 * span, e[-1] + 0.5 * span, 300)
        got = ours.coord_to_pix(coord * u.TeV)
        np.testing.assert_allclose(got, theirs.coord_to_pix(coord * u.TeV), rtol=1e-10, atol=1e-9)
        # bin indices away from the edges (gammapy: np.digitize on the edges)
        inner = np.min(np.abs(coord[:, None] - e[None, :]), axis=1) > 1e-9 * span
        for clip in (False, True):
            np.testing.assert_array_equal(
                ours.coord_to_idx(coord[inner] * u.TeV, clip=clip),
                theirs.coord_to_idx(coord[inner] * u.TeV, clip=clip),
            )


@pytest.mark.gammapy
def test_coord_to_idx_non_finite_matches_gammapy(gammapy_maps):
    edges = [1.0, 2.0, 4.0, 8.0]
    ours = MapAxis.from_edges(edges, unit="TeV", interp="log", name="energy")
    theirs = gammapy_maps.MapAxis.from_edges(edges, unit="TeV", interp="log", name="energy")
    coord = np.array([np.nan, 1.5, np.inf, 3.0])
    for clip in (False, True):
        # no RuntimeWarning (warnings are errors), NaN/inf -> -1 as gammapy
        got = ours.coord_to_idx(coord, clip=clip)
        np.testing.assert_array_equal(got, theirs.coord_to_idx(coord, clip=clip))


def test_pix_to_coord_extrapolates_linearly_in_interp_space():
    axis = MapAxis.from_edges([1.0, 10.0, 100.0], unit="TeV", interp="log", name="energy")
    np.testing.assert_allclose(axis.pix_to_coord([-1.5, 3.5]).value, [0.1, 1e4], rtol=RTOL)
    axis = MapAxis.from_nodes([0.0, 2.0, 3.0], interp="lin")
    np.testing.assert_allclose(axis.pix_to_coord([-1.0, 3.0, 4.5]).value, [-2.0, 4.0, 5.5], rtol=RTOL)
    np.testing.assert_allclose(axis.coord_to_pix([-2.0, 4.0, 5.5]), [-1.0, 3.0, 4.5], rtol=RTOL)
    # sqrt below zero stays monotonic (inverse of sign(v) sqrt|v|)
    axis = MapAxis.from_nodes([1.0, 4.0, 9.0], interp="sqrt")
    np.testing.assert_allclose(axis.pix_to_coord([-2.0, -1.0]).value, [-1.0, 0.0], atol=1e-12)


# ---------------------------------------------------------------------- squash, slice, equality


@pytest.mark.gammapy
@pytest.mark.parametrize("node_type", ["edges", "center"])
@pytest.mark.parametrize("interp", ["lin", "log", "sqrt"])
def test_squash_and_slice_match_gammapy(gammapy_maps, rng, node_type, interp):
    nodes = _random_nodes(rng, 7, interp)
    ours = MapAxis(nodes, interp=interp, node_type=node_type, unit="GeV", name="energy_true")
    theirs = gammapy_maps.MapAxis(nodes, interp=interp, node_type=node_type, unit="GeV",
                                  name="energy_true")
    _assert_axis_matches(ours.squash(), theirs.squash())
    assert ours.squash().nbin == 1
    for idx in (slice(1, 3), slice(0, 1), slice(None), slice(2, None), slice(-2, None),
                slice(None, -3), slice(4, 100)):
        _assert_axis_matches(ours.slice(idx), theirs.slice(idx))
    with pytest.raises(ValueError, match="slice"):
        ours.slice(slice(3, 3))
    with pytest.raises(ValueError, match="slice"):
        ours.slice(slice(0, 6, 2))


def test_equality():
    edges = np.geomspace(1.0, 100.0, 5)
    axis = MapAxis.from_edges(edges, unit="TeV", interp="log", name="energy")
    same = [
        MapAxis.from_edges(edges * u.TeV, interp="log", name="energy"),
        MapAxis.from_edges(edges * 1000.0, unit="GeV", interp="log", name="energy"),
        MapAxis.from_energy_bounds(1.0, 100.0, 4, unit="TeV"),
        MapAxis.from_energy_edges(edges * u.TeV),
        axis.copy(),
        axis.slice(slice(None)),
    ]
    for other in same:
        assert other == axis and axis == other and not (axis != other)
    different = [
        MapAxis.from_edges(edges * 1.01, unit="TeV", interp="log", name="energy"),
        MapAxis.from_edges(edges[:-1], unit="TeV", interp="log", name="energy"),
        MapAxis.from_edges(edges, unit="TeV", interp="lin", name="energy"),
        MapAxis.from_edges(edges, unit="TeV", interp="log", name="energy_true"),
        MapAxis.from_edges(edges, unit="deg", interp="log", name="energy"),
        MapAxis(edges, unit="TeV", interp="log", name="energy", node_type="center"),
        axis.squash(),
    ]
    for other in different:
        assert other != axis and not (axis == other)
    assert axis != "energy" and axis != None  # noqa: E711
    with pytest.raises(TypeError):
        hash(axis)


@pytest.mark.gammapy
def test_equality_agrees_with_gammapy(gammapy_maps):
    gm = gammapy_maps
    edges = np.geomspace(1.0, 100.0, 5)
    variants = [
        (edges, "TeV", "log", "energy"),
        (edges * 1000.0, "GeV", "log", "energy"),
        (edges * (1 + 1e-9), "TeV", "log", "energy"),
        (edges * 1.01, "TeV", "log", "energy"),
        (edges, "TeV", "lin", "energy"),
        (edges, "TeV", "log", "energy_true"),
        (edges[:-1], "TeV", "log", "energy"),
    ]
    ours = [MapAxis.from_edges(e, unit=un, interp=i, name=n) for e, un, i, n in variants]
    theirs = [gm.MapAxis.from_edges(e, unit=un, interp=i, name=n) for e, un, i, n in variants]
    for a, ga in zip(ours, theirs):
        for b, gb in zip(ours, theirs):
            assert (a == b) == (ga == gb)


# ---------------------------------------------------------------------- bands tables


def _gm_axes(gm, which):
    axes = {
        "energy": gm.MapAxis.from_energy_bounds(1.0, 10.0, 3, unit="TeV"),
        "energy_center": gm.MapAxis.from_energy_bounds(0.1, 10.0, 4, unit="TeV", node_type="center"),
        "energy_true": gm.MapAxis.from_energy_bounds(0.5, 50.0, 5, unit="TeV", name="energy_true"),
        "rad": gm.MapAxis.from_edges([0.0, 0.1, 0.3, 1.0], unit="deg", name="rad"),
        "migra": gm.MapAxis.from_nodes([0.2, 0.6, 1.0, 1.4, 1.8], name="migra", interp="lin"),
        "offset_sqrt": gm.MapAxis.from_edges([0.0, 1.0, 2.0, 2.5], unit="deg", name="offset",
                                             interp="sqrt"),
    }
    return [axes[name] for name in which]


def _ours_from_gm(axis):
    return MapAxis(axis.center if axis.node_type == "center" else axis.edges,
                   interp=axis.interp, name=axis.name, node_type=axis.node_type)


AXES_SETS = [
    ("energy",),
    ("energy_center",),
    ("energy_true",),
    ("rad",),
    ("migra",),
    ("energy", "rad"),
    ("energy_true", "migra"),
    ("rad", "energy_center"),
    ("offset_sqrt", "energy"),
]


@pytest.mark.gammapy
@pytest.mark.parametrize("names", AXES_SETS, ids=lambda n: "+".join(n))
def test_bands_hdu_written_by_gpumask_read_by_gammapy(gammapy_maps, names):
    gm = gammapy_maps
    gm_axes = _gm_axes(gm, names)
    ours = [_ours_from_gm(ax) for ax in gm_axes]
    hdu = axes_to_bands_hdu(ours, hdu_bands="COUNTS_BANDS")
    assert isinstance(hdu, fits.BinTableHDU) and hdu.name == "COUNTS_BANDS"

    back = gm.MapAxes.from_table_hdu(hdu, format="gadf")
    assert back.names == [ax.name for ax in gm_axes]
    for a, b in zip(back, gm_axes):
        assert a == b
    for a, b in zip(ours, back):
        _assert_axis_matches(a, b)

    # same table as gammapy writes: columns, units, values, AXCOLS/INTERP keywords
    ref = gm.MapAxes(gm_axes).to_table_hdu(format="gadf", hdu_bands="COUNTS_BANDS")
    assert hdu.columns.names == ref.columns.names
    for name in ref.columns.names:
        assert hdu.columns[name].unit == ref.columns[name].unit, name
        scale = float(np.max(np.abs(ref.data[name])))
        np.testing.assert_allclose(hdu.data[name], ref.data[name], rtol=RTOL, atol=RTOL * scale,
                                   err_msg=name)
    for idx in range(1, len(names) + 1):
        assert hdu.header[f"AXCOLS{idx}"] == ref.header[f"AXCOLS{idx}"]
        assert hdu.header[f"INTERP{idx}"] == ref.header[f"INTERP{idx}"]
    assert f"AXCOLS{len(names) + 1}" not in hdu.header


@pytest.mark.gammapy
@pytest.mark.parametrize("names", AXES_SETS, ids=lambda n: "+".join(n))
def test_bands_hdu_written_by_gammapy_read_by_gpumask(gammapy_maps, names):
    gm = gammapy_maps
    gm_axes = _gm_axes(gm, names)
    hdu = gm.MapAxes(gm_axes).to_table_hdu(format="gadf")
    ours = axes_from_bands_hdu(hdu)
    assert [ax.name for ax in ours] == [ax.name for ax in gm_axes]
    for a, b in zip(ours, gm_axes):
        _assert_axis_matches(a, b)
    assert ours == [_ours_from_gm(ax) for ax in gm_axes]
    # through a FITS file on disk too (float64 columns, TUNIT)
    hdulist = fits.HDUList([fits.PrimaryHDU(), hdu])
    back = axes_from_bands_hdu(fits.HDUList.fromstring(_to_bytes(hdulist))["BANDS"])
    assert back == ours


def _to_bytes(hdulist):
    import io  # noqa: PLC0415

    buffer = io.BytesIO()
    hdulist.writeto(buffer)
    return buffer.getvalue()


def test_bands_hdu_round_trip_and_none():
    axes = [
        MapAxis.from_energy_bounds(1.0, 10.0, 3, unit="TeV"),
        MapAxis.from_nodes([0.5, 1.0, 1.5], name="migra"),
    ]
    assert axes_from_bands_hdu(axes_to_bands_hdu(axes)) == axes
    assert axes_from_bands_hdu(None) == []
    with pytest.raises(ValueError, match="'ogip-foo'"):
        axes_from_bands_hdu(axes_to_bands_hdu(axes), format="ogip-foo")


def _ebounds_hdu(edges_kev, unit="keV"):
    table = Table()
    table["CHANNEL"] = np.arange(1, len(edges_kev), dtype=np.int16)
    table["E_MIN"] = np.asarray(edges_kev[:-1], dtype=np.float32)
    table["E_MAX"] = np.asarray(edges_kev[1:], dtype=np.float32)
    table["E_MIN"].unit = unit
    table["E_MAX"].unit = unit
    return fits.BinTableHDU(table, name="EBOUNDS")


def _energies_hdu(energies_mev, colname="Energy", unit="MeV"):
    table = Table()
    table[colname] = np.asarray(energies_mev, dtype=float)
    table[colname].unit = unit
    return fits.BinTableHDU(table, name="ENERGIES")


@pytest.mark.gammapy
@pytest.mark.parametrize("edges", [np.geomspace(1e7, 2e9, 12), [1e4, 3e4], np.geomspace(1e5, 1e8, 4)])
def test_fermi_ebounds_matches_gammapy(gammapy_maps, edges):
    hdu = _ebounds_hdu(edges)
    (ours,) = axes_from_bands_hdu(hdu, format="fgst-ccube")
    (theirs,) = gammapy_maps.MapAxes.from_table_hdu(hdu, format="fgst-ccube")
    _assert_axis_matches(ours, theirs)
    assert ours.name == "energy" and ours.interp == "log" and ours.unit == u.keV


@pytest.mark.gammapy
@pytest.mark.parametrize("colname", ["Energy", "ENERGY", "energy"])
def test_fermi_energies_matches_gammapy(gammapy_maps, colname):
    hdu = _energies_hdu(np.geomspace(50.0, 8e5, 30), colname=colname)
    (ours,) = axes_from_bands_hdu(hdu, format="fgst-template")
    (theirs,) = gammapy_maps.MapAxes.from_table_hdu(hdu, format="fgst-template")
    _assert_axis_matches(ours, theirs)
    assert ours.name == "energy_true" and ours.node_type == "center" and ours.unit == u.MeV


def test_fermi_energies_without_energy_column():
    table = Table({"FLUX": [1.0, 2.0]})
    with pytest.raises(ValueError, match="ENERGY"):
        axes_from_bands_hdu(fits.BinTableHDU(table, name="ENERGIES"), format="fgst-template")


@pytest.mark.gammapy
@pytest.mark.data
def test_fermi_counts_cube_ebounds_file(gammapy_maps, data_dir):
    path = data_dir / "fermi-3fhl-gc" / "fermi-3fhl-gc-counts-cube.fits.gz"
    with fits.open(path) as hdulist:
        (ours,) = axes_from_bands_hdu(hdulist["EBOUNDS"], format="fgst-ccube")
        (theirs,) = gammapy_maps.MapAxes.from_table_hdu(hdulist["EBOUNDS"], format="fgst-ccube")
        nplanes = hdulist[0].data.shape[0]
    _assert_axis_matches(ours, theirs)
    assert ours.nbin == nplanes == 11
    np.testing.assert_allclose(ours.edges[0].to_value("GeV"), 10.0, rtol=1e-6)


@pytest.mark.gammapy
@pytest.mark.data
@pytest.mark.parametrize(
    ("filename", "hdu_bands"),
    [
        ("fermi-3fhl-crab/Fermi-LAT-3FHL_iem.fits", "PRIMARY_BANDS"),
        ("fermi-3fhl-crab/Fermi-LAT-3FHL_data_Fermi-LAT.fits", "COUNTS_BANDS"),
        ("fermi-3fhl-crab/Fermi-LAT-3FHL_data_Fermi-LAT.fits", "EDISP_BANDS"),
        ("fermi-3fhl-crab/Fermi-LAT-3FHL_data_Fermi-LAT.fits", "PSF_BANDS"),
    ],
)
def test_gadf_bands_files(gammapy_maps, data_dir, filename, hdu_bands):
    with fits.open(data_dir / filename) as hdulist:
        ours = axes_from_bands_hdu(hdulist[hdu_bands])
        theirs = gammapy_maps.MapAxes.from_table_hdu(hdulist[hdu_bands], format="gadf")
    assert [ax.name for ax in ours] == theirs.names
    for a, b in zip(ours, theirs):
        _assert_axis_matches(a, b, rtol=1e-6)  # float32 columns in the file


# ---------------------------------------------------------------------- errors


@pytest.mark.parametrize(
    ("call", "bad"),
    [
        (lambda: MapAxis.from_edges([3.0, 2.0, 1.0]), "[3. 2. 1.]"),
        (lambda: MapAxis.from_edges([1.0, 2.0, 2.0]), "[1. 2. 2.]"),
        (lambda: MapAxis.from_nodes([1.0, 5.0, 4.0]), "[1. 5. 4.]"),
        (lambda: MapAxis.from_edges([0.0, 1.0, 2.0], interp="log"), "[0. 1. 2.]"),
        (lambda: MapAxis.from_edges([-1.0, 1.0], interp="log"), "[-1.  1.]"),
        (lambda: MapAxis.from_edges([1.0, 2.0], interp="cubic"), "'cubic'"),
        (lambda: MapAxis([1.0, 2.0], node_type="corners"), "'corners'"),
        (lambda: MapAxis.from_edges([1.0]), "1"),
        (lambda: MapAxis.from_edges([1.0, np.nan]), "nan"),
        (lambda: MapAxis.from_energy_bounds(10.0, 1.0, 3, unit="TeV"), "10.0 TeV"),
        (lambda: MapAxis.from_energy_bounds(0.0, 1.0, 3, unit="TeV"), "0.0 TeV"),
        (lambda: MapAxis.from_energy_bounds(1.0, 10.0, 0, unit="TeV"), "0"),
        (lambda: MapAxis.from_energy_bounds(1.0, 10.0, 2.5, unit="TeV"), "2.5"),
        (lambda: MapAxis.from_energy_bounds(1.0, 10.0, 3, unit="TeV", node_type="x"), "'x'"),
        (lambda: MapAxis.from_energy_edges([1.0, 2.0], unit="deg"), "deg"),
    ],
)
def test_errors_name_the_bad_value(call, bad):
    with pytest.raises(ValueError) as excinfo:
        call()
    assert bad in str(excinfo.value), str(excinfo.value)


def test_name_must_be_string():
    with pytest.raises(TypeError, match="3"):
        MapAxis.from_edges([1.0, 2.0], name=3)
