"""Spherical helpers of the geometry: frame rotation of (lon, lat) arrays, the
great-circle distance and the solid angle of spherical triangles, on any backend
(``xp`` is numpy or cupy)."""

from __future__ import annotations

import numpy as np


def _rotate_lonlat(lon, lat, matrix, xp):
    lon_r, lat_r = xp.deg2rad(lon), xp.deg2rad(lat)
    clat = xp.cos(lat_r)
    x, y, z = clat * xp.cos(lon_r), clat * xp.sin(lon_r), xp.sin(lat_r)
    m = [[float(v) for v in row] for row in matrix]
    x2 = m[0][0] * x + m[0][1] * y + m[0][2] * z
    y2 = m[1][0] * x + m[1][1] * y + m[1][2] * z
    z2 = m[2][0] * x + m[2][1] * y + m[2][2] * z
    lon2 = xp.mod(xp.rad2deg(xp.arctan2(y2, x2)), 360.0)
    lat2 = xp.rad2deg(xp.arctan2(z2, xp.hypot(x2, y2)))
    return lon2, lat2


def _angular_distance(xp, lon, lat, lon0, lat0):
    """Vincenty great-circle distance in deg (stable at all separations)."""
    lon_r, lat_r = xp.deg2rad(lon), xp.deg2rad(lat)
    lon0_r, lat0_r = np.deg2rad(lon0), np.deg2rad(lat0)
    dlon = lon_r - lon0_r
    sdlon, cdlon = xp.sin(dlon), xp.cos(dlon)
    slat, clat = xp.sin(lat_r), xp.cos(lat_r)
    slat0, clat0 = np.sin(lat0_r), np.cos(lat0_r)
    num1 = clat * sdlon
    num2 = clat0 * slat - slat0 * clat * cdlon
    denom = slat0 * slat + clat0 * clat * cdlon
    return xp.rad2deg(xp.arctan2(xp.hypot(num1, num2), denom))


def _quad_solid_angle(xp, lon, lat):
    """Solid angles of the quadrilaterals of a ``(m + 1, n + 1)`` grid of corners
    (lon, lat in deg): two spherical triangles each, shape ``(m, n)``."""
    lon, lat = xp.deg2rad(lon), xp.deg2rad(lat)
    clat = xp.cos(lat)
    vec = (clat * xp.cos(lon), clat * xp.sin(lon), xp.sin(lat))
    a = tuple(v[:-1, :-1] for v in vec)
    b = tuple(v[:-1, 1:] for v in vec)
    c = tuple(v[1:, 1:] for v in vec)
    d = tuple(v[1:, :-1] for v in vec)
    return _triangle_area(xp, a, b, c) + _triangle_area(xp, a, c, d)


def _triangle_area(xp, a, b, c):
    """Solid angle of the spherical triangle with unit-vector corners a, b, c
    (Van Oosterom & Strackee)."""
    bxc = (b[1] * c[2] - b[2] * c[1], b[2] * c[0] - b[0] * c[2], b[0] * c[1] - b[1] * c[0])
    triple = a[0] * bxc[0] + a[1] * bxc[1] + a[2] * bxc[2]
    ab = a[0] * b[0] + a[1] * b[1] + a[2] * b[2]
    bc = b[0] * c[0] + b[1] * c[1] + b[2] * c[2]
    ca = c[0] * a[0] + c[1] * a[1] + c[2] * a[2]
    return 2.0 * xp.arctan2(xp.abs(triple), 1.0 + ab + bc + ca)
