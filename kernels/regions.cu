// Region rasterisation kernel.
//
// rasterise_tiles
//     Launched by gpumask.masks._region_raster.rasterise_cupy(geom, table, backend)
//     (via gpumask._kernels.get_kernel(rasterise_build(table.has_sky, proj_code)),
//     compiled, like every gpumask kernel, with gpumask._kernels.DEVICE_FP_OPTIONS,
//     i.e. --fmad=false; ci/nvrtc_check.py compiles every build _rasterise_builds()
//     yields).
//     Compile-time: GPUMASK_TILE (tile side, pixels; 32), GPUMASK_PROJ
//     (GPUMASK_PROJ_<CODE>, the map's projection), GPUMASK_REGION_SKY (1 when the
//     table has sky shapes: pixel unit vectors are needed), optionally
//     GPUMASK_REGION_COORDS_FROM_ARRAYS (lon/lat read from arrays for WCSs that
//     have no device projection).
//     Launch: grid (n_active_tiles, 1, 1), block (GPUMASK_TILE, 8, 1): one block
//     per active tile, thread (x, y) owns pixel column x and rows y + 8 k of it.
//     Inputs (host-binned, see bin_shapes): tiles[n] active tile ids (row-major
//     ty * ntx + tx), starts[n + 1] CSR offsets into members[], the shape rows
//     kinds[], flags[], params[m * 11], polygon vertices vx[], vy[].
//     Output: image (ny, nx) uint8, zero-initialised by the caller; each block
//     writes only its own tile (bit 0 included shape, bit 1 excluded shape), so
//     no atomics are needed.  No shared memory.
//     Scalar arguments after lon_in, lat_in: the 18 doubles of struct gpumask_wcs
//     in the order of WcsParams.kernel_args().
#include "gpumask.cuh"
#include "wcs_proj.cuh"
#include "regions.cuh"

// gpumask's loader always defines these; the defaults let a plain
// `nvcc --ptx kernels/regions.cu` syntax check build the file.
#ifndef GPUMASK_PROJ
#define GPUMASK_PROJ GPUMASK_PROJ_CAR
#endif
#ifndef GPUMASK_TILE
#define GPUMASK_TILE 32
#endif
#ifndef GPUMASK_REGION_SKY
#define GPUMASK_REGION_SKY 1
#endif
#ifndef GPUMASK_REGION_COORDS_FROM_ARRAYS
#define GPUMASK_REGION_COORDS_FROM_ARRAYS 0
#endif

extern "C" __global__ void __launch_bounds__(GPUMASK_TILE * 8) rasterise_tiles(
    unsigned char* __restrict__ image, const int nx, const int ny,
    const int* __restrict__ tiles, const int* __restrict__ starts,
    const int* __restrict__ members, const int* __restrict__ kinds,
    const int* __restrict__ flags, const double* __restrict__ params,
    const double* __restrict__ vx, const double* __restrict__ vy,
    const double* __restrict__ lon_in, const double* __restrict__ lat_in,
    const double crpix1, const double crpix2,
    const double cd11, const double cd12, const double cd21, const double cd22,
    const double ci11, const double ci12, const double ci21, const double ci22,
    const double x0, const double y0, const double r0,
    const double e0, const double e1, const double e2, const double e3, const double e4)
{
    const gpumask_wcs w = {crpix1, crpix2, cd11, cd12, cd21, cd22, ci11, ci12, ci21, ci22,
                           x0, y0, r0, e0, e1, e2, e3, e4};
    gpumask_region_tile_thread<GPUMASK_TILE>(
        blockIdx.x, threadIdx.x, threadIdx.y, image, nx, ny, tiles, starts, members, kinds,
        flags, params, vx, vy, lon_in, lat_in, GPUMASK_PROJ, w, GPUMASK_REGION_SKY != 0,
        GPUMASK_REGION_COORDS_FROM_ARRAYS != 0);
}

// label_tiles
//     Launched by gpumask.masks._region_raster.rasterise_labels_cupy (mask
//     provenance), with the builds and launch of rasterise_tiles.  Outputs: label1,
//     label2 (ny, nx) int32, the two smallest component ids comp[m] of the shapes
//     holding each pixel (0: none); comp[] takes the place of flags[].
extern "C" __global__ void __launch_bounds__(GPUMASK_TILE * 8) label_tiles(
    int* __restrict__ label1, int* __restrict__ label2, const int nx, const int ny,
    const int* __restrict__ tiles, const int* __restrict__ starts,
    const int* __restrict__ members, const int* __restrict__ kinds,
    const int* __restrict__ comp, const double* __restrict__ params,
    const double* __restrict__ vx, const double* __restrict__ vy,
    const double* __restrict__ lon_in, const double* __restrict__ lat_in,
    const double crpix1, const double crpix2,
    const double cd11, const double cd12, const double cd21, const double cd22,
    const double ci11, const double ci12, const double ci21, const double ci22,
    const double x0, const double y0, const double r0,
    const double e0, const double e1, const double e2, const double e3, const double e4)
{
    const gpumask_wcs w = {crpix1, crpix2, cd11, cd12, cd21, cd22, ci11, ci12, ci21, ci22,
                           x0, y0, r0, e0, e1, e2, e3, e4};
    gpumask_region_label_thread<GPUMASK_TILE>(
        blockIdx.x, threadIdx.x, threadIdx.y, label1, label2, nx, ny, tiles, starts, members,
        kinds, comp, params, vx, vy, lon_in, lat_in, GPUMASK_PROJ, w, GPUMASK_REGION_SKY != 0,
        GPUMASK_REGION_COORDS_FROM_ARRAYS != 0);
}
