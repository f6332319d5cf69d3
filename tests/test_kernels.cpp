#include <gtest/gtest.h>

#include "kernels/common/points.hpp"
#include "kernels/cpu/points.hpp"
#include "src/common/rng.hpp"

namespace lt {
namespace {

std::vector<float> random_points(int64_t n, uint64_t seed) {
  Rng rng(seed);
  std::vector<float> points;
  for (int64_t i = 0; i < n; ++i)
    points.insert(points.end(), {float(rng.uniform(-70, 70)), float(rng.uniform(-70, 70)), float(rng.uniform(-7, 5)),
                                 float(rng.uniform())});
  return points;
}

TEST(CostRange, BoundariesAreHalfOpenAndEgoReturnsExcluded) {
  EXPECT_TRUE(point_in_cost_range(-51.2f, 0.f, 0.f));
  EXPECT_FALSE(point_in_cost_range(51.2f, 0.f, 0.f));
  EXPECT_TRUE(point_in_cost_range(10.f, 10.f, -5.f));
  EXPECT_FALSE(point_in_cost_range(10.f, 10.f, 3.f));
  EXPECT_FALSE(point_in_cost_range(0.5f, 0.5f, 0.f));  // within 1 m of the sensor
  EXPECT_TRUE(point_in_cost_range(1.f, 0.f, 0.f));
}

TEST(CostRange, CpuKernelMatchesAPlainLoop) {
  const auto points = random_points(100003, 5);
  int64_t expected = 0;
  for (size_t i = 0; i < points.size(); i += 4) {
    const float x = points[i], y = points[i + 1], z = points[i + 2];
    expected += (std::abs(x) <= 51.2f && x < 51.2f && std::abs(y) <= 51.2f && y < 51.2f && z >= -5 && z < 3 &&
                 x * x + y * y >= 1)
                    ? 1
                    : 0;
  }
  EXPECT_EQ(count_points_in_cost_range(points.data(), int64_t(points.size() / 4)), expected);
  EXPECT_EQ(count_points_in_cost_range(points.data(), 0), 0);
}

}  // namespace
}  // namespace lt
