"""Example data built into gpumask, to try it without downloads.

* :func:`demo_dataset` and :func:`demo_catalog`: the field of ``gpumask demo``, a
  simulated 5 deg x 5 deg map around the Crab (the geometry of the Gammapy tutorial
  "Creating exclusion masks") with the catalogued sources inside it;
* :func:`write_example_fields`: ``n`` simulated fields along the galactic plane,
  each with a counts and a background map, a catalog of the simulated sources, a
  mask config and a field list, ready for ``gpumask batch``::

      gpumask examples example --n 20        # or, in Python:
      # gpumask.batch.write_example_fields("example", n=20)
      gpumask batch example/fields.csv --config example/config.yaml

* :func:`shared_data_dir`: where real data (the Fermi-LAT maps and catalogs of the
  examples) lives on this machine, if anywhere.
"""

from __future__ import annotations

import importlib.resources
import os
from pathlib import Path

import numpy as np
from astropy.coordinates import SkyCoord
from astropy.table import Table

from ..catalog import SourceCatalog
from ..sky.datasets import MapDataset
from ..sky.geom import WcsGeom
from ..sky.maps import Map

__all__ = ["demo_catalog", "demo_dataset", "demo_geom", "shared_data_dir", "true_background",
           "write_example_fields"]

DEMO_SOURCES = "demo_sources.ecsv"  # package data, in gpumask/cli/data
DEMO_BACKGROUND = 0.5  # counts per pixel far from the Galactic plane
DEMO_RIDGE = (1.0, 3.0)  # ridge amplitude (relative to DEMO_BACKGROUND) and Gaussian sigma in b (deg)
DEMO_PSF_SIGMA = 0.05  # deg, Gaussian PSF of the simulated sources
DEMO_SEED = 0

CONFIG = """\
# {n} simulated fields of {npix} x {npix} px at {binsz} deg (gpumask.batch.examples)
regions:
  - "galactic;circle({{lon}},{{lat}},0.1)"   # the field centre, as a known source
catalogs:
  - file: catalog.ecsv
    format: table
    radius: 0.15 deg
significance:
  correlation_radius: 0.1 deg
  threshold: 5
  low: 3
  dilation: 0.06 deg
output:
  mask: "out/{{name}}_mask.fits"
  sqrt_ts: "out/{{name}}_sqrt_ts.fits"
"""


def write_example_fields(folder, n=20, npix=250, binsz=0.02, seed=0, background=2.0, sources=3):
    """Write the inputs of ``n`` simulated fields to ``folder``, ready for ``gpumask batch``.

    Each field is ``npix`` x ``npix`` galactic pixels of ``binsz`` deg along the
    plane, with Poisson counts of a flat background plus a bright source at its
    centre and ``sources`` fainter ones.  Also on the command line:
    ``gpumask examples FOLDER --n N``.

    Parameters
    ----------
    folder : str or path
        Where to write; created if missing.  Existing example files there are
        replaced.
    n : int, optional
        Number of fields (at least 1).
    npix : int, optional
        Pixels per side of each field (at least 8).
    binsz : float, optional
        Pixel size in deg.
    seed : int, optional
        Seed of the simulated counts and source positions.
    background : float, optional
        Background counts per pixel.
    sources : int, optional
        Faint sources per field, besides the central one.

    Returns
    -------
    (Path, Path)
        The config (``folder/config.yaml``) and the field list (``folder/fields.csv``);
        the inputs are in ``folder/inputs``, a catalog in ``folder/catalog.ecsv``, and
        the config sends the outputs to ``folder/out``.

    Raises
    ------
    ValueError
        ``n``, ``npix``, ``binsz``, ``background`` or ``sources`` out of range.

    Examples
    --------
    >>> from gpumask.batch import write_example_fields
    >>> config, fields = write_example_fields("example", n=3, npix=64)  # doctest: +SKIP
    >>> fields.read_text().splitlines()[0]  # doctest: +SKIP
    'name,lon,lat,counts,background'
    """
    _check_int(n, "n", 1)
    _check_int(npix, "npix", 8)
    _check_int(sources, "sources", 0)
    for value, name in ((binsz, "binsz"), (background, "background")):
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value < float("inf"):
            raise ValueError(f"{name} must be a positive number, got {value!r}")
    folder = Path(folder)
    (folder / "inputs").mkdir(parents=True, exist_ok=True)
    (folder / "out").mkdir(exist_ok=True)
    rng = np.random.default_rng(seed)
    width = npix * binsz
    rows, catalog = ["name,lon,lat,counts,background"], []
    for k in range(n):
        lon, lat = (k * width * 1.1) % 360.0, 0.0
        geom = WcsGeom.create(skydir=(lon, lat), npix=npix, binsz=binsz, frame="galactic")
        glon, glat = geom.get_coord(backend="numpy")
        dlon = (glon - lon + 180.0) % 360.0 - 180.0
        expected = np.full(geom.data_shape, background)
        placed = [(0.0, 0.0, 40.0 * background, 0.05)]
        for _ in range(sources):
            placed.append((*rng.uniform(-0.4, 0.4, 2) * width, rng.uniform(5, 30) * background,
                           rng.uniform(0.03, 0.1)))
        for x, y, amplitude, sigma in placed:
            expected += amplitude * np.exp(-0.5 * ((dlon - x) ** 2 + (glat - y) ** 2) / sigma**2)
            catalog.append((f"SIM {k:04d}{len(catalog) % 10}", (lon + x) % 360.0, y))
        name = f"f{k:04d}"
        counts = Map.from_geom(geom, data=rng.poisson(expected).astype(np.float32), backend="numpy")
        bkg = Map.from_geom(geom, data=np.full(geom.data_shape, background), backend="numpy")
        counts.write(folder / "inputs" / f"{name}_counts.fits", overwrite=True)
        bkg.write(folder / "inputs" / f"{name}_background.fits", overwrite=True)
        rows.append(f"{name},{lon:.6f},{lat:.6f},inputs/{name}_counts.fits,inputs/{name}_background.fits")
    names, glons, glats = zip(*catalog)
    Table({"name": names, "glon": glons, "glat": glats}).write(folder / "catalog.ecsv", overwrite=True)
    fields = folder / "fields.csv"
    fields.write_text("\n".join(rows) + "\n")
    config = folder / "config.yaml"
    config.write_text(CONFIG.format(n=n, npix=npix, binsz=binsz))
    return config, fields


