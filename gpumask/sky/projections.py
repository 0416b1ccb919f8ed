"""Pixel <-> sky coordinates of a 2D celestial FITS WCS, on numpy or cupy.

The chain is the one of Calabretta & Greisen (2002, A&A 395, 1077, "Paper II"):

1. pixel -> intermediate world coordinates ``(X, Y)`` in degrees with the
   ``CD = CDELT * PC`` matrix,
2. ``(X + x0, Y + y0)`` -> native spherical ``(phi, theta)`` (deprojection; ``x0, y0``
   are wcslib's offsets for a non-default fiducial point, normally zero),
3. native -> celestial ``(lon, lat)`` by the rotation described by wcslib's
   five euler numbers (``wcs.wcs.cel.euler``).

The same formulas exist twice: here as array code that runs unchanged on numpy or
cupy (the oracle), and in ``kernels/wcs_proj.cuh`` as ``__host__ __device__``
functions used by the fused grid kernel of ``kernels/wcs.cu``.  Keep the two in
step; ``tests/test_projections.py`` compiles the header on the host and compares.

Where a textbook formula is ill-conditioned, a better equivalent is used (for
example ``theta = atan2(z, hypot(x, y))`` instead of ``asin(z)`` near the poles),
so results agree with wcslib to ~1e-11 deg.  The exception is MOL within a few
hundredths of a degree of the poles, where wcslib's own ``asin`` loses digits
(1e-9 deg at 0.03 deg from the pole; it even returns NaN within ~1e-7 deg); there
this module is the more accurate one.  Out-of-domain points (outside the AIT/MOL
ellipse, beyond the SIN/ZEA/ARC disc, beyond +-180 deg in CAR) become NaN, as
astropy returns there.
"""

from __future__ import annotations

import contextlib
import math
from dataclasses import dataclass

import numpy

from gpumask._kernels import KernelBuild, get_kernel, register_builds

__all__ = [
    "SUPPORTED_PROJECTIONS", "WcsParams", "pix2world", "world2pix", "pixel_grid_world",
    "projection_defines", "pix2world_build",
]

SUPPORTED_PROJECTIONS = ("CAR", "TAN", "SIN", "AIT", "ZEA", "ARC", "STG", "MOL")
_ZENITHAL = ("TAN", "SIN", "ZEA", "ARC", "STG")

D2R = math.pi / 180.0
R2D = 180.0 / math.pi
# wcslib accepts native coordinates this far outside [-180, 180] x [-90, 90] (prjbchk).
_TOL = 1.0e-13
# Below this v = pi - 2*|gamma| the MOL function v - sin(v) is summed as a series.
_MOL_SERIES_V = 0.1
_MOL_NEWTON_STEPS = 5
_SQRT2 = math.sqrt(2.0)


# --------------------------------------------------------------------------- parameters


