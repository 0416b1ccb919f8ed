// Host driver for kernels/wcs_proj.cuh: runs the device math on the CPU so that
// tests/test_projections.py can compare it with the numpy implementation.
//
// usage: wcs_harness MODE CODE P1 .. P18 [NX NY OFFSET]
//   CODE   projection code (CAR, TAN, ...)
//   P1..18 the doubles of struct gpumask_wcs (WcsParams.kernel_args() order)
//   MODE   p2w   stdin: float64 pairs (x, y)     stdout: float64 pairs (lon, lat)
//          w2p   stdin: float64 pairs (lon, lat) stdout: float64 pairs (x, y)
//          grid  no stdin; stdout: lon[NY*NX] then lat[NY*NX], row-major, computed
//                with gpumask_wcs_grid_point exactly as kernel pix2world_grid does
// All binary data is native-endian float64.
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <vector>

#include "wcs_proj.cuh"

static int code_of(const char* name)
{
    static const char* names[] = {"CAR", "TAN", "SIN", "AIT", "ZEA", "ARC", "STG", "MOL"};
    static const int codes[] = {GPUMASK_PROJ_CAR, GPUMASK_PROJ_TAN, GPUMASK_PROJ_SIN,
                                GPUMASK_PROJ_AIT, GPUMASK_PROJ_ZEA, GPUMASK_PROJ_ARC,
                                GPUMASK_PROJ_STG, GPUMASK_PROJ_MOL};
    for (int i = 0; i < 8; ++i)
        if (std::strcmp(name, names[i]) == 0) return codes[i];
    return 0;
}

int main(int argc, char** argv)
{
    if (argc < 21) {
        std::fprintf(stderr, "usage: %s MODE CODE P1..P18 [NX NY OFFSET]\n", argv[0]);
        return 2;
    }
    const char* mode = argv[1];
    const int code = code_of(argv[2]);
    if (code == 0) {
        std::fprintf(stderr, "unknown projection code %s\n", argv[2]);
        return 2;
    }
    double p[18];
    for (int i = 0; i < 18; ++i) p[i] = std::strtod(argv[3 + i], nullptr);
    const gpumask_wcs w = {p[0], p[1], p[2],  p[3],  p[4],  p[5],  p[6],  p[7],  p[8],
                           p[9], p[10], p[11], p[12], p[13], p[14], p[15], p[16], p[17]};

    if (std::strcmp(mode, "grid") == 0) {
        if (argc < 24) {
            std::fprintf(stderr, "grid mode needs NX NY OFFSET\n");
            return 2;
        }
        const int nx = std::atoi(argv[21]);
        const int ny = std::atoi(argv[22]);
        const double offset = std::strtod(argv[23], nullptr);
        std::vector<double> lon((size_t)nx * ny), lat((size_t)nx * ny);
        for (int iy = 0; iy < ny; ++iy)
            for (int ix = 0; ix < nx; ++ix) {
                const size_t k = (size_t)iy * nx + ix;
                gpumask_wcs_grid_point(code, w, ix, iy, offset, &lon[k], &lat[k]);
            }
        std::fwrite(lon.data(), sizeof(double), lon.size(), stdout);
        std::fwrite(lat.data(), sizeof(double), lat.size(), stdout);
        return 0;
    }
    const bool p2w = std::strcmp(mode, "p2w") == 0;
    if (!p2w && std::strcmp(mode, "w2p") != 0) {
        std::fprintf(stderr, "unknown mode %s\n", mode);
        return 2;
    }
    double in[2], out[2];
    while (std::fread(in, sizeof(double), 2, stdin) == 2) {
        if (p2w)
            gpumask_wcs_pix2world(code, w, in[0], in[1], &out[0], &out[1]);
        else
            gpumask_wcs_world2pix(code, w, in[0], in[1], &out[0], &out[1]);
        std::fwrite(out, sizeof(double), 2, stdout);
    }
    return 0;
}
