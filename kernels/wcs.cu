// Celestial WCS kernels.
//
// pix2world_grid
//     Launched by gpumask.sky.projections.pixel_grid_world(params, nx, ny, xp=cupy, mode)
//     (via gpumask._kernels.get_kernel(pix2world_build(params.code)); the CI build
//     check, ci/nvrtc_check.py, compiles every build _pix2world_builds() yields).
//     Compile-time: GPUMASK_PROJ = GPUMASK_PROJ_<CODE> (one specialisation per
//     projection; see kernels/wcs_proj.cuh).
//     Outputs: lon, lat, C-contiguous float64 arrays of shape (ny, nx), lon in
//     [0, 360) deg, NaN outside the projection's domain.  For mode="edges" the
//     caller passes nx + 1, ny + 1 and offset = -0.5; for centres offset = 0.
//     Launch: block (32, 8, 1); grid (ceil(nx / 32), min(ceil(ny / 8), 65535), 1).
//     One thread per pixel column x; rows are covered by a grid-stride loop, so
//     any ny works with the capped grid.y.  No shared memory, no temporaries.
//     Scalar arguments: int nx, int ny, double offset, then the 18 doubles of
//     struct gpumask_wcs in the order of WcsParams.kernel_args().
//
// The per-pixel math is gpumask_wcs_grid_point() from wcs_proj.cuh, which the
// host test harness (tests/cpu_harness) runs on the CPU against numpy.
#include "gpumask.cuh"
#include "wcs_proj.cuh"

// gpumask's loader always defines GPUMASK_PROJ (projection_defines()); the
// default only lets a plain `nvcc --ptx kernels/wcs.cu` syntax check build the file.
#ifndef GPUMASK_PROJ
#define GPUMASK_PROJ GPUMASK_PROJ_CAR
#endif

extern "C" __global__ void pix2world_grid(
    double* __restrict__ lon, double* __restrict__ lat,
    const int nx, const int ny, const double offset,
    const double crpix1, const double crpix2,
    const double cd11, const double cd12, const double cd21, const double cd22,
    const double ci11, const double ci12, const double ci21, const double ci22,
    const double x0, const double y0, const double r0,
    const double e0, const double e1, const double e2, const double e3, const double e4)
{
    const int ix = blockIdx.x * blockDim.x + threadIdx.x;
    if (ix >= nx) return;
    const gpumask_wcs w = {crpix1, crpix2, cd11, cd12, cd21, cd22, ci11, ci12, ci21, ci22,
                           x0, y0, r0, e0, e1, e2, e3, e4};
    for (int iy = blockIdx.y * blockDim.y + threadIdx.y; iy < ny;
         iy += gridDim.y * blockDim.y) {
        double lo, la;
        gpumask_wcs_grid_point(GPUMASK_PROJ, w, ix, iy, offset, &lo, &la);
        const long long k = (long long)iy * nx + ix;
        lon[k] = lo;
        lat[k] = la;
    }
}
