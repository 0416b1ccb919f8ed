// Region rasterisation: the per-pixel shape tests and the per-thread body of
// kernel rasterise_tiles (kernels/regions.cu).
//
// Device twin of gpumask/masks/_region_raster.py (rasterise_numpy, _eval_kind): same
// shape kinds, same parameter rows, same floating-point expressions (the kernel
// is compiled with --fmad=false so products are rounded as NumPy rounds them).
// tests/cpu_harness/regions_harness.cpp runs gpumask_region_tile_thread() on the
// CPU against the NumPy path; keep the three in step.
#ifndef GPUMASK_REGIONS_CUH
#define GPUMASK_REGIONS_CUH

#include "gpumask.cuh"
#include "wcs_proj.cuh"

// Shape kinds: same numbers as gpumask/masks/_region_compile.py (KIND_*).
#define GPUMASK_KIND_CAP 1          // c[3], lo, hi:  lo <= |p - c|^2 <= hi
#define GPUMASK_KIND_SKY_ELLIPSE 2  // c[3], e1[3], e2[3], 1/tan(a), 1/tan(b)
#define GPUMASK_KIND_SKY_BOX 3      // c[3], e1[3], e2[3], tan(w/2), tan(h/2)
#define GPUMASK_KIND_SKY_POLYGON 4  // c[3], e1[3], e2[3], first vertex, count
#define GPUMASK_KIND_PIX_CIRCLE 11  // cx, cy, r
#define GPUMASK_KIND_PIX_ANNULUS 12 // cx, cy, r_in, r_out
#define GPUMASK_KIND_PIX_ELLIPSE 13 // cx, cy, cos, sin, width, height
#define GPUMASK_KIND_PIX_RECT 14    // cx, cy, cos, sin, width, height
#define GPUMASK_KIND_PIX_POLYGON 15 // first vertex, count
#define GPUMASK_REGION_NPARAM 11
#define GPUMASK_FLAG_EXCLUDE 1

// One pixel centre: pixel coordinates and unit vector (NaN when the pixel is off
// the image or off the sky, so that every test is false).
struct gpumask_pixel {
    double x, y;
    double px, py, pz;
};

// NaN and infinities fail; no library call, so it works under every compiler.
GPUMASK_HD inline bool gpumask_isfinite(double v) { return (v - v) == 0.0; }

// regions 0.11's even-odd crossing test (pnpoly), same expression and order.
GPUMASK_HD inline bool gpumask_pnpoly(double x, double y, const double* vx, const double* vy,
                                      int n)
{
    int result = 0;
    for (int i = 0; i < n; ++i) {
        const int j = (i + n - 1) % n;
        if (((vy[i] > y) != (vy[j] > y)) &&
            (x < (vx[j] - vx[i]) * (y - vy[i]) / (vy[j] - vy[i]) + vx[i]))
            result ^= 1;
    }
    return result != 0;
}

