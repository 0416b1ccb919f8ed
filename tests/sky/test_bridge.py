"""gammapy <-> gpumask conversion: exact round trips, counted transfers, clear refusals.

Oracle: gammapy 2.1 itself (its ``==`` on geometries, its data arrays).  Tolerance:
none; data must be bit-identical (dtype included) and geometries equal both by
gammapy's ``==`` and by gpumask's.
"""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
from astropy import units as u

import gpumask
from gpumask.sky import bridge

pytestmark = pytest.mark.gammapy

PROJECTIONS = ["CAR", "TAN", "AIT", "SIN", "ZEA", "ARC", "STG", "MOL"]
FRAMES = ["icrs", "galactic"]
DTYPES = [np.float32, np.float64, np.int32, np.dtype(">i4"), np.dtype(">f4"), np.int16, np.uint8, bool]


def _random_axes(rng, gmaps, n):
    """``n`` gammapy axes of the kinds gammapy writes: energy (log edges, one bin
    included), true energy, and named lin/sqrt axes with centre nodes."""
    axes = []
    kinds = rng.permutation(["energy", "energy_true", "rad", "phase"])[:n]
    for kind in kinds:
        nbin = int(rng.integers(1, 4))
        if kind == "energy":
            axes.append(gmaps.MapAxis.from_energy_bounds("1 GeV", f"{rng.uniform(10, 1e3):.3f} GeV", nbin))
        elif kind == "energy_true":
            axes.append(gmaps.MapAxis.from_energy_bounds("0.5 TeV", "50 TeV", nbin, name="energy_true"))
        elif kind == "rad":
            nodes = np.sort(rng.uniform(0.01, 2.0, nbin))
            nodes = np.unique(np.round(nodes, 6))
            axes.append(gmaps.MapAxis.from_nodes(nodes, unit="deg", name="rad", interp="sqrt"))
        else:
            edges = np.linspace(0, 1, nbin + 1)
            axes.append(gmaps.MapAxis.from_edges(edges, name="phase", interp="lin"))
    return axes


def _random_gammapy_map(rng, gmaps, n_axes, dtype):
    proj = str(rng.choice(PROJECTIONS))
    frame = str(rng.choice(FRAMES))
    npix = (int(rng.integers(3, 40)), int(rng.integers(3, 30)))
    binsz = float(rng.uniform(0.01, 0.5))
    skydir = (float(rng.uniform(0, 360)), float(rng.uniform(-60, 60)))
    geom = gmaps.WcsGeom.create(
        npix=npix, binsz=binsz, proj=proj, frame=frame, skydir=skydir, axes=_random_axes(rng, gmaps, n_axes)
    )
    dtype = np.dtype(dtype)
    if dtype == np.bool_:
        data = rng.random(geom.data_shape) < 0.7
    elif dtype.kind == "f":
        data = rng.normal(size=geom.data_shape).astype(dtype)
        data.flat[0] = np.nan
    else:
        data = rng.integers(0, 100, size=geom.data_shape).astype(dtype)
    return gmaps.Map.from_geom(geom, data=data, unit=str(rng.choice(["", "cm2 s", "sr-1"])), meta={"seed": 1})


def _same_data(a, b):
    # same values and dtype; gammapy keeps FITS data big-endian, gpumask native
    assert a.dtype.newbyteorder("=") == b.dtype.newbyteorder("=")
    assert a.shape == b.shape
    np.testing.assert_array_equal(a, b)  # NaN equal NaN


@pytest.mark.parametrize("seed", range(24))
def test_map_round_trip_from_gammapy(seed, backend, gammapy_maps):
    """gammapy -> gpumask -> gammapy: identical data and dtype, == geometries,
    units and meta kept, for random projections, frames, dtypes and 0-3 extra axes."""
    rng = np.random.default_rng(seed)
    gm = _random_gammapy_map(rng, gammapy_maps, seed % 4, DTYPES[seed % len(DTYPES)])
    m = gpumask.Map.from_gammapy(gm, backend=backend)
    assert m.backend.name == backend.name
    assert m.geom.data_shape == gm.geom.data_shape
    assert m.geom.axes_names == ["lon", "lat"] + list(gm.geom.axes.names)
    assert m.data.dtype.isnative
    back = m.to_gammapy()
    assert back.geom == gm.geom
    _same_data(back.data, gm.data)
    assert back.unit == gm.unit
    assert back.meta == gm.meta
    # and the other way: gpumask -> gammapy -> gpumask
    again = gpumask.Map.from_gammapy(back, backend=backend)
    assert again.geom == m.geom
    _same_data(gpumask.to_host(again.data), gpumask.to_host(m.data))