@dataclass(frozen=True)
class WcsParams:
    """Host-side numbers describing a 2D celestial WCS: all the device math needs.

    Attributes
    ----------
    code : str
        Projection code, one of :data:`SUPPORTED_PROJECTIONS`.
    crpix : tuple of float
        FITS (1-based) reference pixel ``(CRPIX1, CRPIX2)``.
    cd : tuple of tuple of float
        ``CDELT * PC`` (deg per pixel); rows are world axes (lon, lat).
    cd_inv : tuple of tuple of float
        Inverse of ``cd``.
    euler : tuple of float
        wcslib's celestial euler numbers: longitude of the native pole, celestial
        colatitude of the native pole, native longitude of the celestial pole (all
        deg), and the cosine and sine of the second one.
    x0, y0 : float
        wcslib's projection offsets (``prj.x0``, ``prj.y0``), usually 0.
    r0 : float
        Radius of the generating sphere (``prj.r0``, 180/pi by default).
    pv : tuple of float
        Projection parameters; none of the supported projections needs any, kept
        for projections added later.
    """

    code: str
    crpix: tuple
    cd: tuple
    cd_inv: tuple
    euler: tuple
    x0: float = 0.0
    y0: float = 0.0
    r0: float = R2D
    pv: tuple = ()

    def __post_init__(self):
        if self.code not in SUPPORTED_PROJECTIONS:
            raise ValueError(
                f"projection code {self.code!r} is not supported; choose one of "
                f"{SUPPORTED_PROJECTIONS}"
            )
        # frozen: normalise once to plain floats / tuples (hashable, picklable)
        for name, shape in (("crpix", (2,)), ("cd", (2, 2)), ("cd_inv", (2, 2)),
                            ("euler", (5,)), ("x0", ()), ("y0", ()), ("r0", ()), ("pv", None)):
            object.__setattr__(self, name, _floats(getattr(self, name), shape, name))
        if not self.r0 > 0:
            raise ValueError(f"WcsParams.r0 must be positive, got {self.r0!r}")
        (a, b), (c, d) = self.cd
        if a * d - b * c == 0:
            raise ValueError(f"WcsParams.cd is singular: {self.cd!r}")

    @classmethod
    def from_wcs(cls, wcs) -> WcsParams | None:
        """Device parameters of an :class:`astropy.wcs.WCS`, or None if unsupported.

        None is returned (never an exception) for anything the device math does
        not reproduce: other than 2 axes, non-celestial axes, latitude before
        longitude, a projection outside :data:`SUPPORTED_PROJECTIONS`, SIN with
        non-zero ``PV2_1``/``PV2_2`` (slant/NCP), or any distortion (SIP, TPV,
        lookup tables).  As a last guard the parameters must reproduce astropy on
        25 probe pixels around the reference pixel (1e-7 deg), which catches
        distortions astropy applies without exposing them.  Calls
        ``wcs.wcs.set()``, as every astropy transform does.
        """
        prm = getattr(wcs, "wcs", None)
        if prm is None or getattr(wcs, "naxis", None) != 2:
            return None
        for attr in ("sip", "cpdis1", "cpdis2", "det2im1", "det2im2"):
            if getattr(wcs, attr, None) is not None:
                return None
        if getattr(wcs, "has_distortion", False):
            return None
        try:
            prm.set()
        except Exception:  # astropy raises several types for invalid headers
            return None
        if prm.lng != 0 or prm.lat != 1:
            return None
        prj = prm.cel.prj
        code = str(prj.code)
        if code not in SUPPORTED_PROJECTIONS:
            return None
        # "RA---TAN-SIP", "RA---TPV" etc. carry distortions even when set() maps them.
        if any(str(ct)[5:].strip("-") != code for ct in prm.ctype):
            return None
        if code == "SIN" and any(v and not math.isnan(v) for v in prj.pv[1:3]):
            return None  # slant orthographic / NCP
        cd = numpy.asarray(prm.get_cdelt(), dtype=float)[:, None] * numpy.asarray(
            prm.get_pc(), dtype=float
        )
        if not numpy.all(numpy.isfinite(cd)) or numpy.linalg.det(cd) == 0:
            return None
        euler = numpy.asarray(prm.cel.euler, dtype=float)
        crpix = numpy.asarray(prm.crpix, dtype=float)
        if not (numpy.all(numpy.isfinite(euler)) and numpy.all(numpy.isfinite(crpix))):
            return None
        params = cls(
            code=code,
            crpix=tuple(crpix),
            cd=tuple(map(tuple, cd)),
            cd_inv=tuple(map(tuple, numpy.linalg.inv(cd))),
            euler=tuple(euler),
            x0=float(prj.x0),
            y0=float(prj.y0),
            r0=float(prj.r0),
        )
        # astropy folds some distortions (TPV, TPD, ...) into wcslib without exposing
        # them; a few probe pixels catch those and anything else not modelled here.
        return params if params._agrees_with(wcs) else None

    def _agrees_with(self, wcs, tol=1e-7) -> bool:
        """Whether astropy and this module agree (deg) on a fixed set of probe pixels."""
        steps = numpy.array([-100.0, -7.0, 0.0, 7.0, 100.0])
        x, y = (a.ravel() for a in numpy.meshgrid(
            self.crpix[0] - 1.0 + steps, self.crpix[1] - 1.0 + steps))
        try:
            with numpy.errstate(invalid="ignore"):
                ref_lon, ref_lat = wcs.wcs_pix2world(x, y, 0)
        except Exception:  # any wcslib error: leave this WCS to astropy
            return False
        lon, lat = pix2world(self, x, y)
        nan = numpy.isnan(ref_lon) | numpy.isnan(ref_lat)
        if not numpy.array_equal(nan, numpy.isnan(lon)):
            return False
        dlon = (lon[~nan] - ref_lon[~nan] + 180.0) % 360.0 - 180.0
        dlon *= numpy.cos(numpy.radians(ref_lat[~nan]))
        return bool(numpy.all(numpy.abs(dlon) < tol) and numpy.all(
            numpy.abs(lat[~nan] - ref_lat[~nan]) < tol))

    def kernel_args(self) -> tuple:
        """The 18 doubles of ``struct gpumask_wcs`` (kernels/wcs_proj.cuh), in order."""
        values = (
            *self.crpix, *self.cd[0], *self.cd[1], *self.cd_inv[0], *self.cd_inv[1],
            self.x0, self.y0, self.r0, *self.euler,
        )
        return tuple(numpy.float64(v) for v in values)

    def kernel_defines(self) -> dict:
        """``#define``s selecting this projection's specialisation of the device math
        (:func:`projection_defines` of :attr:`code`)."""
        return projection_defines(self.code)


