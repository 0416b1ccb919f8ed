// Host stand-ins for the CUDA language, force-included (g++ -include) before the
// source that emulated_cupy._raw compiles as host C++ in place of NVRTC.
//
// The preprocessor sees what NVRTC sees (__CUDACC__, __CUDACC_RTC__) except
// __CUDA_ARCH__, which stays undefined: code takes its host-math branches.
// threadIdx/blockIdx/blockDim/gridDim are read-only views of thread-local
// variables set by the generated launcher for every block and thread in turn.
// Shared memory and __syncthreads() are deliberately missing (compile errors):
// threads run one after another, so a barrier cannot be honoured.
#ifndef EMULATED_CUPY_CUDA_HOST_H
#define EMULATED_CUPY_CUDA_HOST_H

#ifndef EMULATED_CUPY_SCAN
#include <cmath>
#include <cstdio>
#endif

// After the system headers, which must not take their CUDA branches.
#define __CUDACC__ 1
#define __CUDACC_RTC__ 1

#define __device__
#define __host__
#define __forceinline__
#define __noinline__
#define __constant__
#define __align__(n) alignas(n)
#define __shared__ emulated_cupy_has_no_shared_memory
#define __syncthreads() \
    static_assert(sizeof(int) == 0, "emulated_cupy: __syncthreads() is not emulated")

// The signature scan (g++ -E -DEMULATED_CUPY_SCAN) keeps these two keywords in
// the preprocessed text so that kernels and their launch bounds can be found.
#ifndef EMULATED_CUPY_SCAN
#define __global__
#define __launch_bounds__(...)

using std::abs; using std::fabs; using std::sqrt; using std::cbrt; using std::hypot;
using std::sin; using std::cos; using std::tan; using std::asin; using std::acos;
using std::atan; using std::atan2; using std::sinh; using std::cosh; using std::tanh;
using std::exp; using std::exp2; using std::expm1; using std::log; using std::log2;
using std::log10; using std::log1p; using std::pow; using std::floor; using std::ceil;
using std::round; using std::trunc; using std::rint; using std::fmod; using std::copysign;
using std::fmin; using std::fmax; using std::fma; using std::isnan; using std::isinf;
using std::isfinite; using std::signbit; using std::nextafter; using std::ldexp;

// CUDA's min/max overloads for the common types.
#define EMULATED_CUPY_MINMAX(T) \
    inline T min(T a, T b) { return b < a ? b : a; } \
    inline T max(T a, T b) { return a < b ? b : a; }
EMULATED_CUPY_MINMAX(int)
EMULATED_CUPY_MINMAX(unsigned int)
EMULATED_CUPY_MINMAX(long long)
EMULATED_CUPY_MINMAX(unsigned long long)
EMULATED_CUPY_MINMAX(float)
EMULATED_CUPY_MINMAX(double)
#undef EMULATED_CUPY_MINMAX

template <class T> inline T __ldg(const T* p) { return *p; }

struct uint3 { unsigned int x, y, z; };
struct dim3 {
    unsigned int x, y, z;
    constexpr dim3(unsigned int vx = 1, unsigned int vy = 1, unsigned int vz = 1)
        : x(vx), y(vy), z(vz) {}
};

static thread_local uint3 emulated_cupy_threadIdx;
static thread_local uint3 emulated_cupy_blockIdx;
static thread_local dim3 emulated_cupy_blockDim;
static thread_local dim3 emulated_cupy_gridDim;
#define threadIdx (static_cast<const uint3&>(emulated_cupy_threadIdx))
#define blockIdx (static_cast<const uint3&>(emulated_cupy_blockIdx))
#define blockDim (static_cast<const dim3&>(emulated_cupy_blockDim))
#define gridDim (static_cast<const dim3&>(emulated_cupy_gridDim))
static const int warpSize = 32;

// Runs body() once per thread: blocks z, y, x, then threads z, y, x within each.
// cfg = grid x, y, z, block x, y, z.
template <class F>
static void emulated_cupy_run(const unsigned int* cfg, F body)
{
    emulated_cupy_gridDim = dim3(cfg[0], cfg[1], cfg[2]);
    emulated_cupy_blockDim = dim3(cfg[3], cfg[4], cfg[5]);
    for (unsigned int bz = 0; bz < cfg[2]; ++bz)
    for (unsigned int by = 0; by < cfg[1]; ++by)
    for (unsigned int bx = 0; bx < cfg[0]; ++bx) {
        emulated_cupy_blockIdx = uint3{bx, by, bz};
        for (unsigned int tz = 0; tz < cfg[5]; ++tz)
        for (unsigned int ty = 0; ty < cfg[4]; ++ty)
        for (unsigned int tx = 0; tx < cfg[3]; ++tx) {
            emulated_cupy_threadIdx = uint3{tx, ty, tz};
            body();
        }
    }
}
#endif  // EMULATED_CUPY_SCAN

#endif  // EMULATED_CUPY_CUDA_HOST_H