def _check_int(value, name, low):
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < low:
        raise ValueError(f"{name} must be an integer >= {low}, got {value!r}")


# ---------------------------------------------------------------------- the demo field


def demo_geom() -> WcsGeom:
    """The geometry of the demo field: the Gammapy tutorial's 5 deg around the Crab,
    0.02 deg pixels, galactic frame (250 x 250 pixels).

    Examples
    --------
    >>> from gpumask.batch.examples import demo_geom
    >>> demo_geom().data_shape
    (250, 250)
    """
    position = SkyCoord(83.633083, 22.0145, unit="deg", frame="icrs")
    return WcsGeom.create(skydir=position, width="5 deg", binsz=0.02, frame="galactic")


def demo_catalog() -> SourceCatalog:
    """The catalogued gamma-ray sources inside the demo field, as a catalog.

    Positions and sizes come from gamma-cat, 3FGL and 3HWC (see the header of the
    package file ``demo_sources.ecsv``); ``Size`` is a Gaussian sigma in deg (0 =
    point-like) and ``Counts`` the expected counts of the simulated source, from
    the very bright Crab down to about 5 sigma.  Host-side.

    Returns
    -------
    SourceCatalog

    Examples
    --------
    >>> import gpumask
    >>> catalog = gpumask.demo_catalog()
    >>> "Crab" in " ".join(catalog.names)
    True
    """
    ref = importlib.resources.files("gpumask.cli") / "data" / DEMO_SOURCES
    with importlib.resources.as_file(ref) as path:
        return SourceCatalog.read(path, format="table", size="Size", size_type="gauss")


def true_background(geom) -> np.ndarray:
    """The simulated background of the demo field in counts per pixel (host array,
    shape ``(ny, nx)``, the image of a cube geometry): ``0.5 * (1 + exp(-b^2 / (2 (3 deg)^2)))``, a Galactic ridge
    on a flat floor.

    Parameters
    ----------
    geom : WcsGeom
        Where to evaluate it (any geometry; the demo's is :func:`~gpumask.batch.demo_geom`).

    Returns
    -------
    numpy.ndarray

    Examples
    --------
    >>> from gpumask.batch.examples import demo_geom, true_background
    >>> round(float(true_background(demo_geom()).mean()), 2)
    0.6
    """
    _, lat = geom.to_image().get_coord(frame="galactic", backend="numpy")
    amplitude, sigma = DEMO_RIDGE
    return DEMO_BACKGROUND * (1.0 + amplitude * np.exp(-0.5 * (lat / sigma) ** 2))


