#pragma once
#include <cstdint>

namespace lt {
// Number of points (rows of x, y, z, intensity) inside CostRange: a frame's load-balancing cost.
int64_t count_points_in_cost_range(const float* xyzi, int64_t num_points);
}  // namespace lt
