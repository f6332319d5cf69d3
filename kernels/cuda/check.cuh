#pragma once
// Every CUDA call's status is checked: a failure inside a kernel launch or copy is a broken invariant
// (the caller checked cuda_device_count first), so it is reported and the process aborts.
#include <cuda_runtime.h>

#include <cstdio>
#include <cstdlib>

namespace lt {

inline void cuda_check(cudaError_t status, const char* what) {
  if (status != cudaSuccess) {
    std::fprintf(stderr, "lidartrain: CUDA error in %s: %s\n", what, cudaGetErrorString(status));
    std::abort();
  }
}

}  // namespace lt
