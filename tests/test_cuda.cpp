// The CUDA runtime as the rest of the program sees it. The kernels themselves are in the op table
// (tests/test_ops.cpp: DeviceOpTable and BackendOps on "cuda", skipped without a GPU).
#include <gtest/gtest.h>

#include "kernels/backend.hpp"
#include "kernels/cuda/device.hpp"

namespace lt {
namespace {

TEST(Cuda, SummaryAlwaysAnswers) {
  EXPECT_NE(cuda_summary().find("CUDA"), std::string::npos);
}

TEST(Cuda, BackendExistsExactlyWhenADeviceDoes) {
  EXPECT_EQ(cuda_backend() != nullptr, cuda_device_count() > 0) << cuda_summary();
  if (cuda_backend()) {
    EXPECT_STREQ(cuda_backend()->name, "cuda");
  }
}

}  // namespace
}  // namespace lt
