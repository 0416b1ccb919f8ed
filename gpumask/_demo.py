"""The built-in example behind ``python -m gpumask demo``.

It runs the first step of the Gammapy tutorial "Creating exclusion masks" on its
geometry (Crab, 5 deg, 0.02 deg, galactic): the tutorial's two ds9 regions are
parsed with ``regions`` and rasterised on the selected backend, combined with a
boundary mask, and written as a boolean FITS mask.

The two shapes use the sky definitions gpumask adopts for region masks: a circle
is every pixel centre within the angular radius (great-circle distance); a box is
tested in the tangent plane at its centre.  The general region engine (all
shapes, pixel parity mode, one kernel launch for many regions) is
``WcsGeom.region_mask``'s job and is not duplicated here.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
from astropy.coordinates import SkyCoord

from .backend import resolve_backend
from .geom import WcsGeom, _angular_distance, _skycoord_lonlat
from .maps import Map

DEMO_REGIONS = "galactic;box(185,-4,1.0,0.5,45)\nicrs;circle(83.633083,22.0145,0.3)"


def _tangent_plane(xp, lon, lat, lon0, lat0):
    """Gnomonic (TAN) coordinates in deg of (lon, lat) about (lon0, lat0); x grows
    towards increasing longitude, y towards the north of the centre's frame."""
    lon_r, lat_r = xp.deg2rad(lon), xp.deg2rad(lat)
    lon0_r, lat0_r = np.deg2rad(lon0), np.deg2rad(lat0)
    dlon = lon_r - lon0_r
    cosc = np.sin(lat0_r) * xp.sin(lat_r) + np.cos(lat0_r) * xp.cos(lat_r) * xp.cos(dlon)
    x = xp.cos(lat_r) * xp.sin(dlon)
    y = np.cos(lat0_r) * xp.sin(lat_r) - np.sin(lat0_r) * xp.cos(lat_r) * xp.cos(dlon)
    front = cosc > 0  # the gnomonic plane only represents the near hemisphere
    return xp.rad2deg(x / cosc), xp.rad2deg(y / cosc), front


def _rasterise(geom, region, backend):
    from regions import CircleSkyRegion, RectangleSkyRegion  # noqa: PLC0415

    xp = backend.xp
    frame = region.center.frame.name
    lon, lat = geom.get_coord(frame=frame, backend=backend)
    lon0, lat0 = (float(v) for v in _skycoord_lonlat(region.center, frame))
    if isinstance(region, CircleSkyRegion):
        sep = _angular_distance(xp, lon, lat, lon0, lat0)
        return sep <= region.radius.to_value("deg")
    if isinstance(region, RectangleSkyRegion):
        x, y, front = _tangent_plane(xp, lon, lat, lon0, lat0)
        angle = np.deg2rad(region.angle.to_value("deg"))
        # ds9 rotates counter-clockwise as displayed with east to the left, i.e. from
        # west (-x here) towards north (+y).
        u = -x * np.cos(angle) + y * np.sin(angle)
        v = x * np.sin(angle) + y * np.cos(angle)
        half_w = region.width.to_value("deg") / 2
        half_h = region.height.to_value("deg") / 2
        return front & (xp.abs(u) <= half_w) & (xp.abs(v) <= half_h)
    raise TypeError(f"the demo rasterises circles and boxes, not {type(region).__name__}")


def run_demo(out_dir, backend=None, overwrite=False) -> dict:
    """Build the tutorial's region exclusion mask and write it to ``out_dir``."""
    from regions import Regions  # noqa: PLC0415

    be = resolve_backend(backend)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    target = out / "exclusion_mask.fits"
    summary_path = out / "summary.json"
    for path in (target, summary_path):
        if path.exists() and not overwrite:
            raise FileExistsError(f"{path} exists; pass --overwrite or choose another --out")

    t0 = time.perf_counter()
    position = SkyCoord(83.633083, 22.0145, unit="deg", frame="icrs")
    geom = WcsGeom.create(skydir=position, width="5 deg", binsz=0.02, frame="galactic")
    regions = Regions.parse(DEMO_REGIONS, format="ds9")
    inside = be.xp.zeros(geom.data_shape, dtype=bool)
    for region in regions:
        inside |= _rasterise(geom, region, be)
    mask = Map.from_geom(geom, data=~inside)  # False = excluded, gammapy's convention
    elapsed = time.perf_counter() - t0
    mask.write(target, overwrite=overwrite)

    host = mask.to_numpy()
    n_excluded = int(host.size - host.sum())
    summary = {
        "backend": be.name,
        "geometry": {"npix": list(geom.npix), "binsz_deg": 0.02, "frame": geom.frame, "proj": geom.projection},
        "regions": DEMO_REGIONS.splitlines(),
        "excluded_pixels": n_excluded,
        "excluded_fraction": n_excluded / mask.data.size,
        "seconds": round(elapsed, 4),
        "mask_file": str(target),
    }
    text = json.dumps(summary, indent=2)
    tmp = summary_path.with_suffix(".json.tmp")
    tmp.write_text(text)
    tmp.replace(summary_path)
    return summary