// Whether pixel q lies inside the shape of kind `kind` with parameter row p.
GPUMASK_HD inline bool gpumask_region_inside(int kind, const double* p, const double* vx,
                                             const double* vy, const gpumask_pixel& q)
{
    switch (kind) {
    case GPUMASK_KIND_PIX_CIRCLE:
        return hypot(q.x - p[0], q.y - p[1]) < p[2];
    case GPUMASK_KIND_PIX_ANNULUS: {
        const double d = hypot(q.x - p[0], q.y - p[1]);
        return (d < p[2]) != (d < p[3]);
    }
    case GPUMASK_KIND_PIX_ELLIPSE: {
        const double dx = q.x - p[0];
        const double dy = q.y - p[1];
        const double a = 2.0 * (p[2] * dx + p[3] * dy) / p[4];
        const double b = 2.0 * (p[3] * dx - p[2] * dy) / p[5];
        return a * a + b * b <= 1.0;
    }
    case GPUMASK_KIND_PIX_RECT: {
        const double dx = q.x - p[0];
        const double dy = q.y - p[1];
        const double dx_rot = p[2] * dx + p[3] * dy;
        const double dy_rot = p[3] * dx - p[2] * dy;
        return fabs(dx_rot) < p[4] * 0.5 && fabs(dy_rot) < p[5] * 0.5;
    }
    case GPUMASK_KIND_PIX_POLYGON: {
        const int first = (int)p[0];
        return gpumask_pnpoly(q.x, q.y, vx + first, vy + first, (int)p[1]);
    }
    case GPUMASK_KIND_CAP: {
        const double dx = q.px - p[0];
        const double dy = q.py - p[1];
        const double dz = q.pz - p[2];
        const double d2 = dx * dx + dy * dy + dz * dz;
        return d2 >= p[3] && d2 <= p[4];
    }
    default:
        break;
    }
    // gnomonic coordinates about the shape's centre
    const double w = q.px * p[0] + q.py * p[1] + q.pz * p[2];
    if (!(w > 0.0)) return false;
    const double a = (q.px * p[3] + q.py * p[4] + q.pz * p[5]) / w;
    const double b = (q.px * p[6] + q.py * p[7] + q.pz * p[8]) / w;
    switch (kind) {
    case GPUMASK_KIND_SKY_ELLIPSE: {
        const double ea = a * p[9];
        const double eb = b * p[10];
        return ea * ea + eb * eb <= 1.0;
    }
    case GPUMASK_KIND_SKY_BOX:
        return fabs(a) <= p[9] && fabs(b) <= p[10];
    case GPUMASK_KIND_SKY_POLYGON: {
        const int first = (int)p[9];
        return gpumask_pnpoly(a, b, vx + first, vy + first, (int)p[10]);
    }
    default:
        return false;
    }
}

// The pixel centres thread (ix, iy0 + 8 k) owns, k < TILE / 8: pixel coordinates and
// unit vectors (NaN when off the image or off the sky).  `code` is the projection
// (GPUMASK_PROJ_*), `sky` whether unit vectors are needed, `coords_from_arrays`
// whether lon/lat come from arrays (WCSs without a device projection).
template <int TILE>
GPUMASK_HD inline void gpumask_region_pixels(
    int ix, int iy0, int nx, int ny, const double* lon_in, const double* lat_in, int code,
    const gpumask_wcs& w, bool sky, bool coords_from_arrays, gpumask_pixel* pix)
{
    for (int k = 0; k < TILE / 8; ++k) {
        const int iy = iy0 + 8 * k;
        const double nan = gpumask_nan();
        pix[k].x = pix[k].y = pix[k].px = pix[k].py = pix[k].pz = nan;
        if (ix >= nx || iy >= ny) continue;
        double lon, lat;
        if (coords_from_arrays) {
            lon = lon_in[(long long)iy * nx + ix];
            lat = lat_in[(long long)iy * nx + ix];
        } else {
            gpumask_wcs_pix2world(code, w, (double)ix, (double)iy, &lon, &lat);
        }
        if (!gpumask_isfinite(lon) || !gpumask_isfinite(lat)) continue;
        pix[k].x = (double)ix;
        pix[k].y = (double)iy;
        if (sky) {
            double sl, cl, sb, cb;
            gpumask_sincos(lon * GPUMASK_D2R, &sl, &cl);
            gpumask_sincos(lat * GPUMASK_D2R, &sb, &cb);
            pix[k].px = cb * cl;
            pix[k].py = cb * sl;
            pix[k].pz = sb;
        }
    }
}

