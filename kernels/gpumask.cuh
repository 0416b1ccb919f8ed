// Small helpers shared by gpumask's CUDA sources.
//
// Every header in kernels/ must stay plain C++17 that compiles three ways:
// NVRTC (cupy.RawModule, no system headers at all), nvcc (device and host passes)
// and g++ (tests/cpu_harness runs the device math on the CPU).  Hence: no standard
// library headers except <cmath> under a host-only compiler, and math through the
// C names (sin, atan2, ...) that CUDA provides as device builtins.
#ifndef GPUMASK_CUH
#define GPUMASK_CUH

#ifdef __CUDACC__
#define GPUMASK_HD __host__ __device__
#else
#define GPUMASK_HD
#include <cmath>
#endif

// Macros rather than constexpr globals: usable in device code under every compiler.
// D2R and R2D round exactly as numpy's math.pi / 180 and 180 / math.pi.
#define GPUMASK_PI 3.141592653589793238462643383279502884
#define GPUMASK_D2R (GPUMASK_PI / 180.0)
#define GPUMASK_R2D (180.0 / GPUMASK_PI)

// Quiet NaN.  NVRTC has no NAN macro; the bit pattern works everywhere on the device.
GPUMASK_HD inline double gpumask_nan()
{
#ifdef __CUDA_ARCH__
    return __longlong_as_double(0x7ff8000000000000LL);
#else
    return nan("");
#endif
}

// sin and cos of one angle (radians); one call on the device.
GPUMASK_HD inline void gpumask_sincos(double a, double* s, double* c)
{
#ifdef __CUDA_ARCH__
    sincos(a, s, c);
#else
    *s = sin(a);
    *c = cos(a);
#endif
}

#endif  // GPUMASK_CUH