def _floats(values, shape, name):
    """``values`` as a float (shape ``()``) or nested tuple of finite floats."""
    try:
        arr = numpy.asarray(values, dtype=float)
    except (TypeError, ValueError):
        arr = None
    if arr is None or (shape is not None and arr.shape != shape) or arr.ndim > 2 or not (
            numpy.all(numpy.isfinite(arr))):
        want = "any number of" if shape is None else "shape " + str(shape) + " of"
        raise ValueError(f"WcsParams.{name} must be {want} finite numbers, got {values!r}")
    return float(arr) if arr.ndim == 0 else tuple(
        tuple(map(float, row)) if arr.ndim == 2 else float(row) for row in arr)


# --------------------------------------------------------------------------- helpers


def _quiet(xp):
    # NaN from out-of-domain points is expected; with pytest's filterwarnings=error a
    # numpy RuntimeWarning would otherwise abort.  cupy never warns.
    if xp is numpy:
        return numpy.errstate(invalid="ignore", divide="ignore", over="ignore")
    return contextlib.nullcontext()


def _check_params(params):
    if not isinstance(params, WcsParams):
        raise TypeError(
            f"params must be a WcsParams (see WcsParams.from_wcs), got {type(params).__name__}"
        )


def _is_cupy(xp) -> bool:
    return getattr(xp, "__name__", "") == "cupy"


def _wrap360(xp, lon):
    """lon -> [0, 360) in place."""
    xp.remainder(lon, 360.0, out=lon)
    # remainder of a tiny negative number rounds to exactly 360
    xp.copyto(lon, 0.0, where=lon >= 360.0)
    return lon


def _normalise_phi(xp, phi):
    """Native longitude -> [-180, 180] in place, keeping +-180 as wcslib does."""
    xp.fmod(phi, 360.0, out=phi)
    xp.copyto(phi, phi - 360.0, where=phi > 180.0)
    xp.copyto(phi, phi + 360.0, where=phi < -180.0)
    return phi


def _mol_h(xp, v):
    """v - sin(v) for v in [0, pi] (new array), without cancellation at small v."""
    h = xp.sin(v)
    xp.subtract(v, h, out=h)
    small = v < _MOL_SERIES_V
    if xp is numpy:  # the series only where needed (near the poles)
        h[small] = _mol_series(v[small])
        return h
    return xp.where(small, _mol_series(v), h)


def _mol_series(v):
    # v^3/6 (1 - v^2/20 (1 - v^2/42 (1 - v^2/72))): next term < 2e-15 relative at 0.1
    v2 = v * v
    series = v2 * (-1.0 / 72.0)
    for k in (42.0, 20.0):
        series += 1.0
        series *= v2 * (-1.0 / k)
    series += 1.0
    series *= v2 * v
    series *= 1.0 / 6.0
    return series


# --------------------------------------------------------------------------- deprojection


