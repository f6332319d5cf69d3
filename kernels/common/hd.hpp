#pragma once
// LT_HD marks the per-element bodies that the CPU kernels and the CUDA kernels share: nvcc compiles
// them for both host and device, a plain C++ compiler sees ordinary inline functions. Keeping the
// arithmetic here is what lets the CPU tests exercise exactly what the GPU runs.
#if defined(__CUDACC__)
#define LT_HD __host__ __device__ __forceinline__
#else
#define LT_HD inline
#endif
