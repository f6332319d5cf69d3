// Sums of doubles in a fixed order: per chunk of kReduceChunk values a block's tree, then the chunks in
// order on one thread. The same n gives the same bits on every run and every device.
#include "kernels/cuda/ops.cuh"
#include "kernels/cuda/reduce.cuh"

namespace lt::LT_CUDA_NS {
namespace {

__global__ void chunk_sums_kernel(const double* values, int64_t n, double* partial) {
  __shared__ double scratch[kThreads + 1];
  const int64_t begin = int64_t(blockIdx.x) * kReduceChunk;
  const int64_t end = begin + kReduceChunk < n ? begin + kReduceChunk : n;
  double mine = 0;
  for (int64_t i = begin + threadIdx.x; i < end; i += blockDim.x) mine += values[i];
  const double total = block_sum(mine, scratch);
  if (threadIdx.x == 0) partial[blockIdx.x] = total;
}

__global__ void sum_in_order_kernel(const double* partial, int64_t count, double* out) {
  double total = 0;
  for (int64_t i = 0; i < count; ++i) total += partial[i];
  *out = total;
}

}  // namespace

void sum_doubles(const double* values, int64_t n, double* out) {
  const int64_t chunks = reduce_chunks(n);
  double* partial = static_cast<double*>(scratch(kScratchSums, sizeof(double) * size_t(chunks)));
  LT_LAUNCH(chunk_sums_kernel, unsigned(chunks), kThreads, stream())(values, n, partial);
  LT_LAUNCH(sum_in_order_kernel, 1, 1, stream())(partial, chunks, out);
  check(cudaGetLastError(), "sum_doubles");
}

}  // namespace lt::LT_CUDA_NS
