"""The emulated RawModule/RawKernel (tests/emulated_cupy/_raw.py): it refuses every
launch a GPU would get wrong or CuPy would refuse, and runs kernels correctly,
gpumask's own kernels included."""

import sys
import warnings
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from emulated_cupy._raw import (
    CompileException,
    CUDADriverError,
    RawKernel,
    RawModule,
    _translate,
    compiler,
)

pytestmark = pytest.mark.skipif(compiler() is None, reason="no host C++ compiler (g++/c++)")


class Dev:
    """Stand-in for the emulated cupy.ndarray: a NumPy array in ``_a``."""

    __emulated_cupy_array__ = True

    def __init__(self, a):
        self._a = a


SOURCE = r"""
#define TILE 4
extern "C" __global__ void saxpy(const double a, const double* __restrict__ x, double* __restrict__ y,
                                 const int n)
{
    for (int i = blockIdx.x * blockDim.x + threadIdx.x; i < n; i += gridDim.x * blockDim.x)
        y[i] = a * x[i] + y[i];
}

extern "C" __global__ void __launch_bounds__(TILE * 8) bounded(int* out) { out[0] += 1; }

extern "C" {
__global__ void ids(unsigned int* out, const long long total)
{
    const unsigned int gx = blockIdx.x * blockDim.x + threadIdx.x;
    const unsigned int gy = blockIdx.y * blockDim.y + threadIdx.y;
    const unsigned int gz = blockIdx.z * blockDim.z + threadIdx.z;
    const long long k = ((long long)gz * gridDim.y * blockDim.y + gy) * gridDim.x * blockDim.x + gx;
    if (k < total) out[k] += (unsigned int)(k + 1);
}

__global__ void scalars(double* out, long long a, unsigned char b, float c, bool d, unsigned short e,
                        signed char f, unsigned long long g, short h, unsigned int i, double j)
{
    const double v[10] = {(double)a, (double)b, (double)c, (double)d, (double)e, (double)f, (double)g,
                          (double)h, (double)i, j};
    for (int k = 0; k < 10; ++k) out[k] = v[k];
}
}

__global__ void mangled(int* out) { out[0] = 1; }
"""


@pytest.fixture(scope="module")
def mod():
    return RawModule(code=SOURCE, options=("-std=c++17",))


def saxpy_args(n=10):
    x = Dev(np.arange(n, dtype=np.float64))
    y = Dev(np.ones(n))
    return x, y, (2.0, x, y, np.int32(n))


# ------------------------------------------------------------------ it runs
def test_saxpy_grid_stride(mod):
    k = mod.get_function("saxpy")
    _, y, args = saxpy_args(1000)
    k((3,), (32,), args)  # 96 threads cover 1000 elements through the grid-stride loop
    np.testing.assert_array_equal(y._a, 2.0 * np.arange(1000) + 1.0)


def test_every_thread_runs_once_with_its_indices(mod):
    out = Dev(np.zeros(8 * 6 * 6, dtype=np.uint32))
    mod.get_function("ids")((2, 3, 2), (4, 2, 3), (out, 8 * 6 * 6))
    np.testing.assert_array_equal(out._a, np.arange(1, 8 * 6 * 6 + 1))


def test_scalar_types_are_marshalled(mod):
    out = Dev(np.zeros(10))
    args = (out, -(2**40), np.uint8(200), np.float32(0.5), True, np.uint16(65000), np.int8(-5),
            np.uint64(2**53), np.int16(-300), np.uint32(4_000_000_000), 0.25)
    mod.get_function("scalars")((1,), (1,), args)
    np.testing.assert_array_equal(out._a, [-(2**40), 200, 0.5, 1, 65000, -5, 2**53, -300, 4e9, 0.25])