@pytest.mark.parametrize("seed", range(12))
def test_geom_and_axis_round_trip_from_gpumask(seed, gammapy_maps):
    rng = np.random.default_rng(100 + seed)
    axes = [
        gpumask.MapAxis.from_energy_bounds("1 TeV", "100 TeV", int(rng.integers(1, 5))),
        gpumask.MapAxis.from_nodes([0.1, 0.5, 0.9], unit="deg", name="rad", interp="sqrt"),
        gpumask.MapAxis.from_edges([0, 0.25, 1.0], name="phase"),
    ][: seed % 4]
    geom = gpumask.WcsGeom.create(
        npix=(int(rng.integers(2, 50)), int(rng.integers(2, 50))),
        binsz=float(rng.uniform(0.01, 1)),
        proj=str(rng.choice(PROJECTIONS)),
        frame=str(rng.choice(FRAMES + ["fk5"])),
        skydir=(float(rng.uniform(0, 360)), float(rng.uniform(-80, 80))),
        axes=axes,
    )
    ggeom = geom.to_gammapy()
    assert isinstance(ggeom, gammapy_maps.WcsGeom)
    # gammapy's own rules give the same geometry from the same header
    assert ggeom == gammapy_maps.WcsGeom.from_header(geom.to_header(), _bands(geom, gammapy_maps))
    assert ggeom.data_shape == geom.data_shape
    back = gpumask.WcsGeom.from_gammapy(ggeom)
    assert back == geom
    assert geom == ggeom and ggeom != gpumask.WcsGeom.create(npix=1)  # == across the libraries
    assert back.to_header() == geom.to_header()
    for ax in axes:
        gax = ax.to_gammapy()
        assert isinstance(gax, gammapy_maps.MapAxis)
        np.testing.assert_array_equal(gax._nodes, ax._nodes)  # the nodes cross exactly
        np.testing.assert_allclose(gax.edges.value, ax.edges.value, rtol=1e-15)  # both interpolate
        assert (gax.name, gax.interp, gax.node_type, gax.unit) == (ax.name, ax.interp, ax.node_type, ax.unit)
        assert gpumask.MapAxis.from_gammapy(gax) == ax


def _bands(geom, gmaps):
    if geom.is_image:
        return None
    from gpumask.sky.axes import axes_to_bands_hdu

    return axes_to_bands_hdu(geom.axes)


def test_one_bin_energy_map_converts(gammapy_maps):
    """The case of the issue: a map with a one-bin energy axis (what gammapy's
    estimators return) crosses both ways."""
    geom = gammapy_maps.WcsGeom.create(
        npix=(400, 200), binsz=0.02, frame="galactic",
        axes=[gammapy_maps.MapAxis.from_energy_bounds("10 GeV", "2 TeV", 1)],
    )
    gm = gammapy_maps.Map.from_geom(geom, data=np.arange(80000, dtype=float).reshape(1, 200, 400))
    m = gpumask.Map.from_gammapy(gm, backend="numpy")
    assert m.data.shape == (1, 200, 400)
    assert m.geom.axes_names == ["lon", "lat", "energy"]
    assert m.to_gammapy().geom == geom


def test_numpy_conversion_does_not_share_memory(gammapy_maps):
    gm = gammapy_maps.Map.create(npix=(5, 4), binsz=0.1)
    m = gpumask.Map.from_gammapy(gm, backend="numpy")
    m.data[...] = 7
    assert np.all(gm.data == 0)
    back = m.to_gammapy()
    back.data[...] = 3
    assert np.all(m.data == 7)


def test_transfers_are_counted(backend, gammapy_maps):
    """One counted upload per map in (on CuPy), one counted host copy per map out."""
    gm = gammapy_maps.Map.create(npix=(20, 10), binsz=0.1, dtype=float)
    with gpumask.count_transfers() as counter:
        m = gpumask.Map.from_gammapy(gm, backend=backend)
    assert counter.uploads == (1 if backend.is_gpu else 0)
    assert counter.calls == 0
    with gpumask.count_transfers() as counter:
        m.to_gammapy()
    assert counter.calls == 1
    assert counter.device_calls == (1 if backend.is_gpu else 0)


@pytest.mark.data
@pytest.mark.parametrize("name", ["fermi-3fhl-gc/fermi-3fhl-gc.fits.gz", "fermi-3fhl-crab/Fermi-LAT-3FHL_data_Fermi-LAT.fits"])
def test_real_dataset_round_trip(name, data_dir, backend):
    """The shared Fermi datasets: every map gpumask holds crosses bit for bit; the
    IRFs and GTI come back untouched."""
    datasets = pytest.importorskip("gammapy.datasets")
    path = data_dir / name
    gds = datasets.MapDataset.read(path)
    with gpumask.count_transfers() as counter:
        ds = gpumask.MapDataset.from_gammapy(gds, backend=backend)
    n_maps = len(ds.maps)
    assert counter.calls == 0
    assert counter.uploads == (n_maps if backend.is_gpu else 0)
    # same as reading the file with gpumask
    direct = gpumask.read_dataset(path, backend=backend)
    assert set(direct.maps) == set(ds.maps)
    for key, m in direct.maps.items():
        assert ds.maps[key].geom == m.geom
        _same_data(gpumask.to_host(ds.maps[key].data), gpumask.to_host(m.data))
    with gpumask.count_transfers() as counter:
        back = ds.to_gammapy()
    assert counter.calls == n_maps
    assert type(back) is type(gds)
    for key in ds.maps:
        assert getattr(back, key).geom == getattr(gds, key).geom
        _same_data(getattr(back, key).data, getattr(gds, key).data)
    assert back.psf is gds.psf and back.edisp is gds.edisp and back.gti is gds.gti