// The work of thread (tx, ty) of the block that owns active tile `t`: it owns
// pixel column tile_x * TILE + tx and rows tile_y * TILE + ty + 8 k, k < TILE / 8.
// `code` is the projection (GPUMASK_PROJ_*), `sky` whether unit vectors are
// needed, `coords_from_arrays` whether lon/lat come from arrays (WCSs without a
// device projection) instead of the WCS math.
template <int TILE>
GPUMASK_HD inline void gpumask_region_tile_thread(
    int t, int tx, int ty, unsigned char* image, int nx, int ny, const int* tiles,
    const int* starts, const int* members, const int* kinds, const int* flags,
    const double* params, const double* vx, const double* vy, const double* lon_in,
    const double* lat_in, int code, const gpumask_wcs& w, bool sky, bool coords_from_arrays)
{
    const int rows = TILE / 8;
    const int ntx = (nx + TILE - 1) / TILE;
    const int tile = tiles[t];
    const int ix = (tile % ntx) * TILE + tx;
    const int iy0 = (tile / ntx) * TILE + ty;
    gpumask_pixel pix[TILE / 8];
    unsigned char acc[TILE / 8];
    for (int k = 0; k < rows; ++k) acc[k] = 0;
    gpumask_region_pixels<TILE>(ix, iy0, nx, ny, lon_in, lat_in, code, w, sky, coords_from_arrays, pix);
    for (int s = starts[t]; s < starts[t + 1]; ++s) {
        const int m = members[s];
        const int kind = kinds[m];
        const double* p = params + (long long)m * GPUMASK_REGION_NPARAM;
        const unsigned char bit = (flags[m] & GPUMASK_FLAG_EXCLUDE) ? 2 : 1;
        for (int k = 0; k < rows; ++k)
            if (gpumask_region_inside(kind, p, vx, vy, pix[k])) acc[k] |= bit;
    }
    for (int k = 0; k < rows; ++k) {
        const int iy = iy0 + 8 * k;
        if (ix < nx && iy < ny) image[(long long)iy * nx + ix] = acc[k];
    }
}

// Mask provenance: like gpumask_region_tile_thread, but each pixel keeps the two
// smallest distinct component ids comp[m] (>= 1) of the shapes that contain it
// (label1, label2: int32, 0 for none), as rasterise_labels_numpy does.  Every row
// is an include shape.
template <int TILE>
GPUMASK_HD inline void gpumask_region_label_thread(
    int t, int tx, int ty, int* label1, int* label2, int nx, int ny, const int* tiles,
    const int* starts, const int* members, const int* kinds, const int* comp,
    const double* params, const double* vx, const double* vy, const double* lon_in,
    const double* lat_in, int code, const gpumask_wcs& w, bool sky, bool coords_from_arrays)
{
    const int rows = TILE / 8;
    const int none = 0x7fffffff;
    const int ntx = (nx + TILE - 1) / TILE;
    const int tile = tiles[t];
    const int ix = (tile % ntx) * TILE + tx;
    const int iy0 = (tile / ntx) * TILE + ty;
    gpumask_pixel pix[TILE / 8];
    int first[TILE / 8], second[TILE / 8];
    for (int k = 0; k < rows; ++k) first[k] = second[k] = none;
    gpumask_region_pixels<TILE>(ix, iy0, nx, ny, lon_in, lat_in, code, w, sky, coords_from_arrays, pix);
    for (int s = starts[t]; s < starts[t + 1]; ++s) {
        const int m = members[s];
        const int kind = kinds[m];
        const int c = comp[m];
        const double* p = params + (long long)m * GPUMASK_REGION_NPARAM;
        for (int k = 0; k < rows; ++k) {
            if (c == first[k] || c >= second[k]) continue;  // nothing to learn
            if (!gpumask_region_inside(kind, p, vx, vy, pix[k])) continue;
            if (c < first[k]) {
                second[k] = first[k];
                first[k] = c;
            } else {
                second[k] = c;
            }
        }
    }
    for (int k = 0; k < rows; ++k) {
        const int iy = iy0 + 8 * k;
        if (ix < nx && iy < ny) {
            label1[(long long)iy * nx + ix] = first[k] == none ? 0 : first[k];
            label2[(long long)iy * nx + ix] = second[k] == none ? 0 : second[k];
        }
    }
}

#endif  // GPUMASK_REGIONS_CUH
