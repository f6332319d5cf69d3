#pragma once
// Block-level reductions in a fixed order, through __shared__ memory and __syncthreads (no warp
// shuffles: the emulation runs the same code). Every thread of the block must call them.
#include "kernels/cuda/runtime.cuh"

namespace lt::LT_CUDA_NS {

// Elements one block reduces: a fixed size, so the partial sums, and their order, depend only on n.
constexpr int64_t kReduceChunk = 4096;

inline int64_t reduce_chunks(int64_t n) {
  const int64_t chunks = (n + kReduceChunk - 1) / kReduceChunk;
  return chunks < 1 ? 1 : chunks;
}

// The block's sum of `mine` by a fixed binary tree over kThreads values; every thread gets it.
// `scratch` is a __shared__ array of kThreads doubles.
__device__ inline double block_sum(double mine, double* scratch) {
  scratch[threadIdx.x] = mine;
  __syncthreads();
  for (int stride = kThreads / 2; stride > 0; stride /= 2) {
    if (int(threadIdx.x) < stride) scratch[threadIdx.x] += scratch[threadIdx.x + stride];
    __syncthreads();
  }
  const double total = scratch[0];
  __syncthreads();  // the scratch may be reused right after
  return total;
}

}  // namespace lt::LT_CUDA_NS