def _deproject(p, X, Y, xp):
    """Intermediate (X, Y) -> native (phi, theta) in degrees, plus a bad-point mask.

    X and Y are consumed (overwritten).  The mask is None when every point is valid.
    """
    if p.x0:
        X += p.x0
    if p.y0:
        Y += p.y0
    code, r0 = p.code, p.r0
    bad = None
    if code == "CAR":
        k = 1.0 / (r0 * D2R)
        if k != 1.0:
            X *= k
            Y *= k
        bad = (X > 180.0 + _TOL) | (X < -180.0 - _TOL) | (Y > 90.0 + _TOL) | (Y < -90.0 - _TOL)
        xp.clip(X, -180.0, 180.0, out=X)
        xp.clip(Y, -90.0, 90.0, out=Y)
        return X, Y, bad
    if code in _ZENITHAL:
        R = xp.hypot(X, Y)
        # 0 - Y (not -Y) so that the reference point, Y = +0, gives phi = 0 not 180
        xp.subtract(0.0, Y, out=Y)
        phi = xp.arctan2(X, Y, out=X)
        phi *= R2D
        theta = R
        if code == "TAN":
            xp.arctan2(r0, R, out=theta)
            theta *= R2D
        elif code == "STG":
            R *= 1.0 / (2.0 * r0)
            xp.arctan(R, out=theta)
            theta *= -2.0 * R2D
            theta += 90.0
        elif code == "ARC":
            R *= -1.0 / (r0 * D2R)
            R += 90.0
            bad = theta < -90.0 - _TOL
            xp.maximum(theta, -90.0, out=theta)
        elif code == "ZEA":
            R *= 1.0 / (2.0 * r0)
            bad = R > 1.0 + _TOL
            xp.minimum(R, 1.0, out=R)
            xp.arcsin(R, out=theta)
            theta *= -2.0 * R2D
            theta += 90.0
        else:  # SIN: cos(theta) = r; sin(theta) from (1-r)(1+r), exact near the limb
            R *= 1.0 / r0
            bad = R > 1.0
            xp.minimum(R, 1.0, out=R)
            s = xp.subtract(1.0, R, out=Y)
            s *= 1.0 + R
            xp.sqrt(s, out=s)
            xp.arctan2(s, R, out=theta)
            theta *= R2D
        return phi, theta, bad
    if code == "AIT":
        # Z^2 = 1 - (X/4r0)^2 - (Y/2r0)^2;  cos(theta) cos(phi/2) = 2Z^2 - 1,
        # cos(theta) sin(phi/2) = Z X / 2r0,  sin(theta) = Z Y / r0.
        X *= 1.0 / (4.0 * r0)
        Y *= 1.0 / (2.0 * r0)
        z2 = X * X
        z2 += Y * Y
        xp.subtract(1.0, z2, out=z2)
        bad = z2 < 0.5 - _TOL
        xp.maximum(z2, 0.5, out=z2)
        c = z2 * 2.0
        c -= 1.0
        z = xp.sqrt(z2, out=z2)
        X *= z
        X *= 2.0
        Y *= z
        Y *= 2.0
        ct = xp.hypot(X, c, out=z)
        phi = xp.arctan2(X, c, out=X)
        phi *= 2.0 * R2D
        theta = xp.arctan2(Y, ct, out=Y)
        theta *= R2D
        return phi, theta, bad
    # MOL: Y = sqrt2 r0 sin(gamma), X = 2 sqrt2 r0 phi cos(gamma) / 180 (phi in deg),
    # pi sin(theta) = 2 gamma + sin(2 gamma).  With v = pi - 2|gamma|,
    # 1 - |sin(theta)| = (v - sin v) / pi = 2 sin^2((90 - |theta|)/2): exact at the poles.
    s = Y
    s *= 1.0 / (_SQRT2 * r0)
    bad = (s > 1.0 + _TOL) | (s < -1.0 - _TOL)
    xp.clip(s, -1.0, 1.0, out=s)
    a = xp.abs(s)
    cg = xp.subtract(1.0, a)
    cg *= 1.0 + a
    xp.sqrt(cg, out=cg)
    X *= 1.0 / (2.0 * _SQRT2 * r0)
    bad |= (X > cg + _TOL) | (X < -cg - _TOL)
    phi = X
    phi /= cg
    phi *= 180.0
    xp.copyto(phi, 0.0, where=cg == 0.0)
    xp.clip(phi, -180.0, 180.0, out=phi)
    v = xp.arctan2(cg, a, out=cg)
    v *= 2.0
    h = _mol_h(xp, v)
    h *= 1.0 / (2.0 * math.pi)
    xp.sqrt(h, out=h)
    eps = xp.arcsin(h, out=h)
    eps *= -2.0 * R2D
    eps += 90.0
    theta = xp.copysign(eps, s, out=eps)
    return phi, theta, bad


