// Built instead of kernels/cuda/*.cu when the build has no CUDA compiler.
#include <cstdlib>

#include "kernels/cuda/device.hpp"

namespace lt {

int cuda_device_count() {
  return 0;
}

std::string cuda_summary() {
  return "CUDA: not built (no nvcc at configure time)";
}

int64_t cuda_count_points_in_cost_range(const float*, int64_t, int) {
  std::abort();
}

}  // namespace lt
