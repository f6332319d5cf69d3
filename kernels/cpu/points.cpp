#include "kernels/cpu/points.hpp"

#include "kernels/common/points.hpp"

namespace lt {

int64_t count_points_in_cost_range(const float* xyzi, int64_t num_points) {
  int64_t count = 0;  // integer sum: the order does not change the result
#pragma omp parallel for reduction(+ : count) schedule(static)
  for (int64_t i = 0; i < num_points; ++i) {
    const float* p = xyzi + 4 * i;
    count += point_in_cost_range(p[0], p[1], p[2]) ? 1 : 0;
  }
  return count;
}

}  // namespace lt
