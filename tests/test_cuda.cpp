// CUDA kernels against their CPU twins. Skipped (never failed) on machines without a GPU.
#include <gtest/gtest.h>

#include <cmath>

#include "kernels/common/box_iou.hpp"
#include "kernels/cpu/ops.hpp"
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

TEST(Cuda, FocalLossMatchesCpu) {
  if (cuda_device_count() == 0) GTEST_SKIP() << "no CUDA device: " << cuda_summary();
  Rng rng(12);
  std::vector<float> logits, targets;
  for (int i = 0; i < 100000; ++i) {
    logits.push_back(float(rng.uniform(-12, 12)));
    const double u = rng.uniform();
    targets.push_back(u < 0.01 ? 1.f : u < 0.1 ? float(rng.uniform()) : 0.f);
  }
  const int64_t n = int64_t(logits.size());
  std::vector<float> cpu_grad(logits.size()), gpu_grad(logits.size());
  const double cpu = ops::focal_loss(logits.data(), targets.data(), n, cpu_grad.data());
  const double gpu = cuda_focal_loss(logits.data(), targets.data(), n, gpu_grad.data(), 0);
  EXPECT_NEAR(gpu, cpu, 1e-9 * std::abs(cpu));  // the same per-element floats, summed in another order
  for (size_t i = 0; i < cpu_grad.size(); ++i)
    EXPECT_NEAR(gpu_grad[i], cpu_grad[i], 1e-6f * (1 + std::abs(cpu_grad[i])));
  EXPECT_EQ(gpu, cuda_focal_loss(logits.data(), targets.data(), n, nullptr, 0));  // deterministic
}

TEST(Cuda, BevIouMatrixMatchesCpu) {
  if (cuda_device_count() == 0) GTEST_SKIP() << "no CUDA device: " << cuda_summary();
  Rng rng(13);
  std::vector<float> boxes;
  for (int i = 0; i < 64; ++i)
    boxes.insert(boxes.end(), {float(rng.uniform(-5, 5)), float(rng.uniform(-5, 5)), 0.f, float(rng.uniform(0.5, 5)),
                               float(rng.uniform(0.5, 2)), 1.5f, float(rng.uniform(-3.2, 3.2))});
  std::vector<double> iou(64 * 64);
  cuda_bev_iou_matrix(boxes.data(), 64, boxes.data(), 64, iou.data(), 0);
  for (int i = 0; i < 64; ++i)
    for (int j = 0; j < 64; ++j)
      EXPECT_NEAR(iou[size_t(i * 64 + j)], bev_iou(&boxes[size_t(7 * i)], &boxes[size_t(7 * j)]), 1e-9);
}

}  // namespace
}  // namespace lt