def _project(p, phi, theta, xp):
    """Native (phi, theta) deg -> intermediate (X, Y) deg, plus a bad-point mask."""
    code, r0 = p.code, p.r0
    bad = None
    if code == "CAR":
        k = r0 * D2R
        X, Y = phi * k, theta * k
    elif code in _ZENITHAL:
        colat = xp.subtract(90.0, theta)
        if code == "TAN":
            bad = theta <= 0.0
            colat *= D2R
            R = xp.tan(colat, out=colat)
            R *= r0
        elif code == "SIN":
            bad = theta < 0.0
            colat *= D2R
            R = xp.sin(colat, out=colat)
            R *= r0
        elif code == "STG":
            bad = theta <= -90.0
            colat *= 0.5 * D2R
            R = xp.tan(colat, out=colat)
            R *= 2.0 * r0
        elif code == "ZEA":
            colat *= 0.5 * D2R
            R = xp.sin(colat, out=colat)
            R *= 2.0 * r0
        else:  # ARC
            R = colat
            R *= r0 * D2R
        ph = phi * D2R
        X = xp.sin(ph)
        X *= R
        Y = xp.cos(ph, out=ph)
        Y *= R
        xp.negative(Y, out=Y)
    elif code == "AIT":
        half = phi * (0.5 * D2R)
        th = theta * D2R
        ct = xp.cos(th)
        g = xp.cos(half)
        g *= ct
        g += 1.0
        xp.divide(2.0, g, out=g)
        xp.sqrt(g, out=g)
        g *= r0
        X = xp.sin(half, out=half)
        X *= ct
        X *= g
        X *= 2.0
        Y = xp.sin(th, out=th)
        Y *= g
    else:  # MOL
        v = _mol_solve(xp, theta)
        v *= 0.5
        X = xp.sin(v)
        X *= phi
        X *= 2.0 * _SQRT2 * r0 / 180.0
        Y = xp.cos(v, out=v)
        Y *= _SQRT2 * r0
        xp.copysign(Y, theta, out=Y)
    return X, Y, bad


def _mol_solve(xp, theta):
    """v = pi - 2|gamma| solving v - sin v = 2 pi sin^2((90 - |theta|)/2) (Newton)."""
    c = xp.abs(theta)
    xp.subtract(90.0, c, out=c)
    c *= 0.5 * D2R
    xp.sin(c, out=c)
    c *= c
    c *= 2.0 * math.pi
    # v^3/6 >= v - sin v, so cbrt(6c) starts left of the root; convexity then makes
    # Newton monotone after the first step; four steps reach full precision.
    v = xp.cbrt(c * 6.0)
    for _ in range(_MOL_NEWTON_STEPS):
        slope = xp.sin(v * 0.5)
        slope *= slope
        slope *= 2.0
        step = _mol_h(xp, v)
        step -= c
        step /= slope
        xp.copyto(step, 0.0, where=slope == 0.0)
        v -= step
    return v


# --------------------------------------------------------------------------- rotation


def _rotate(p, lon, lat, xp, inverse=False):
    """Native -> celestial (or, ``inverse``, celestial -> native) spherical rotation.

    C&G eqs. 2 and 5 are the same formula with the roles of euler[0] (celestial
    longitude of the native pole) and euler[2] (native longitude of the celestial
    pole) swapped.  Inputs (deg) are consumed.  Returns longitude wrapped to
    [0, 360) (celestial) or [-180, 180] (native) and latitude, deg.
    """
    e0, e1, e2, e3, e4 = p.euler
    if inverse:
        e0, e2 = e2, e0
    wrap = _normalise_phi if inverse else _wrap360
    if e4 == 0.0:
        # Native pole on a celestial pole: a pure shift (or reflection) in longitude.
        if e1 == 0.0:
            lon += e0 - 180.0 - e2
        else:
            xp.subtract(e0 + e2, lon, out=lon)
            xp.negative(lat, out=lat)
        return wrap(xp, lon), lat
    lon -= e2
    lon *= D2R
    lat *= D2R
    cp = xp.cos(lon)
    sp = xp.sin(lon, out=lon)
    st = xp.sin(lat)
    ct = xp.cos(lat, out=lat)
    cp *= ct
    sp *= ct
    xp.negative(sp, out=sp)  # y = -cos(b) sin(dl)
    x = xp.multiply(st, e4, out=ct)  # x = sin(b) e4 - cos(b) cos(dl) e3
    x -= cp * e3
    z = st  # z = sin(b) e3 + cos(b) cos(dl) e4
    z *= e3
    cp *= e4
    z += cp
    # atan2 with the projected radius stays exact near the poles, unlike asin(z)
    rho = xp.hypot(x, sp, out=cp)
    b = xp.arctan2(z, rho, out=z)
    b *= R2D
    a = xp.arctan2(sp, x, out=x)
    a *= R2D
    a += e0
    return wrap(xp, a), b


