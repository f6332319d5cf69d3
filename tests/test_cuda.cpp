// CUDA kernels against their CPU twins. Skipped (never failed) on machines without a GPU.
#include <gtest/gtest.h>

#include "kernels/cpu/points.hpp"
#include "kernels/cuda/device.hpp"
#include "src/common/rng.hpp"

namespace lt {
namespace {

TEST(Cuda, SummaryAlwaysAnswers) {
  EXPECT_NE(cuda_summary().find("CUDA"), std::string::npos);
}

TEST(Cuda, CountPointsInCostRangeMatchesCpu) {
  if (cuda_device_count() == 0) GTEST_SKIP() << "no CUDA device: " << cuda_summary();
  Rng rng(11);
  std::vector<float> points;
  for (int i = 0; i < 250000; ++i)
    points.insert(points.end(), {float(rng.uniform(-70, 70)), float(rng.uniform(-70, 70)), float(rng.uniform(-7, 5)),
                                 float(rng.uniform())});
  const int64_t n = int64_t(points.size() / 4);
  EXPECT_EQ(cuda_count_points_in_cost_range(points.data(), n, 0), count_points_in_cost_range(points.data(), n));
}

}  // namespace
}  // namespace lt
