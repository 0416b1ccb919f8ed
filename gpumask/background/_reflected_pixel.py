"""gammapy 2.1's reflected-region search on a local TAN pixel grid (``method="pixel"``).

:func:`find_reflected_pixel` is the algorithm of gammapy 2.1's
``ReflectedRegionsFinder.run`` (``gammapy/makers/background/reflected.py``), step for
step, without gammapy:

1. a reference geometry, TAN at the pointing in the region's frame, ``binsz`` pixels,
   ``4 * separation + 0.3 deg`` wide (:meth:`gpumask.WcsGeom.create`, the same WCS);
2. the exclusion mask sampled at its pixel centres (nearest neighbour, True outside),
   with gammapy's exact floating-point chain (astropy ``wcs_pix2world``, SkyCoord frame
   transform, ``wcs_world2pix``, ``floor(p + 0.5)``) so that ties between aligned grids
   break as in gammapy;
3. the region's angular size seen from the pointing, from the pixels of
   ``reference_geom.region_mask([region], method="pixel")`` (gammapy's region mask, bit
   for bit);
4. the region rotated about the pointing pixel (regions' ``PixelRegion.rotate``), angle
   by angle, accepted when it contains no excluded pixel centre.

Same answer, faster: the excluded pixels are tested only inside each rotated region's
pixel bounding box (gammapy tests every excluded pixel of the map for every angle), and
a map-sized mask is sampled only where the reference grid falls.  A device mask is cut
to that footprint on the device and copied to the host once per call (one counted
:func:`gpumask.to_host`).

Private: :class:`gpumask.ReflectedRegionsFinder` (``method="pixel"``) calls it.
"""

from __future__ import annotations

import numbers

import numpy as np
from astropy import units as u
from astropy.coordinates import Angle, SkyCoord
from regions import PixCoord, PixelRegion, PointSkyRegion, SkyRegion

from ..backend import to_host
from ..sky.geom import WcsGeom, _frame_name
from ..sky.maps import Map

__all__ = ["find_reflected_pixel"]

FULL_CIRCLE = Angle(2 * np.pi, "rad")
# pixels added around a rotated region's bounding box before testing excluded pixels:
# regions' bounding boxes are computed in floating point; a margin keeps every pixel
# centre that ``contains`` could accept inside the window.
_BBOX_MARGIN = 2


def _angle(value, name, *, positive=False, nonnegative=False):
    try:
        angle = Angle(value)
    except (TypeError, ValueError, u.UnitsError) as exc:
        raise ValueError(f"{name} must be an angle (e.g. '0.1 rad', Angle, Quantity), got {value!r}: {exc}") \
            from None
    if angle.ndim != 0 or not np.isfinite(angle.value):
        raise ValueError(f"{name} must be one finite angle, got {value!r}")
    if positive and angle.value <= 0:
        raise ValueError(f"{name} must be > 0, got {angle}")
    if nonnegative and angle.value < 0:
        raise ValueError(f"{name} must be >= 0, got {angle}")
    return angle


def _check_inputs(region, center, max_region_number):
    if isinstance(region, PointSkyRegion):
        raise TypeError(
            "ReflectedRegionsFinder does not work with PointSkyRegion. Use WobbleRegionsFinder instead."
        )
    if isinstance(region, PixelRegion):
        raise TypeError(
            f"region must be a sky region (regions.SkyRegion, e.g. CircleSkyRegion), got the pixel region "
            f"{type(region).__name__}; convert it with region.to_sky(wcs)"
        )
    if not isinstance(region, SkyRegion):
        raise TypeError(f"region must be a regions.SkyRegion (circle, ellipse, ...), got {type(region).__name__}")
    if not isinstance(center, SkyCoord) or not center.isscalar:
        raise TypeError(f"center must be a scalar SkyCoord (the rotation point), got {center!r}")
    if (isinstance(max_region_number, (bool, np.bool_)) or not isinstance(max_region_number, numbers.Integral)
            or max_region_number < 1):
        raise ValueError(f"max_region_number must be an integer >= 1, got {max_region_number!r}")