# --------------------------------------------------------------------------- public API


def _intermediate_to_world(p, X, Y, xp):
    phi, theta, bad = _deproject(p, X, Y, xp)
    lon, lat = _rotate(p, phi, theta, xp)
    if bad is not None:
        xp.copyto(lon, numpy.nan, where=bad)
        xp.copyto(lat, numpy.nan, where=bad)
    return lon, lat


def pix2world(params: WcsParams, x, y, xp=numpy):
    """0-based pixel coordinates -> sky coordinates (deg).

    Parameters
    ----------
    params : WcsParams
        The WCS, from :meth:`WcsParams.from_wcs`.
    x, y : array_like
        Pixel coordinates, origin 0 (pixel centres are integers), broadcastable.
    xp : module
        ``numpy`` or ``cupy``; the arrays are converted to it.

    Returns
    -------
    lon, lat : array
        float64 arrays of the broadcast shape; ``lon`` in [0, 360).  NaN where the
        pixel lies outside the projection's domain.
    """
    _check_params(params)
    x = xp.asarray(x, dtype=xp.float64)
    y = xp.asarray(y, dtype=xp.float64)
    shape = numpy.broadcast_shapes(x.shape, y.shape)
    (a, b), (c, d) = params.cd
    with _quiet(xp):
        p1 = x - (params.crpix[0] - 1.0)
        p2 = y - (params.crpix[1] - 1.0)
        # fresh 1-D arrays: the chain below works in place and 0-d results are scalars
        X = xp.asarray(p1 * a + p2 * b).reshape(-1)
        Y = xp.asarray(p1 * c + p2 * d).reshape(-1)
        lon, lat = _intermediate_to_world(params, X, Y, xp)
    return lon.reshape(shape), lat.reshape(shape)


def world2pix(params: WcsParams, lon, lat, xp=numpy):
    """Sky coordinates (deg) -> 0-based pixel coordinates.

    Parameters
    ----------
    params : WcsParams
        The WCS, from :meth:`WcsParams.from_wcs`.
    lon, lat : array_like
        Longitude and latitude in degrees, broadcastable.
    xp : module
        ``numpy`` or ``cupy``.

    Returns
    -------
    x, y : array
        float64 pixel coordinates (origin 0); NaN where the point has no image in
        the projection (e.g. the far hemisphere of TAN/SIN) or ``|lat| > 90``.
    """
    _check_params(params)
    lon = xp.asarray(lon, dtype=xp.float64)
    lat = xp.asarray(lat, dtype=xp.float64)
    shape = numpy.broadcast_shapes(lon.shape, lat.shape)
    # private 1-D copies: the rotation works in place
    lon = xp.array(xp.broadcast_to(lon, shape).reshape(-1), copy=True)
    lat = xp.array(xp.broadcast_to(lat, shape).reshape(-1), copy=True)
    with _quiet(xp):
        outside = (lat > 90.0) | (lat < -90.0)
        phi, theta = _rotate(params, lon, lat, xp, inverse=True)
        X, Y, bad = _project(params, phi, theta, xp)
        bad = outside if bad is None else bad | outside
        if params.x0:
            X -= params.x0
        if params.y0:
            Y -= params.y0
        (a, b), (c, d) = params.cd_inv
        px = X * a
        px += Y * b
        px += params.crpix[0] - 1.0
        py = X * c
        py += Y * d
        py += params.crpix[1] - 1.0
        xp.copyto(px, numpy.nan, where=bad)
        xp.copyto(py, numpy.nan, where=bad)
    return px.reshape(shape), py.reshape(shape)