def _source_counts(geom, catalog) -> np.ndarray:
    """Expected source counts per pixel (host array): every source a 2-D Gaussian
    of sigma ``hypot(Size, DEMO_PSF_SIGMA)`` holding ``Counts`` counts."""
    geom = geom.to_image()
    pixel_deg2 = geom.solid_angle(backend="numpy") * np.degrees(1.0) ** 2
    image = np.zeros(geom.data_shape)
    table = catalog.table
    for i in range(len(catalog)):
        sigma = float(np.hypot(table["Size"][i], DEMO_PSF_SIGMA))
        d = geom.separation(catalog.positions[i], backend="numpy")
        image += float(table["Counts"][i]) * pixel_deg2 / (2 * np.pi * sigma**2) * np.exp(-0.5 * (d / sigma) ** 2)
    return image


def demo_dataset(geom=None, *, backend=None, seed=DEMO_SEED, catalog=None) -> MapDataset:
    """The simulated field of ``gpumask demo`` as a dataset: ``counts`` (seeded
    Poisson draws of the true background plus the demo sources, each a 2-D Gaussian
    of sigma ``hypot(size, 0.05 deg)``) and the true ``background``.

    Parameters
    ----------
    geom : WcsGeom, optional
        The geometry; default :func:`~gpumask.batch.demo_geom` (the tutorial's Crab field).  A
        cube (e.g. ``demo_geom().to_cube([energy_axis])``, what gammapy's makers
        and estimators need) shares the expected counts equally among its
        non-spatial bins and gets an all-True ``mask_safe``.
    backend : str, optional
        Where the maps live; default the active backend.
    seed : int, optional
        Seed of the Poisson draws.
    catalog : SourceCatalog, optional
        Sources with ``Size`` and ``Counts`` columns; default :func:`demo_catalog`.

    Returns
    -------
    MapDataset
        Named ``"demo"``.

    Examples
    --------
    >>> import gpumask
    >>> dataset = gpumask.demo_dataset(backend="numpy")
    >>> dataset.counts.geom.data_shape
    (250, 250)
    >>> sqrt_ts = gpumask.ExcessMapEstimator("0.4 deg").run(dataset)["sqrt_ts"]
    """
    geom = demo_geom() if geom is None else geom
    rng = np.random.default_rng(seed)
    catalog = demo_catalog() if catalog is None else catalog
    share = geom.data_shape[:-2]
    n_bins = int(np.prod(share, dtype=np.int64))
    background = np.broadcast_to(true_background(geom) / n_bins, geom.data_shape)
    expected = background + np.broadcast_to(_source_counts(geom, catalog) / n_bins, geom.data_shape)
    counts = rng.poisson(expected).astype(np.float32)
    mask_safe = None if not share else Map.from_geom(geom, data=np.ones(geom.data_shape, bool), backend=backend)
    return MapDataset(
        Map.from_geom(geom, data=counts, backend=backend),
        background=Map.from_geom(geom, data=np.array(background), backend=backend),
        mask_safe=mask_safe,
        name="demo",
    )


# ---------------------------------------------------------------------- real data


def shared_data_dir(required=False):
    """Where the real example data (Fermi-LAT maps and datasets, source catalogs)
    lives on this machine.

    Looked up in this order: the environment variable ``GPUMASK_DATA``; then a
    folder ``shared/data`` beside the current folder or one of its parents (the
    layout of a gpumask checkout with its ``../shared`` data).  The folder holds
    ``fermi-3fhl-gc/``, ``fermi-3fhl-crab/`` and ``catalogs/`` (the same files as
    ``$GAMMAPY_DATA``'s folders of those names).

    Parameters
    ----------
    required : bool, optional
        Raise :class:`FileNotFoundError` (saying where it looked) instead of
        returning None when there is no such folder.

    Returns
    -------
    pathlib.Path or None

    Examples
    --------
    >>> import gpumask
    >>> data = gpumask.shared_data_dir()
    >>> if data is not None:
    ...     counts = gpumask.read_map(data / "fermi-3fhl-gc" / "fermi-3fhl-gc-counts.fits.gz")
    """
    looked = []
    env = os.environ.get("GPUMASK_DATA", "").strip()
    if env:
        path = Path(env).expanduser()
        if path.is_dir():
            return path.resolve()
        looked.append(f"GPUMASK_DATA={env} (not a folder)")
    here = Path.cwd().resolve()
    for folder in (here, *here.parents):
        candidate = folder / "shared" / "data"
        if candidate.is_dir():
            return candidate
    looked.append(f"shared/data in {here} and its parents")
    if required:
        raise FileNotFoundError("no example data folder found; looked at " + "; ".join(looked)
                                + ". Set GPUMASK_DATA to the folder that holds fermi-3fhl-gc/ and catalogs/.")
    return None
