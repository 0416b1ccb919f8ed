// Celestial WCS math (Calabretta & Greisen 2002) as __host__ __device__ functions.
//
// This is the device twin of gpumask/sky/projections.py: same chain, same formulas,
// same domain rules, so that the numpy code is the oracle for the kernels.
//   pixel (0-based) -> intermediate (X, Y) deg -> native (phi, theta) deg
//   -> celestial (lon in [0, 360), lat) deg, and back.
// tests/cpu_harness/wcs_harness.cpp compiles this header with g++ and
// tests/test_projections.py compares it with numpy; keep both files in step.
//
// Every function returns 0 for a valid point and 1 for a point outside the
// projection's domain (the outputs are then NaN).  NaN inputs give NaN outputs:
// comparisons are written so that NaN never passes a clamp.
#ifndef GPUMASK_WCS_PROJ_CUH
#define GPUMASK_WCS_PROJ_CUH

#include "gpumask.cuh"

// Projection codes; kernels/wcs.cu is compiled once per code with
// -DGPUMASK_PROJ=GPUMASK_PROJ_<CODE> (see WcsParams.kernel_defines).
#define GPUMASK_PROJ_CAR 1
#define GPUMASK_PROJ_TAN 2
#define GPUMASK_PROJ_SIN 3
#define GPUMASK_PROJ_AIT 4
#define GPUMASK_PROJ_ZEA 5
#define GPUMASK_PROJ_ARC 6
#define GPUMASK_PROJ_STG 7
#define GPUMASK_PROJ_MOL 8

// wcslib accepts native coordinates this far outside their range (prjbchk).
#define GPUMASK_WCS_TOL 1.0e-13
#define GPUMASK_SQRT2 1.414213562373095048801688724209698079
// MOL: below this v the function v - sin(v) is summed as a series; Newton steps.
#define GPUMASK_MOL_SERIES_V 0.1
#define GPUMASK_MOL_NEWTON_STEPS 5

// Same numbers, same order as WcsParams.kernel_args().
struct gpumask_wcs {
    double crpix1, crpix2;          // FITS 1-based reference pixel
    double cd11, cd12, cd21, cd22;  // CDELT * PC, deg / pixel
    double ci11, ci12, ci21, ci22;  // its inverse
    double x0, y0, r0;              // wcslib prj.x0, prj.y0, prj.r0
    double e0, e1, e2, e3, e4;      // wcslib cel.euler
};

// ---------------------------------------------------------------- helpers

// v - sin(v) for v in [0, pi] without cancellation at small v.
GPUMASK_HD inline double gpumask_mol_h(double v)
{
    if (v < GPUMASK_MOL_SERIES_V) {
        const double v2 = v * v;
        double s = v2 * (-1.0 / 72.0);
        s += 1.0;
        s *= v2 * (-1.0 / 42.0);
        s += 1.0;
        s *= v2 * (-1.0 / 20.0);
        s += 1.0;
        return s * (v2 * v) * (1.0 / 6.0);
    }
    return v - sin(v);
}

// lon -> [0, 360), as numpy.remainder plus the rounding-to-360 fix.
GPUMASK_HD inline double gpumask_wrap360(double lon)
{
    lon = fmod(lon, 360.0);
    if (lon < 0.0) lon += 360.0;
    if (lon >= 360.0) lon = 0.0;
    return lon;
}

// Native longitude -> [-180, 180], keeping +-180 as wcslib does.
GPUMASK_HD inline double gpumask_normalise_phi(double phi)
{
    phi = fmod(phi, 360.0);
    if (phi > 180.0) phi -= 360.0;
    if (phi < -180.0) phi += 360.0;
    return phi;
}

// ---------------------------------------------------------------- deprojection