def region_center(region):
    """The region's ``center``; for a polygon (which has none, and which gammapy 2.1
    rejects with an AttributeError) the normalised mean of its vertices' unit vectors,
    in the vertices' frame."""
    center = getattr(region, "center", None)
    if center is not None:
        return center
    vertices = getattr(region, "vertices", None)
    if vertices is None:
        raise TypeError(f"region {type(region).__name__} has neither a center nor vertices")
    xyz = vertices.cartesian.xyz.value.mean(axis=-1)
    lon = np.degrees(np.arctan2(xyz[1], xyz[0])) % 360.0
    lat = np.degrees(np.arctan2(xyz[2], np.hypot(xyz[0], xyz[1])))
    return SkyCoord(lon, lat, unit="deg", frame=vertices.frame.name)


def _reference_geometry(region, center, binsz):
    """gammapy's ``RegionsFinder._create_reference_geometry``."""
    region_centre = region_center(region)
    frame = region_centre.frame.name
    width = 4 * region_centre.separation(center) + Angle("0.3 deg")
    return WcsGeom.create(skydir=center, binsz=binsz, width=width, frame=frame, proj="TAN")


def _mask_image(exclusion_mask):
    """(image geometry, 2D data on its backend) of a boolean mask with at most
    single-bin non-spatial axes."""
    if not isinstance(exclusion_mask, Map):
        from ..sky.bridge import as_map, is_gammapy_object

        if not is_gammapy_object(exclusion_mask):
            raise TypeError(
                "exclusion_mask must be a boolean gpumask Map (True = usable), a gammapy WcsNDMap or None, "
                f"got {type(exclusion_mask).__name__}"
            )
        exclusion_mask = as_map(exclusion_mask, name="exclusion_mask", backend="numpy")
    if not exclusion_mask.is_mask:
        raise ValueError(
            f"exclusion_mask must be a boolean map (True = usable), got dtype {exclusion_mask.dtype}"
        )
    data = exclusion_mask.data
    if data.ndim > 2:
        if any(n != 1 for n in data.shape[:-2]):
            raise ValueError(
                "exclusion_mask must be an image (non-spatial axes of one bin at most), got data shape "
                f"{tuple(data.shape)}; reduce it first (e.g. reduce_over_axes)"
            )
        data = data.reshape(data.shape[-2:])
    return exclusion_mask.geom.to_image(), data


def _reachable(shape, center_pix, region_pix):
    """Boolean (ny, nx): the pixels some rotation of ``region_pix`` about ``center_pix``
    can reach (an annulus about the centre pixel, padded), or None (all of them)."""
    try:
        bbox = region_pix.bounding_box
    except (AttributeError, NotImplementedError, TypeError, ValueError):
        return None
    cx, cy = float(center_pix.x), float(center_pix.y)
    x0, x1 = bbox.ixmin - 0.5, bbox.ixmax - 0.5
    y0, y1 = bbox.iymin - 0.5, bbox.iymax - 0.5
    r_out = max(np.hypot(x - cx, y - cy) for x in (x0, x1) for y in (y0, y1))
    r_in = np.hypot(max(x0 - cx, 0.0, cx - x1), max(y0 - cy, 0.0, cy - y1))
    pad = 2.0 * _BBOX_MARGIN + 2.0
    ny, nx = shape
    dy2 = (np.arange(ny, dtype=float)[:, None] - cy) ** 2
    d2 = (np.arange(nx, dtype=float)[None, :] - cx) ** 2 + dy2
    return (d2 <= (r_out + pad) ** 2) & (d2 >= max(r_in - pad, 0.0) ** 2)


