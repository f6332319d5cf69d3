#pragma once
// What the CUDA side offers the rest of the program. Every function here also exists when the build
// has no CUDA (kernels/cpu/no_cuda.cpp), so callers need no #ifdef.
#include <cstdint>
#include <string>

namespace lt {

// Number of usable CUDA devices; 0 when the build has no CUDA or the runtime reports any error
// (no driver, driver too old, no device): none of those is a failure of ours.
int cuda_device_count();

// A line for --version: "CUDA 13.0 runtime, 0 devices (driver: ...)" or "CUDA: not built".
std::string cuda_summary();

// count_points_in_cost_range on device `device`, with the points copied there and back.
// Precondition: cuda_device_count() > device.
int64_t cuda_count_points_in_cost_range(const float* host_xyzi, int64_t num_points, int device);

// The focal loss (kernels/common/elementwise.hpp) summed over n heatmap elements on device `device`, and
// its gradient into host_dlogits (if not null). Precondition: cuda_device_count() > device.
double cuda_focal_loss(const float* host_logits, const float* host_targets, int64_t n, float* host_dlogits, int device);
// iou[i·m + j] = BEV IoU of a[i] and b[j] (boxes of 7 floats; kernels/common/box_iou.hpp).
void cuda_bev_iou_matrix(const float* host_a, int64_t n, const float* host_b, int64_t m, double* host_iou, int device);

}  // namespace lt