// Intermediate (X, Y) deg -> native (phi, theta) deg.
GPUMASK_HD inline int gpumask_wcs_x2s(int code, const gpumask_wcs& w, double X, double Y,
                                      double* phi, double* theta)
{
    const double tol = GPUMASK_WCS_TOL;
    const double r0 = w.r0;
    if (w.x0 != 0.0) X += w.x0;
    if (w.y0 != 0.0) Y += w.y0;
    if (code == GPUMASK_PROJ_CAR) {
        const double k = 1.0 / (r0 * GPUMASK_D2R);
        if (k != 1.0) {
            X *= k;
            Y *= k;
        }
        if (X > 180.0 + tol || X < -180.0 - tol || Y > 90.0 + tol || Y < -90.0 - tol) return 1;
        *phi = X > 180.0 ? 180.0 : (X < -180.0 ? -180.0 : X);
        *theta = Y > 90.0 ? 90.0 : (Y < -90.0 ? -90.0 : Y);
        return 0;
    }
    if (code == GPUMASK_PROJ_TAN || code == GPUMASK_PROJ_SIN || code == GPUMASK_PROJ_ZEA
        || code == GPUMASK_PROJ_ARC || code == GPUMASK_PROJ_STG) {
        double R = hypot(X, Y);
        // 0 - Y (not -Y): the reference point, Y = +0, gives phi = 0 rather than 180
        *phi = atan2(X, 0.0 - Y) * GPUMASK_R2D;
        if (code == GPUMASK_PROJ_TAN) {
            *theta = atan2(r0, R) * GPUMASK_R2D;
        } else if (code == GPUMASK_PROJ_STG) {
            R *= 1.0 / (2.0 * r0);
            *theta = atan(R) * (-2.0 * GPUMASK_R2D) + 90.0;
        } else if (code == GPUMASK_PROJ_ARC) {
            R *= -1.0 / (r0 * GPUMASK_D2R);
            R += 90.0;
            if (R < -90.0 - tol) return 1;
            *theta = R < -90.0 ? -90.0 : R;
        } else if (code == GPUMASK_PROJ_ZEA) {
            R *= 1.0 / (2.0 * r0);
            if (R > 1.0 + tol) return 1;
            if (R > 1.0) R = 1.0;
            *theta = asin(R) * (-2.0 * GPUMASK_R2D) + 90.0;
        } else {  // SIN: cos(theta) = r, sin(theta) from (1 - r)(1 + r), exact near the limb
            R *= 1.0 / r0;
            if (R > 1.0) return 1;
            const double s = sqrt((1.0 - R) * (1.0 + R));
            *theta = atan2(s, R) * GPUMASK_R2D;
        }
        return 0;
    }
    if (code == GPUMASK_PROJ_AIT) {
        // Z^2 = 1 - (X/4r0)^2 - (Y/2r0)^2;  cos(theta) cos(phi/2) = 2Z^2 - 1,
        // cos(theta) sin(phi/2) = Z X / 2r0,  sin(theta) = Z Y / r0.
        const double xs = X * (1.0 / (4.0 * r0));
        const double ys = Y * (1.0 / (2.0 * r0));
        double z2 = 1.0 - (xs * xs + ys * ys);
        if (z2 < 0.5 - tol) return 1;
        if (z2 < 0.5) z2 = 0.5;
        const double c = z2 * 2.0 - 1.0;
        const double z = sqrt(z2);
        const double u = xs * z * 2.0;
        const double t = ys * z * 2.0;
        *phi = atan2(u, c) * (2.0 * GPUMASK_R2D);
        *theta = atan2(t, hypot(u, c)) * GPUMASK_R2D;
        return 0;
    }
    if (code == GPUMASK_PROJ_MOL) {
        // Y = sqrt2 r0 sin(gamma), X = 2 sqrt2 r0 phi cos(gamma) / 180 (phi in deg),
        // pi sin(theta) = 2 gamma + sin(2 gamma).  With v = pi - 2|gamma|,
        // 1 - |sin(theta)| = (v - sin v) / pi = 2 sin^2((90 - |theta|) / 2).
        double s = Y * (1.0 / (GPUMASK_SQRT2 * r0));
        if (s > 1.0 + tol || s < -1.0 - tol) return 1;
        s = s > 1.0 ? 1.0 : (s < -1.0 ? -1.0 : s);
        const double a = fabs(s);
        const double cg = sqrt((1.0 - a) * (1.0 + a));
        const double xs = X * (1.0 / (2.0 * GPUMASK_SQRT2 * r0));
        if (xs > cg + tol || xs < -cg - tol) return 1;
        double p = cg == 0.0 ? 0.0 : xs / cg * 180.0;
        *phi = p > 180.0 ? 180.0 : (p < -180.0 ? -180.0 : p);
        const double v = atan2(cg, a) * 2.0;
        const double h = sqrt(gpumask_mol_h(v) * (1.0 / (2.0 * GPUMASK_PI)));
        *theta = copysign(asin(h) * (-2.0 * GPUMASK_R2D) + 90.0, s);
        return 0;
    }
    return 1;
}

