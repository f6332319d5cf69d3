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

double cuda_focal_loss(const float*, const float*, int64_t, float*, int) {
  std::abort();
}

void cuda_bev_iou_matrix(const float*, int64_t, const float*, int64_t, double*, int) {
  std::abort();
}

}  // namespace lt
