#pragma once
// Tests of the GPU path run on each GPU backend: the emulated one (always; CI) and a real one where the
// build has CUDA and a device is visible (scripts/gpu_check.sh runs those: its filter is */cuda). A suite
// derives from OnEachGpu, uses gpu_ in its TEST_Ps, and is instantiated by LT_ON_EACH_GPU(Suite).
#include <gtest/gtest.h>

#include "kernels/backend.hpp"
#include "kernels/cuda/device.hpp"
#include "kernels/cuda/emu/emulated.hpp"

namespace lt {

class OnEachGpu : public ::testing::TestWithParam<bool> {  // true: the emulated GPU
 protected:
  void SetUp() override {
    gpu_ = GetParam() ? &cuda_emu::backend() : cuda_backend();
    if (!gpu_) GTEST_SKIP() << "no CUDA device: " << cuda_summary();
  }
  const Backend* gpu_ = nullptr;
};

}  // namespace lt

#define LT_ON_EACH_GPU(Suite)                         \
  INSTANTIATE_TEST_SUITE_P(                           \
      Devices, Suite, ::testing::Values(true, false), \
      [](const ::testing::TestParamInfo<bool>& info) { return info.param ? "emulated" : "cuda"; })