def pixel_grid_world(params: WcsParams, nx: int, ny: int, xp=numpy, mode: str = "center"):
    """Sky coordinates of every pixel centre (or corner) of an ``ny x nx`` image.

    Parameters
    ----------
    params : WcsParams
        The WCS, from :meth:`WcsParams.from_wcs`.
    nx, ny : int
        Image width and height in pixels.
    xp : module
        ``numpy`` (array code, the reference) or ``cupy`` (one fused CUDA kernel,
        ``pix2world_grid`` in kernels/wcs.cu, no temporaries).
    mode : {"center", "edges"}
        ``"center"``: pixel centres, shape ``(ny, nx)``.  ``"edges"``: pixel
        corners at pixel coordinates -0.5 .. n-0.5, shape ``(ny + 1, nx + 1)``.

    Returns
    -------
    lon, lat : array
        float64 arrays on ``xp``'s device; ``lon`` in [0, 360), NaN outside the
        projection's domain.
    """
    _check_params(params)
    for name, n in (("nx", nx), ("ny", ny)):
        if isinstance(n, bool) or not isinstance(n, (int, numpy.integer)) or n < 1:
            raise ValueError(f"{name} must be a positive integer, got {n!r}")
    if mode == "center":
        offset, mx, my = 0.0, int(nx), int(ny)
    elif mode == "edges":
        offset, mx, my = -0.5, int(nx) + 1, int(ny) + 1
    else:
        raise ValueError(f"mode must be 'center' or 'edges', got {mode!r}")
    if _is_cupy(xp):
        return _grid_cupy(params, mx, my, offset, xp)
    c1, c2 = params.crpix[0] - 1.0, params.crpix[1] - 1.0
    p1 = xp.arange(mx, dtype=xp.float64)
    p1 += offset  # same rounding as the kernel: (i + offset) - (crpix - 1)
    p1 -= c1
    p2 = xp.arange(my, dtype=xp.float64)
    p2 += offset
    p2 -= c2
    p2 = p2[:, None]
    (a, b), (c, d) = params.cd
    with _quiet(xp):
        # row and column terms are 1-D; only the sums are full-size
        X = p1 * a + p2 * b
        Y = p1 * c + p2 * d
        return _intermediate_to_world(params, X, Y, xp)


_BLOCK = (32, 8, 1)
_MAX_GRID_Y = 65535


def projection_defines(code: str) -> dict:
    """``#define``s selecting projection ``code`` in the device math (kernels/wcs_proj.cuh).

    Every kernel that projects (``wcs.cu``, ``regions.cu``) is specialised per
    projection through these.

    Parameters
    ----------
    code : str
        One of :data:`SUPPORTED_PROJECTIONS`.

    Returns
    -------
    dict
        ``{"GPUMASK_PROJ": "GPUMASK_PROJ_<code>"}``.

    Raises
    ------
    ValueError
        For a code outside :data:`SUPPORTED_PROJECTIONS`.

    Examples
    --------
    >>> from gpumask.sky.projections import projection_defines
    >>> projection_defines("TAN")
    {'GPUMASK_PROJ': 'GPUMASK_PROJ_TAN'}
    """
    if code not in SUPPORTED_PROJECTIONS:
        raise ValueError(
            f"projection code {code!r} has no device implementation; choose one of {SUPPORTED_PROJECTIONS}"
        )
    return {"GPUMASK_PROJ": f"GPUMASK_PROJ_{code}"}


def pix2world_build(code: str) -> KernelBuild:
    """The build of ``pix2world_grid`` (kernels/wcs.cu) for one projection.

    :func:`pixel_grid_world` launches exactly this build on cupy; the CI build
    check compiles it for every code (see :mod:`gpumask._kernels`).

    Parameters
    ----------
    code : str
        The projection, one of :data:`SUPPORTED_PROJECTIONS`.

    Returns
    -------
    gpumask._kernels.KernelBuild

    Raises
    ------
    ValueError
        For a code outside :data:`SUPPORTED_PROJECTIONS`.

    Examples
    --------
    >>> from gpumask.sky.projections import pix2world_build
    >>> pix2world_build("AIT").describe()
    'wcs.cu:pix2world_grid PROJ=AIT'
    """
    return KernelBuild("wcs.cu", "pix2world_grid", defines=projection_defines(code))


@register_builds
def _pix2world_builds():
    """Every build :func:`_grid_cupy` can request: one per device projection."""
    for code in SUPPORTED_PROJECTIONS:
        yield pix2world_build(code)


def _grid_cupy(params, mx, my, offset, cupy):
    kernel = get_kernel(pix2world_build(params.code))
    lon = cupy.empty((my, mx), dtype=cupy.float64)
    lat = cupy.empty((my, mx), dtype=cupy.float64)
    grid = (
        (mx + _BLOCK[0] - 1) // _BLOCK[0],
        min((my + _BLOCK[1] - 1) // _BLOCK[1], _MAX_GRID_Y),
        1,
    )
    args = (lon, lat, numpy.int32(mx), numpy.int32(my), numpy.float64(offset))
    kernel(grid, _BLOCK, args + params.kernel_args())
    return lon, lat
