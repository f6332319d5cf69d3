#pragma once
// Per-point bodies shared by kernels/cpu and kernels/cuda.
#include "kernels/common/hd.hpp"

namespace lt {

// The region whose points count as work in a frame's `cost` (DESIGN.md §4): the default BEV grid of
// both models (±51.2 m around the sensor, z in [-5, 3) m), less the ego-vehicle returns within 1 m
// that real sensors emit (8k of nuScenes' 35k points are such returns).
struct CostRange {
  static constexpr float kHalfExtentM = 51.2f;
  static constexpr float kZMinM = -5.0f;
  static constexpr float kZMaxM = 3.0f;
  static constexpr float kMinRangeM = 1.0f;
};

LT_HD bool point_in_cost_range(float x, float y, float z) {
  const float r2 = x * x + y * y;
  return x >= -CostRange::kHalfExtentM && x < CostRange::kHalfExtentM && y >= -CostRange::kHalfExtentM &&
         y < CostRange::kHalfExtentM && z >= CostRange::kZMinM && z < CostRange::kZMaxM &&
         r2 >= CostRange::kMinRangeM * CostRange::kMinRangeM;
}

}  // namespace lt