def _excluded_reference(reference_geom, exclusion_mask, reachable=None):
    """2D host boolean array, True where the reference pixel centre is excluded (gammapy's
    ``~exclusion_mask.interp_to_geom(reference_geom, fill_value=True).data``), or None when
    nothing is excluded.  One counted :func:`~gpumask.to_host` of the needed window."""
    if exclusion_mask is None:
        return None
    geom, data = _mask_image(exclusion_mask)
    nx, ny = reference_geom.npix
    # gammapy's chain, operation for operation: WcsGeom._get_pix_all + pix_to_coord,
    # MapCoord.to_frame (SkyCoord transform), coord_to_pix, pix_tuple_to_idx.
    # Only the ``reachable`` pixels are sampled (every step is elementwise, so their
    # values are those of the full grid); the others are never tested.
    y, x = np.meshgrid(np.arange(ny, dtype=float), np.arange(nx, dtype=float), indexing="ij")
    if reachable is not None:
        x, y = x[reachable], y[reachable]
    lon, lat = reference_geom.wcs.wcs_pix2world(x, y, 0)
    ref_frame, mask_frame = reference_geom.frame, geom.frame
    if ref_frame != mask_frame:
        sky = SkyCoord(u.Quantity(lon, "deg"), u.Quantity(lat, "deg"), frame=ref_frame)
        sky = sky.transform_to(_frame_name(mask_frame))
        lon, lat = sky.data.lon.deg, sky.data.lat.deg
    px, py = geom.wcs.wcs_world2pix(lon, lat, 0)
    mnx, mny = geom.npix
    with np.errstate(invalid="ignore"):
        ix = np.floor(px + 0.5)
        iy = np.floor(py + 0.5)
        inside = (ix >= 0) & (ix < mnx) & (iy >= 0) & (iy < mny)  # False for NaN
    if not inside.any():
        # the one host copy is still made (of nothing) so every call counts the same
        to_host(data[:0, :0])
        return None
    ix = ix[inside].astype(np.intp)
    iy = iy[inside].astype(np.intp)
    x0, x1 = int(ix.min()), int(ix.max()) + 1
    y0, y1 = int(iy.min()), int(iy.max()) + 1
    window = to_host(data[y0:y1, x0:x1])
    values = np.zeros(inside.shape, dtype=bool)
    values[inside] = ~window[iy - y0, ix - x0]
    if reachable is None:
        return values
    excluded = np.zeros((ny, nx), dtype=bool)
    excluded[reachable] = values
    return excluded


def _region_angular_size(region, reference_geom, center_pix):
    """gammapy's ``ReflectedRegionsFinder._region_angular_size``."""
    # built on numpy: a host array already, no device copy
    mask = reference_geom.region_mask([region], method="pixel", backend="numpy").data
    pix_y, pix_x = np.nonzero(mask)
    if pix_x.size == 0:
        raise ValueError(
            f"region {region!r} covers no pixel centre of the reference grid (binsz "
            f"{reference_geom.pixel_scales[1].to_value('deg'):g} deg); use a smaller binsz"
        )
    pixels = PixCoord(pix_x, pix_y)
    dx, dy = center_pix.x - pixels.x, center_pix.y - pixels.y
    angles = Angle(np.arctan2(dx, dy), "rad")
    angular_size = np.max(angles) - np.min(angles)
    if angular_size.value > np.pi:
        angle_wrapped = angles.wrap_at(0 * u.rad)
        angular_size = np.max(angle_wrapped) - np.min(angle_wrapped)
    return angular_size


def _window(region_pix, shape):
    """Row and column slices of the pixels that ``region_pix`` may contain, or None
    when its bounding box is unknown (then every pixel is tested)."""
    try:
        bbox = region_pix.bounding_box
    except (AttributeError, NotImplementedError, TypeError, ValueError):
        return None
    ny, nx = shape
    y0 = min(max(bbox.iymin - _BBOX_MARGIN, 0), ny)
    y1 = min(max(bbox.iymax + _BBOX_MARGIN, 0), ny)
    x0 = min(max(bbox.ixmin - _BBOX_MARGIN, 0), nx)
    x1 = min(max(bbox.ixmax + _BBOX_MARGIN, 0), nx)
    return slice(y0, y1), slice(x0, x1)


def _contains_excluded(region_pix, excluded):
    """Whether ``region_pix`` contains any excluded pixel centre (gammapy's
    ``np.any(region_test.contains(excluded_pixels))``, over the bounding box only)."""
    window = _window(region_pix, excluded.shape)
    if window is None:
        pix_y, pix_x = np.nonzero(excluded)
    else:
        pix_y, pix_x = np.nonzero(excluded[window])
        pix_y = pix_y + window[0].start
        pix_x = pix_x + window[1].start
    if pix_x.size == 0:
        return False
    return bool(np.any(region_pix.contains(PixCoord(pix_x, pix_y))))