// v = pi - 2|gamma| solving v - sin v = 2 pi sin^2((90 - |theta|)/2) (MOL).
GPUMASK_HD inline double gpumask_mol_solve(double theta)
{
    double c = sin((90.0 - fabs(theta)) * (0.5 * GPUMASK_D2R));
    c *= c;
    c *= 2.0 * GPUMASK_PI;
    // cbrt(6c) lies left of the root (v^3/6 >= v - sin v); convexity makes Newton
    // monotone after the first step; four steps reach full precision.
    double v = cbrt(c * 6.0);
    for (int i = 0; i < GPUMASK_MOL_NEWTON_STEPS; ++i) {
        double slope = sin(v * 0.5);
        slope = slope * slope * 2.0;
        if (slope != 0.0) v -= (gpumask_mol_h(v) - c) / slope;
    }
    return v;
}

// Native (phi, theta) deg -> intermediate (X, Y) deg (before subtracting x0, y0).
GPUMASK_HD inline int gpumask_wcs_s2x(int code, const gpumask_wcs& w, double phi, double theta,
                                      double* X, double* Y)
{
    const double r0 = w.r0;
    if (code == GPUMASK_PROJ_CAR) {
        const double k = r0 * GPUMASK_D2R;
        *X = phi * k;
        *Y = theta * k;
        return 0;
    }
    if (code == GPUMASK_PROJ_TAN || code == GPUMASK_PROJ_SIN || code == GPUMASK_PROJ_ZEA
        || code == GPUMASK_PROJ_ARC || code == GPUMASK_PROJ_STG) {
        const double colat = 90.0 - theta;
        double R;
        if (code == GPUMASK_PROJ_TAN) {
            if (theta <= 0.0) return 1;
            R = tan(colat * GPUMASK_D2R) * r0;
        } else if (code == GPUMASK_PROJ_SIN) {
            if (theta < 0.0) return 1;
            R = sin(colat * GPUMASK_D2R) * r0;
        } else if (code == GPUMASK_PROJ_STG) {
            if (theta <= -90.0) return 1;
            R = tan(colat * (0.5 * GPUMASK_D2R)) * (2.0 * r0);
        } else if (code == GPUMASK_PROJ_ZEA) {
            R = sin(colat * (0.5 * GPUMASK_D2R)) * (2.0 * r0);
        } else {  // ARC
            R = colat * (r0 * GPUMASK_D2R);
        }
        double s, c;
        gpumask_sincos(phi * GPUMASK_D2R, &s, &c);
        *X = s * R;
        *Y = -(c * R);
        return 0;
    }
    if (code == GPUMASK_PROJ_AIT) {
        double sh, ch, st, ct;
        gpumask_sincos(phi * (0.5 * GPUMASK_D2R), &sh, &ch);
        gpumask_sincos(theta * GPUMASK_D2R, &st, &ct);
        const double g = sqrt(2.0 / (ch * ct + 1.0)) * r0;
        *X = sh * ct * g * 2.0;
        *Y = st * g;
        return 0;
    }
    if (code == GPUMASK_PROJ_MOL) {
        const double v = gpumask_mol_solve(theta) * 0.5;
        double s, c;
        gpumask_sincos(v, &s, &c);
        *X = s * phi * (2.0 * GPUMASK_SQRT2 * r0 / 180.0);
        *Y = copysign(c * (GPUMASK_SQRT2 * r0), theta);
        return 0;
    }
    return 1;
}

