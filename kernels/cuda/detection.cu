// The detection head's work on the GPU: gathering the regression maps at object centres (and its
// backward), CenterPoint's 3×3 max-pool peak finding, and the rotated BEV IoU of box pairs (what NMS and
// matching use; kernels/common/box_iou.hpp, shared with the CPU).
#include "kernels/common/box_iou.hpp"
#include "kernels/cuda/ops.cuh"

namespace lt::LT_CUDA_NS {
namespace {

__global__ void gather_positions_forward_kernel(const float* maps, const int64_t* positions, int64_t k, int channels,
                                                int64_t plane, float* rows) {
  const int64_t n = k * channels;
  for (int64_t e = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; e < n; e += int64_t(gridDim.x) * blockDim.x) {
    const int64_t r = e / channels, c = e % channels, b = positions[r] / plane, hw = positions[r] % plane;
    rows[e] = maps[(b * channels + c) * plane + hw];
  }
}

// One thread per channel walks the rows in order, so repeated positions add up in the CPU's order.
__global__ void gather_positions_backward_kernel(const float* drows, const int64_t* positions, int64_t k, int channels,
                                                 int64_t plane, float* dmaps) {
  const int c = int(blockIdx.x * blockDim.x + threadIdx.x);
  if (c >= channels) return;
  for (int64_t r = 0; r < k; ++r) {
    const int64_t b = positions[r] / plane, hw = positions[r] % plane;
    dmaps[(b * channels + c) * plane + hw] += drows[r * channels + c];
  }
}

__global__ void max_pool3x3_kernel(const float* x, float* y, int64_t maps, int height, int width) {
  const int64_t plane = int64_t(height) * width, n = maps * plane;
  for (int64_t e = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; e < n; e += int64_t(gridDim.x) * blockDim.x) {
    const float* in = x + e / plane * plane;
    const int i = int(e % plane / width), j = int(e % width);
    float best = in[int64_t(i) * width + j];
    for (int di = -1; di <= 1; ++di)
      for (int dj = -1; dj <= 1; ++dj) {
        const int a = i + di, b = j + dj;
        if (a >= 0 && a < height && b >= 0 && b < width) best = fmaxf(best, in[int64_t(a) * width + b]);
      }
    y[e] = best;
  }
}

__global__ void bev_iou_kernel(const float* a, int64_t n, const float* b, int64_t m, double* iou) {
  for (int64_t k = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; k < n * m; k += int64_t(gridDim.x) * blockDim.x)
    iou[k] = bev_iou(a + 7 * (k / m), b + 7 * (k % m));
}

}  // namespace

void gather_positions_forward(const float* maps, const int64_t* positions, int64_t k, int channels, int64_t plane,
                              float* rows) {
  if (k * channels == 0) return;
  LT_LAUNCH(gather_positions_forward_kernel, blocks_for(k * channels), kThreads, nullptr)
  (maps, positions, k, channels, plane, rows);
  check(cudaGetLastError(), "gather_positions_forward");
}

void gather_positions_backward(const float* drows, const int64_t* positions, int64_t k, int channels, int64_t plane,
                               float* dmaps) {
  if (k * channels == 0) return;
  LT_LAUNCH(gather_positions_backward_kernel, blocks_for(channels), kThreads, nullptr)
  (drows, positions, k, channels, plane, dmaps);
  check(cudaGetLastError(), "gather_positions_backward");
}

void max_pool3x3(const float* x, float* y, int64_t maps, int height, int width) {
  const int64_t n = maps * height * width;
  if (n == 0) return;
  LT_LAUNCH(max_pool3x3_kernel, blocks_for(n), kThreads, nullptr)(x, y, maps, height, width);
  check(cudaGetLastError(), "max_pool3x3");
}

void bev_iou_matrix(const float* a, int64_t n, const float* b, int64_t m, double* iou) {
  if (n * m == 0) return;
  LT_LAUNCH(bev_iou_kernel, blocks_for(n * m), kThreads, nullptr)(a, n, b, m, iou);
  check(cudaGetLastError(), "bev_iou_matrix");
}

}  // namespace lt::LT_CUDA_NS