def find_reflected_pixel(region, center, exclusion_mask, *, angle_increment, min_distance,
                         min_distance_input, max_region_number, binsz):
    """Reflected regions with gammapy 2.1's local-TAN pixel algorithm.

    The same regions, in the same order, as gammapy 2.1's
    ``ReflectedRegionsFinder(...).run(region, center, exclusion_mask)``: the on region is
    rotated about ``center`` on a TAN pixel grid; a rotation is accepted when no excluded
    pixel centre lies inside the rotated region, and the search steps by the region's
    angular size (plus ``min_distance``) after an accepted region, by ``angle_increment``
    after a rejected one.

    Parameters
    ----------
    region : `~regions.SkyRegion`
        On region (circle, ellipse, rectangle, polygon, annulus, ...; not a
        ``PointSkyRegion``).
    center : `~astropy.coordinates.SkyCoord`
        Rotation point (the pointing position), scalar.
    exclusion_mask : `~gpumask.Map` or None
        Boolean mask (True = usable) on any geometry and backend, or None (nothing
        excluded).  Non-spatial axes must have one bin.  A device mask is cut to the
        reference grid's footprint on the device and copied to the host once (one counted
        :func:`~gpumask.to_host` per call; a numpy mask counts one call, no copy).
    angle_increment : `~astropy.coordinates.Angle`
        Rotation step after a rejected position (> 0).
    min_distance : `~astropy.coordinates.Angle`
        Extra rotation between two accepted regions (>= 0).
    min_distance_input : `~astropy.coordinates.Angle`
        Extra rotation between the on region and the first and last off regions.
    max_region_number : int
        Most regions returned (>= 1).
    binsz : `~astropy.coordinates.Angle`
        Pixel size of the reference grid.

    Returns
    -------
    regions : list of `~regions.SkyRegion`
        Off regions (host objects), in gammapy's order.
    wcs : `~astropy.wcs.WCS`
        WCS of the reference TAN grid (gammapy returns the same).

    Raises
    ------
    TypeError
        For a ``PointSkyRegion`` (use a wobble finder), a pixel region, or a mask that is
        not a map.
    ValueError
        For a bad angle, ``max_region_number`` or mask (not boolean, several planes), or a
        region smaller than one reference pixel.

    Examples
    --------
    >>> from astropy.coordinates import Angle, SkyCoord
    >>> from regions import CircleSkyRegion
    >>> from gpumask.background._reflected_pixel import find_reflected_pixel
    >>> pointing = SkyCoord(83.2, 22.7, unit="deg", frame="icrs")
    >>> on = CircleSkyRegion(SkyCoord(80.2, 23.5, unit="deg", frame="icrs"), Angle(0.4, "deg"))
    >>> regions, wcs = find_reflected_pixel(
    ...     on, pointing, None, angle_increment=Angle("0.1 rad"), min_distance=Angle("0 rad"),
    ...     min_distance_input=Angle("1 rad"), max_region_number=10000, binsz=Angle("0.01 deg"))
    >>> len(regions)  # gammapy 2.1 finds the same 14
    14
    """
    angle_increment = _angle(angle_increment, "angle_increment", positive=True)
    min_distance = _angle(min_distance, "min_distance", nonnegative=True)
    min_distance_input = _angle(min_distance_input, "min_distance_input")
    binsz = _angle(binsz, "binsz", positive=True)
    _check_inputs(region, center, max_region_number)

    reference_geom = _reference_geometry(region, center, binsz)
    wcs = reference_geom.wcs
    center_pixel = PixCoord.from_sky(center, wcs)
    region_pix = region.to_pixel(wcs)
    excluded = _excluded_reference(reference_geom, exclusion_mask,
                                   _reachable(reference_geom.data_shape_image, center_pixel, region_pix))
    if excluded is not None and not excluded.any():
        excluded = None

    angle_min = _region_angular_size(region, reference_geom, center_pixel) + min_distance
    angle_max = FULL_CIRCLE - angle_min - min_distance_input
    if angle_min.value <= 0:
        # gammapy 2.1 loops for ever here (the angle never advances after an accepted region)
        raise ValueError(
            f"region {region!r} spans no angle seen from the pointing at binsz {binsz} and min_distance is "
            f"{min_distance}; give min_distance > 0 or a smaller binsz"
        )

    regions = []
    angle = angle_min + min_distance_input
    while angle < angle_max:
        region_test = region_pix.rotate(center_pixel, angle)
        if excluded is None or not _contains_excluded(region_test, excluded):
            regions.append(region_test.to_sky(wcs))
            if len(regions) >= max_region_number:
                break
            angle += angle_min
        else:
            angle += angle_increment
    return regions, wcs