// ---------------------------------------------------------------- rotation

// Native -> celestial (inverse = 0) or celestial -> native (inverse = 1) rotation.
// C&G eqs. 2 and 5 are one formula with euler[0] and euler[2] swapped.  Output
// longitude in [0, 360) (celestial) or [-180, 180] (native), deg.
GPUMASK_HD inline void gpumask_wcs_rotate(const gpumask_wcs& w, int inverse, double lon,
                                          double lat, double* lon_out, double* lat_out)
{
    const double e0 = inverse ? w.e2 : w.e0;
    const double e2 = inverse ? w.e0 : w.e2;
    double a, b;
    if (w.e4 == 0.0) {
        // Native pole on a celestial pole: a pure shift (or reflection) in longitude.
        if (w.e1 == 0.0) {
            a = lon + (e0 - 180.0 - e2);
            b = lat;
        } else {
            a = (e0 + e2) - lon;
            b = -lat;
        }
    } else {
        double sp, cp, st, ct;
        gpumask_sincos((lon - e2) * GPUMASK_D2R, &sp, &cp);
        gpumask_sincos(lat * GPUMASK_D2R, &st, &ct);
        cp *= ct;
        const double y = -(sp * ct);
        const double x = st * w.e4 - cp * w.e3;
        const double z = st * w.e3 + cp * w.e4;
        // atan2 with the projected radius stays exact near the poles, unlike asin(z)
        b = atan2(z, hypot(x, y)) * GPUMASK_R2D;
        a = atan2(y, x) * GPUMASK_R2D + e0;
    }
    *lon_out = inverse ? gpumask_normalise_phi(a) : gpumask_wrap360(a);
    *lat_out = b;
}

// ---------------------------------------------------------------- full chain

// 0-based pixel (x, y) -> (lon, lat) deg; NaN outside the projection's domain.
GPUMASK_HD inline int gpumask_wcs_pix2world(int code, const gpumask_wcs& w, double x, double y,
                                            double* lon, double* lat)
{
    const double p1 = x - (w.crpix1 - 1.0);
    const double p2 = y - (w.crpix2 - 1.0);
    double phi, theta;
    if (gpumask_wcs_x2s(code, w, p1 * w.cd11 + p2 * w.cd12, p1 * w.cd21 + p2 * w.cd22,
                        &phi, &theta)) {
        *lon = gpumask_nan();
        *lat = gpumask_nan();
        return 1;
    }
    gpumask_wcs_rotate(w, 0, phi, theta, lon, lat);
    return 0;
}

// (lon, lat) deg -> 0-based pixel (x, y); NaN where the point has no image.
GPUMASK_HD inline int gpumask_wcs_world2pix(int code, const gpumask_wcs& w, double lon,
                                            double lat, double* x, double* y)
{
    double phi, theta, X, Y;
    gpumask_wcs_rotate(w, 1, lon, lat, &phi, &theta);
    if (lat > 90.0 || lat < -90.0 || gpumask_wcs_s2x(code, w, phi, theta, &X, &Y)) {
        *x = gpumask_nan();
        *y = gpumask_nan();
        return 1;
    }
    if (w.x0 != 0.0) X -= w.x0;
    if (w.y0 != 0.0) Y -= w.y0;
    *x = (X * w.ci11 + Y * w.ci12) + (w.crpix1 - 1.0);
    *y = (X * w.ci21 + Y * w.ci22) + (w.crpix2 - 1.0);
    return 0;
}

// One pixel of pixel_grid_world: centre (offset 0) or corner (offset -0.5).
// The kernel pix2world_grid is only this call plus the store.
GPUMASK_HD inline void gpumask_wcs_grid_point(int code, const gpumask_wcs& w, int ix, int iy,
                                              double offset, double* lon, double* lat)
{
    gpumask_wcs_pix2world(code, w, ix + offset, iy + offset, lon, lat);
}

#endif  // GPUMASK_WCS_PROJ_CUH
