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

// The block's sum of `mine` in a fixed order (thread 0 adds the kThreads values in thread order: two
// barriers, where a tree takes log2(kThreads) + 1, and a block reduces kReduceChunk elements before it,
// so the serial part is small); every thread gets it. `scratch` is a __shared__ array of kThreads + 1.
__device__ inline double block_sum(double mine, double* scratch) {
  scratch[threadIdx.x] = mine;
  __syncthreads();
  if (threadIdx.x == 0) {
    double total = 0;
    for (int i = 0; i < kThreads; ++i) total += scratch[i];
    scratch[kThreads] = total;
  }
  __syncthreads();
  const double total = scratch[kThreads];
  __syncthreads();  // the scratch may be reused right after
  return total;
}

}  // namespace lt::LT_CUDA_NS
