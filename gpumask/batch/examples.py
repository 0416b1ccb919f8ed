"""Simulated batch inputs: ``n`` fields along the galactic plane, each with a
counts and a background map, a catalog of the simulated sources, a mask config
and a field list.  Used by the batch tests and benchmark, and handy to try
``gpumask batch`` without data::

    gpumask examples example --n 20        # or, in Python:
    # gpumask.batch.write_example_fields("example", n=20)
    gpumask batch example/fields.csv --config example/config.yaml
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from astropy.table import Table

from ..sky.geom import WcsGeom
from ..sky.maps import Map

__all__ = ["write_example_fields"]

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
