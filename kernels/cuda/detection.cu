// The detection head's per-element work on the GPU, with the bodies kernels/common shares with the CPU:
// the focal loss over heatmap elements and the rotated BEV IoU of box pairs (what NMS and matching use).
#include <cuda_runtime.h>

#include <cstdio>
#include <cstdlib>
#include <vector>

#include "kernels/common/box_iou.hpp"
#include "kernels/common/elementwise.hpp"
#include "kernels/cuda/check.cuh"
#include "kernels/cuda/device.hpp"

namespace lt {
namespace {

constexpr int kThreads = 256;
constexpr int kBlocks = 120;

// Per element: loss and gradient (focal_loss_element); per block: the sum of its threads' losses by a
// fixed tree, so a fixed launch gives the same bits every run (no float atomics).
__global__ void focal_loss_kernel(const float* logits, const float* targets, int64_t n, float* dlogits,
                                  double* block_sums) {
  __shared__ double partial[kThreads];
  double mine = 0;
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x) {
    float loss, grad;
    focal_loss_element(logits[i], targets[i], &loss, &grad);
    mine += double(loss);
    if (dlogits) dlogits[i] = grad;
  }
  partial[threadIdx.x] = mine;
  __syncthreads();
  for (int stride = kThreads / 2; stride > 0; stride /= 2) {
    if (int(threadIdx.x) < stride) partial[threadIdx.x] += partial[threadIdx.x + stride];
    __syncthreads();
  }
  if (threadIdx.x == 0) block_sums[blockIdx.x] = partial[0];
}

__global__ void bev_iou_kernel(const float* a, int64_t n, const float* b, int64_t m, double* iou) {
  const int64_t k = blockIdx.x * int64_t(blockDim.x) + threadIdx.x;
  if (k >= n * m) return;
  iou[k] = bev_iou(a + 7 * (k / m), b + 7 * (k % m));
}

template <class T>
T* to_device(const T* host, int64_t count) {
  T* device = nullptr;
  cuda_check(cudaMalloc(&device, sizeof(T) * size_t(count > 0 ? count : 1)), "cudaMalloc");
  if (count > 0) cuda_check(cudaMemcpy(device, host, sizeof(T) * size_t(count), cudaMemcpyHostToDevice), "cudaMemcpy");
  return device;
}

}  // namespace

double cuda_focal_loss(const float* host_logits, const float* host_targets, int64_t n, float* host_dlogits,
                       int device) {
  cuda_check(cudaSetDevice(device), "cudaSetDevice");
  float* logits = to_device(host_logits, n);
  float* targets = to_device(host_targets, n);
  float* dlogits = nullptr;
  cuda_check(cudaMalloc(&dlogits, sizeof(float) * size_t(n > 0 ? n : 1)), "cudaMalloc");
  double* block_sums = nullptr;
  cuda_check(cudaMalloc(&block_sums, sizeof(double) * kBlocks), "cudaMalloc");
  focal_loss_kernel<<<kBlocks, kThreads>>>(logits, targets, n, dlogits, block_sums);
  cuda_check(cudaGetLastError(), "focal_loss_kernel");
  std::vector<double> sums(kBlocks);
  cuda_check(cudaMemcpy(sums.data(), block_sums, sizeof(double) * kBlocks, cudaMemcpyDeviceToHost), "cudaMemcpy");
  if (host_dlogits && n > 0)
    cuda_check(cudaMemcpy(host_dlogits, dlogits, sizeof(float) * size_t(n), cudaMemcpyDeviceToHost), "cudaMemcpy");
  cudaFree(logits);
  cudaFree(targets);
  cudaFree(dlogits);
  cudaFree(block_sums);
  double total = 0;
  for (double s : sums) total += s;
  return total;
}

void cuda_bev_iou_matrix(const float* host_a, int64_t n, const float* host_b, int64_t m, double* host_iou, int device) {
  cuda_check(cudaSetDevice(device), "cudaSetDevice");
  float* a = to_device(host_a, 7 * n);
  float* b = to_device(host_b, 7 * m);
  double* iou = nullptr;
  cuda_check(cudaMalloc(&iou, sizeof(double) * size_t(n * m > 0 ? n * m : 1)), "cudaMalloc");
  if (n * m > 0) {
    bev_iou_kernel<<<int((n * m + kThreads - 1) / kThreads), kThreads>>>(a, n, b, m, iou);
    cuda_check(cudaGetLastError(), "bev_iou_kernel");
    cuda_check(cudaMemcpy(host_iou, iou, sizeof(double) * size_t(n * m), cudaMemcpyDeviceToHost), "cudaMemcpy");
  }
  cudaFree(a);
  cudaFree(b);
  cudaFree(iou);
}

}  // namespace lt
