#include <cuda_runtime.h>

#include <cstdio>
#include <cstdlib>

#include "kernels/common/points.hpp"
#include "kernels/cuda/check.cuh"
#include "kernels/cuda/device.hpp"

namespace lt {
namespace {

// One counter per block, summed on the host: integer arithmetic, so the result is exact.
__global__ void count_in_cost_range_kernel(const float4* points, int64_t n, unsigned long long* block_counts) {
  __shared__ unsigned int block_count;
  if (threadIdx.x == 0) block_count = 0;
  __syncthreads();
  unsigned int mine = 0;
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x) {
    const float4 p = points[i];
    mine += point_in_cost_range(p.x, p.y, p.z) ? 1u : 0u;
  }
  atomicAdd(&block_count, mine);
  __syncthreads();
  if (threadIdx.x == 0) block_counts[blockIdx.x] = block_count;
}

}  // namespace

int64_t cuda_count_points_in_cost_range(const float* host_xyzi, int64_t num_points, int device) {
  cuda_check(cudaSetDevice(device), "cudaSetDevice");
  constexpr int kThreads = 256;
  constexpr int kBlocks = 120;
  float4* points = nullptr;
  unsigned long long* block_counts = nullptr;
  cuda_check(cudaMalloc(&points, sizeof(float4) * (num_points > 0 ? num_points : 1)), "cudaMalloc");
  cuda_check(cudaMalloc(&block_counts, sizeof(unsigned long long) * kBlocks), "cudaMalloc");
  cuda_check(cudaMemcpy(points, host_xyzi, sizeof(float4) * num_points, cudaMemcpyHostToDevice), "cudaMemcpy");
  count_in_cost_range_kernel<<<kBlocks, kThreads>>>(points, num_points, block_counts);
  cuda_check(cudaGetLastError(), "count_in_cost_range_kernel");
  unsigned long long host_counts[kBlocks];
  cuda_check(cudaMemcpy(host_counts, block_counts, sizeof(host_counts), cudaMemcpyDeviceToHost), "cudaMemcpy");
  cudaFree(points);
  cudaFree(block_counts);
  int64_t total = 0;
  for (unsigned long long c : host_counts) total += int64_t(c);
  return total;
}

}  // namespace lt
