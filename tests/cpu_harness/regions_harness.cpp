// Host driver for kernels/regions.cuh: runs the per-thread body of kernel
// rasterise_tiles (kernels/regions.cu) on the CPU, for every thread of every
// block of the launch grid, so that tests/test_region_kernel.py can compare the
// device code with gpumask.masks._region_raster.rasterise_numpy.
//
// usage: regions_harness < BLOB > IMAGE
//
// BLOB (stdin), native-endian, read in this order without padding:
//   int32   magic            0x4d524752 ("RGRM" read as little-endian bytes)
//   int32   nx, ny           image size (pixels)
//   int32   n_tiles          active tiles (the kernel's grid size)
//   int32   n_members        length of members[]
//   int32   n_shapes         rows of the shape table
//   int32   n_vertices       length of vx[] and vy[] (may be 0)
//   int32   code             GPUMASK_PROJ_* number (ignored when coords_from_arrays)
//   int32   sky              1: pixel unit vectors are needed (GPUMASK_REGION_SKY)
//   int32   coords_from_arrays  1: lon/lat come from the arrays at the end
//                            (GPUMASK_REGION_COORDS_FROM_ARRAYS)
//   float64 wcs[18]          struct gpumask_wcs, WcsParams.kernel_args() order
//   int32   tiles[n_tiles]   active tile ids (row-major ty * ntx + tx)
//   int32   starts[n_tiles + 1]  CSR offsets into members[]
//   int32   members[n_members]   shape row per (tile, shape) pair
//   int32   kinds[n_shapes], flags[n_shapes]
//   float64 params[n_shapes * 11]
//   float64 vx[n_vertices], vy[n_vertices]
//   float64 lon[ny * nx], lat[ny * nx]   only when coords_from_arrays == 1
// and nothing after that.
//
// IMAGE (stdout): uint8[ny * nx], row-major, zero-initialised as the kernel's
// caller does, then written by gpumask_region_tile_thread<32> for block t in
// [0, n_tiles) and thread (tx, ty), tx < 32, ty < 8: the block (32, 8, 1) of
// rasterise_tiles.  Exit status 2 on malformed input, 3 if two blocks wrote the
// same pixel (tiles must be distinct) - the kernel relies on that, having no
// atomics.
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <vector>

#include "gpumask.cuh"
#include "wcs_proj.cuh"
#include "regions.cuh"

#define HARNESS_TILE 32
#define HARNESS_MAGIC 0x4d524752

template <typename T>
static bool read_array(std::vector<T>& out, long long n)
{
    if (n < 0) return false;
    out.assign((size_t)n + 1, T());  // one spare element: never a null pointer
    return n == 0 || std::fread(out.data(), sizeof(T), (size_t)n, stdin) == (size_t)n;
}

static int fail(const char* what)
{
    std::fprintf(stderr, "regions_harness: %s\n", what);
    return 2;
}

int main()
{
    int32_t head[10];
    if (std::fread(head, sizeof(int32_t), 10, stdin) != 10) return fail("short header");
    if (head[0] != HARNESS_MAGIC) return fail("bad magic");
    const int nx = head[1], ny = head[2], n_tiles = head[3], n_members = head[4];
    const int n_shapes = head[5], n_vertices = head[6], code = head[7];
    const bool sky = head[8] != 0, coords_from_arrays = head[9] != 0;
    if (nx < 1 || ny < 1 || n_tiles < 0 || n_members < 0 || n_shapes < 0 || n_vertices < 0)
        return fail("bad sizes");
    double p[18];
    if (std::fread(p, sizeof(double), 18, stdin) != 18) return fail("short wcs");
    const gpumask_wcs w = {p[0], p[1], p[2],  p[3],  p[4],  p[5],  p[6],  p[7],  p[8],
                           p[9], p[10], p[11], p[12], p[13], p[14], p[15], p[16], p[17]};

    std::vector<int32_t> tiles, starts, members, kinds, flags;
    std::vector<double> params, vx, vy, lon, lat;
    const long long npix = (long long)nx * ny;
    if (!read_array(tiles, n_tiles) || !read_array(starts, (long long)n_tiles + 1) ||
        !read_array(members, n_members) || !read_array(kinds, n_shapes) ||
        !read_array(flags, n_shapes) ||
        !read_array(params, (long long)n_shapes * GPUMASK_REGION_NPARAM) ||
        !read_array(vx, n_vertices) || !read_array(vy, n_vertices))
        return fail("short arrays");
    if (coords_from_arrays && (!read_array(lon, npix) || !read_array(lat, npix)))
        return fail("short lon/lat arrays");
    if (!coords_from_arrays) {  // the kernel still receives (unused) arrays
        lon.assign(1, 0.0);
        lat.assign(1, 0.0);
    }
    if (std::fgetc(stdin) != EOF) return fail("trailing bytes");

    // what the kernel would index out of bounds on is refused here
    const int ntx = (nx + HARNESS_TILE - 1) / HARNESS_TILE;
    const int nty = (ny + HARNESS_TILE - 1) / HARNESS_TILE;
    if (starts[0] != 0 || starts[n_tiles] != n_members) return fail("bad CSR ends");
    for (int t = 0; t < n_tiles; ++t) {
        if (tiles[t] < 0 || tiles[t] >= ntx * nty) return fail("tile id out of range");
        if (starts[t + 1] < starts[t]) return fail("CSR offsets decrease");
    }
    for (int s = 0; s < n_members; ++s)
        if (members[s] < 0 || members[s] >= n_shapes) return fail("member out of range");

    std::vector<unsigned char> image((size_t)npix, 0);
    std::vector<unsigned char> owner((size_t)ntx * nty, 0);
    for (int t = 0; t < n_tiles; ++t) {  // blockIdx.x
        if (owner[tiles[t]]++) {
            std::fprintf(stderr, "regions_harness: tile %d listed twice\n", tiles[t]);
            return 3;
        }
        for (int ty = 0; ty < 8; ++ty)                  // threadIdx.y
            for (int tx = 0; tx < HARNESS_TILE; ++tx)  // threadIdx.x
                gpumask_region_tile_thread<HARNESS_TILE>(
                    t, tx, ty, image.data(), nx, ny, tiles.data(), starts.data(),
                    members.data(), kinds.data(), flags.data(), params.data(), vx.data(),
                    vy.data(), lon.data(), lat.data(), code, w, sky, coords_from_arrays);
    }
    if (std::fwrite(image.data(), 1, image.size(), stdout) != image.size())
        return fail("short write");
    return 0;
}