def test_onoff_dataset_round_trip(backend, gammapy_maps, rng):
    datasets = pytest.importorskip("gammapy.datasets")
    geom = gammapy_maps.WcsGeom.create(
        npix=(30, 20), binsz=0.05, axes=[gammapy_maps.MapAxis.from_energy_bounds("1 TeV", "10 TeV", 2)]
    )

    def make(data, dtype=float):
        return gammapy_maps.Map.from_geom(geom, data=np.asarray(data, dtype=dtype))

    shape = geom.data_shape
    gds = datasets.MapDatasetOnOff(
        counts=make(rng.poisson(3, shape)),
        counts_off=make(rng.poisson(9, shape)),
        acceptance=make(np.ones(shape)),
        acceptance_off=make(rng.uniform(2, 4, shape)),
        mask_safe=make(rng.random(shape) < 0.9, bool),
        name="onoff",
    )
    ds = gpumask.MapDataset.from_gammapy(gds, backend=backend)
    assert isinstance(ds, gpumask.MapDatasetOnOff)
    assert ds.name == "onoff"
    assert set(ds.maps) == {"counts", "counts_off", "acceptance", "acceptance_off", "mask_safe"}
    np.testing.assert_allclose(gpumask.to_host(ds.alpha.data), gds.alpha.data, rtol=1e-15)
    back = ds.to_gammapy()
    assert isinstance(back, datasets.MapDatasetOnOff)
    for key in ds.maps:
        _same_data(getattr(back, key).data, getattr(gds, key).data)
    assert back.mask_safe.data.dtype == np.bool_


# ----------------------------------------------------------------------------- refusals


def test_unsupported_gammapy_types_name_the_type(gammapy_maps):
    region_geom = gammapy_maps.RegionGeom.create("icrs;circle(0, 0, 1)")
    with pytest.raises(TypeError, match=r"gammapy\.maps\.region\.geom\.RegionGeom.*reproject"):
        gpumask.WcsGeom.from_gammapy(region_geom)
    with pytest.raises(TypeError, match=r"gammapy\.maps\.region\.ndmap\.RegionNDMap"):
        gpumask.Map.from_gammapy(gammapy_maps.Map.from_geom(region_geom))
    with pytest.raises(TypeError, match=r"geom must be a gpumask WcsGeom or a gammapy WcsGeom, got .*RegionGeom"):
        gpumask.exclusion_mask(region_geom, regions=[])
    with pytest.raises(TypeError, match=r"builtins|got dict"):
        bridge.as_map({"a": 1})
    label = gammapy_maps.LabelMapAxis(["a", "b"], name="label")
    with pytest.raises(TypeError, match="LabelMapAxis has no gpumask equivalent"):
        gpumask.MapAxis.from_gammapy(label)
    irregular = gammapy_maps.WcsGeom.create(
        npix=(np.array([10, 5]), np.array([10, 5])), binsz=0.1, axes=[gammapy_maps.MapAxis.from_edges([0, 1, 2], name="x")]
    )
    with pytest.raises(ValueError, match="irregular"):
        gpumask.WcsGeom.from_gammapy(irregular)


def test_import_gpumask_does_not_import_gammapy():
    code = "import sys, gpumask; gpumask.WcsGeom.create(npix=3); print('gammapy' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_conversion_without_gammapy_names_the_extra():
    code = (
        "import sys; sys.modules['gammapy'] = None; sys.modules['gammapy.maps'] = None\n"
        "import gpumask\n"
        "try:\n"
        "    gpumask.WcsGeom.create(npix=3).to_gammapy()\n"
        "except ImportError as exc:\n"
        "    print(exc)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert 'pip install "gpumask[gammapy]"' in out.stdout


def test_from_gammapy_passes_gpumask_objects_through():
    geom = gpumask.WcsGeom.create(npix=4)
    m = gpumask.Map.from_geom(geom, backend="numpy")
    assert bridge.as_geom(geom) is geom
    assert bridge.as_map(m) is m
    assert gpumask.Map.from_gammapy(m) is m
    assert gpumask.MapAxis.from_gammapy(gpumask.MapAxis.from_edges([1, 2] * u.TeV)).nbin == 1


def test_gammapy_axes_are_taken_where_axes_are(gammapy_maps):
    """WcsGeom.create(axes=...), to_cube and WcsGeom(...) take gammapy axes too."""
    gaxis = gammapy_maps.MapAxis.from_energy_bounds("1 TeV", "10 TeV", 3)
    axis = gpumask.MapAxis.from_gammapy(gaxis)
    geom = gpumask.WcsGeom.create(npix=(4, 3), axes=[gaxis])
    assert geom.axes[0] == axis
    assert gpumask.WcsGeom.create(npix=(4, 3)).to_cube([gaxis]) == geom
    assert geom == gammapy_maps.WcsGeom.create(npix=(4, 3), axes=[gaxis])
    with pytest.raises(TypeError, match="axes must be MapAxis objects, got str"):
        gpumask.WcsGeom.create(npix=3, axes=["energy"])