def test_rawkernel_and_launch_bounds_macro():
    k = RawKernel(SOURCE, "bounded")
    assert k.max_threads_per_block == 32  # __launch_bounds__(TILE * 8), TILE from the code
    out = Dev(np.zeros(1, dtype=np.int32))
    k((2, 1, 1), (4, 8), (out,))
    assert out._a[0] == 64
    with pytest.raises(CUDADriverError, match="LAUNCH_OUT_OF_RESOURCES.*allows 32"):
        k((1,), (33,), (out,))


def test_concurrent_launches_keep_their_own_indices(mod):
    k = mod.get_function("ids")

    def run(n):  # ctypes drops the GIL: the launches really overlap
        out = Dev(np.zeros(n, dtype=np.uint32))
        for _ in range(20):
            out._a[:] = 0
            k(((n + 31) // 32,), (32,), (out, n))
            np.testing.assert_array_equal(out._a, np.arange(1, n + 1))

    with ThreadPoolExecutor(4) as pool:
        for future in [pool.submit(run, n) for n in (500, 777, 1000, 64)]:
            future.result()


# -------------------------------------------------------------- it refuses
@pytest.mark.parametrize("bad, match", [
    (lambda a: a[:-1], "takes 4 arguments"),
    (lambda a: (*a, np.int32(1)), "takes 4 arguments"),
    (lambda a: (*a[:3], 10), "Python int as int64.*int"),               # Python int for int
    (lambda a: (*a[:3], np.int64(10)), "numpy.int32.*got numpy.int64"),
    (lambda a: (*a[:3], True), "Python bool as bool"),
    (lambda a: (np.float32(2.0), *a[1:]), "numpy.float64.*got numpy.float32"),
    (lambda a: (2, *a[1:]), "Python int as int64.*double"),
    (lambda a: (a[0], a[1]._a, *a[2:]), "Unsupported type <class 'numpy.ndarray'>"),
    (lambda a: (a[0], Dev(a[1]._a.astype(np.float32)), *a[2:]), "needs dtype float64, got float32"),
    (lambda a: (a[0], a[1], 3.0, a[3]), "needs a device array, got float"),
    (lambda a: (a[0], Dev(a[0]), *a[2:]), "needs a device array"),
    (lambda a: (a[0], a[1], Dev(np.ones(a[3] * 2)[::2]), a[3]), ValueError),   # non-contiguous
    (lambda a: (a[0], a[1], Dev(np.ones(4).reshape(2, 2).T.copy(order="F")), a[3]), "not C-contiguous"),
    (lambda a: [*a[:3], np.float64(4)], "numpy.int32.*got numpy.float64"),
    (lambda a: {"a": 1}, "args must be a tuple or list"),
])
def test_bad_arguments(mod, bad, match):
    k = mod.get_function("saxpy")
    _, y, args = saxpy_args()
    before = y._a.copy()
    error = match if isinstance(match, type) else (TypeError, ValueError)
    with pytest.raises(error, match=None if isinstance(match, type) else match):
        k((1,), (32,), bad(args))
    np.testing.assert_array_equal(y._a, before)  # nothing ran


def test_read_only_output_and_aliasing(mod):
    k = mod.get_function("saxpy")
    x, y, args = saxpy_args()
    y._a.flags.writeable = False
    with pytest.raises(ValueError, match="read-only"):
        k((1,), (32,), args)
    y._a.flags.writeable = True
    with pytest.raises(ValueError, match="overlap.*__restrict__"):
        k((1,), (32,), (2.0, y, y, np.int32(10)))  # restrict input aliasing the written output
    x._a.flags.writeable = False
    k((1,), (32,), args)  # a read-only array is fine for a const pointee


@pytest.mark.parametrize("grid, block, error, match", [
    ((1,), (1025,), CUDADriverError, "INVALID_VALUE"),
    ((1,), (32, 33), CUDADriverError, "INVALID_VALUE"),
    ((1,), (1, 1, 65), CUDADriverError, "INVALID_VALUE"),
    ((1, 65536), (32,), CUDADriverError, "INVALID_VALUE"),
    ((1, 1, 65536), (32,), CUDADriverError, "INVALID_VALUE"),
    ((2**31,), (32,), CUDADriverError, "INVALID_VALUE"),
    ((0,), (32,), ValueError, ">= 1"),
    ((1,), (32, 0), ValueError, ">= 1"),
    (1, (32,), TypeError, "expected tuple, got int"),
    ((1,), [32], TypeError, "expected tuple, got list"),
    ((1, 1, 1, 1), (32,), ValueError, "1 to 3"),
    ((1.0,), (32,), TypeError, "integers"),
])
def test_bad_launch_sizes(mod, grid, block, error, match):
    with pytest.raises(error, match=match):
        mod.get_function("saxpy")(grid, block, saxpy_args()[2])


def test_call_keywords(mod):
    k = mod.get_function("saxpy")
    args = saxpy_args()[2]
    with pytest.raises(TypeError, match="unexpected keyword"):
        k((1,), (32,), args, shared=0)
    with pytest.raises(NotImplementedError, match="shared memory"):
        k((1,), (32,), args, shared_mem=128)
    k((1,), (32,), args, shared_mem=0, stream=None)


def test_constructor_contracts():
    with pytest.raises(TypeError, match="unexpected keyword"):
        RawModule(code=SOURCE, option=("-std=c++17",))
    with pytest.raises(TypeError):
        RawModule(SOURCE)  # code is keyword-only in CuPy
    with pytest.raises(TypeError, match="expected tuple, got list"):
        RawModule(code=SOURCE, options=["-std=c++17"])
    with pytest.raises(TypeError, match="Exactly one of"):
        RawModule()
    with pytest.raises(TypeError, match="expected str, got bytes"):
        RawModule(code=SOURCE.encode())
    with pytest.raises(TypeError, match="unexpected keyword"):
        RawKernel(SOURCE, "saxpy", name_expressions=None)
    with pytest.raises(TypeError):
        RawKernel(SOURCE, "saxpy", (), "nvrtc", False)  # translate_cucomplex is keyword-only
    with pytest.warns(DeprecationWarning, match="jitify"):
        RawModule(code=SOURCE, jitify=False)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        RawModule(code=SOURCE, name_expressions=None)
    with pytest.raises(ValueError, match="only nvrtc"):
        RawModule(code=SOURCE, backend="nvcc", name_expressions=["saxpy"])


def test_missing_kernels(mod):
    for name in ("nope", "mangled"):  # mangled: C++ linkage, as on NVRTC not found by its plain name
        with pytest.raises(CUDADriverError, match="CUDA_ERROR_NOT_FOUND: named symbol not found"):
            mod.get_function(name)
    with pytest.raises(CUDADriverError, match="NOT_FOUND"):
        RawKernel(SOURCE, "nope")((1,), (1,), ())


@pytest.mark.parametrize("option", ["--frobnicate", "-O3", "-std=c++99", "--fmad=maybe", "-arch", "-D", "x"])
def test_unknown_nvrtc_options(option):
    with pytest.raises(CompileException, match="nvrtc: error"):
        RawModule(code=SOURCE, options=(option,)).get_function("saxpy")


def test_option_translation():
    flags = _translate("", ("-std=c++17", "-I/k", "-DA=1", "--define-macro=B", "--fmad=false", "--use_fast_math",
                            "-arch=sm_90", "--gpu-architecture=compute_90", "-lineinfo", "-ftz=true",
                            "--device-as-default-execution-space"))
    assert flags == ["-std=c++17", "-I/k", "-DA=1", "-DB", "-ffp-contract=off"]
    assert _translate("", ("--fmad=true",)) == ["-std=c++17", "-ffp-contract=fast"]


@pytest.mark.parametrize("code, match", [
    ('extern "C" __global__ void f(int* o) { o[0] = undefined_name; }', "undefined_name"),
    ('extern "C" __global__ void f(int* o) { int unused_but_read; o[0] = unused_but_read; }', "uninitialized"),
    ('extern "C" __global__ void f(int* o) { __shared__ int s[4]; o[0] = s[0]; }', "shared"),
    ('extern "C" __global__ void f(int* o) { __syncthreads(); }', "__syncthreads"),
    ('extern "C" __global__ void f(int* o) { threadIdx.x = 0; }', "read-only"),
    ('extern "C" __global__ int f(int* o) { return 0; }', "must return void"),
])
def test_compile_errors(code, match):
    with pytest.raises(CompileException, match=match) as info:
        RawModule(code=code).get_function("f")
    assert info.value.source == code


# --------------------------------------------------------- gpumask's kernels
@pytest.mark.parametrize("code", ["CAR", "TAN", "AIT", "MOL"])
@pytest.mark.parametrize("mode", ["center", "edges"])
def test_pix2world_grid_matches_numpy(code, mode):
    from astropy.wcs import WCS

    from gpumask._kernels import assemble
    from gpumask.sky import projections
    from gpumask.sky.projections import WcsParams, pix2world_build, pixel_grid_world

    wcs = WCS(naxis=2)
    wcs.wcs.ctype = [f"GLON-{code}", f"GLAT-{code}"]
    wcs.wcs.crval, wcs.wcs.cdelt, wcs.wcs.crpix = [184.56, -5.78], [-0.25, 0.25], [40.5, 25.5]
    params = WcsParams.from_wcs(wcs)
    assert params is not None
    source, options = assemble(pix2world_build(code))  # exactly what get_kernel hands to NVRTC
    kernel = RawModule(code=source, options=options, name_expressions=None).get_function("pix2world_grid")
    nx, ny = 70, 45
    mx, my, offset = (nx, ny, 0.0) if mode == "center" else (nx + 1, ny + 1, -0.5)
    block, cap = projections._BLOCK, projections._MAX_GRID_Y
    lon, lat = Dev(np.full((my, mx), -1.0)), Dev(np.full((my, mx), -1.0))
    args = (lon, lat, np.int32(mx), np.int32(my), np.float64(offset)) + params.kernel_args()
    kernel(((mx + block[0] - 1) // block[0], min((my + block[1] - 1) // block[1], cap), 1), block, args)
    ref_lon, ref_lat = pixel_grid_world(params, nx, ny, xp=np, mode=mode)
    np.testing.assert_array_equal(np.isnan(lon._a), np.isnan(ref_lon))
    dlon = (lon._a - ref_lon + 180.0) % 360.0 - 180.0
    np.testing.assert_allclose(np.nan_to_num(dlon), 0.0, atol=1e-9)
    np.testing.assert_allclose(lat._a, ref_lat, atol=1e-9)
    # a grid.y smaller than the image: the kernel's row loop still covers every row
    lon2, lat2 = Dev(np.full((my, mx), -1.0)), Dev(np.full((my, mx), -1.0))
    kernel(((mx + block[0] - 1) // block[0], 2, 1), block, (lon2, lat2, *args[2:]))
    np.testing.assert_array_equal(lon2._a, lon._a)


def test_rasterise_tiles_compiles_with_its_launch_bounds():
    from gpumask._kernels import all_builds, assemble

    build = next(b for b in all_builds() if b.name == "rasterise_tiles")
    source, options = assemble(build)
    kernel = RawModule(code=source, options=options).get_function("rasterise_tiles")
    tile = int(dict(build.defines)["GPUMASK_TILE"])
    assert kernel.max_threads_per_block == tile * 8
    assert len(kernel.kernel.params) == 31
    with pytest.raises(CUDADriverError, match="LAUNCH_OUT_OF_RESOURCES"):
        kernel((1,), (tile, 16), ())  # the launch size is checked before the arguments
