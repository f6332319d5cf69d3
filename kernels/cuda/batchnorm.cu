// Batch norm as per-channel sums (so SyncBN can all-reduce them between), with or without its ReLU
// fused in (kernels/cpu/batchnorm.cpp is the CPU side).
#include <type_traits>

#include "kernels/common/elementwise.hpp"
#include "kernels/cuda/ops.cuh"
#include "kernels/cuda/reduce.cuh"

namespace lt::LT_CUDA_NS {
namespace {

// Element j of channel c in (outer, C, inner).
__device__ inline int64_t channel_element(int64_t j, int c, int channels, int64_t inner) {
  return (j / inner * channels + c) * inner + j % inner;
}

// partial[(0|1)·C·chunks + c·chunks + chunk] = the block's two sums over its chunk of channel c (grid:
// chunks × C). Without dy: Σx, Σx². With dy: Σdy, Σdy·x̂.
// With gamma (and beta) too: dy masked by the ReLU after the BN (bn(x) > 0), for the fused BN + ReLU.
__global__ void channel_partial_sums_kernel(const float* x, const float* dy, const float* mean, const float* invstd,
                                            const float* gamma, const float* beta, int64_t outer, int channels,
                                            int64_t inner, double* partial) {
  __shared__ double scratch[kThreads + 1];
  const int c = int(blockIdx.y);
  const int64_t chunks = gridDim.x, count = outer * inner;
  const int64_t begin = int64_t(blockIdx.x) * kReduceChunk;
  const int64_t end = begin + kReduceChunk < count ? begin + kReduceChunk : count;
  double first = 0, second = 0;
  for (int64_t j = begin + threadIdx.x; j < end; j += blockDim.x) {
    const int64_t i = channel_element(j, c, channels, inner);
    if (dy) {
      const bool masked = gamma && !(::lt::batchnorm_apply(x[i], mean[c], invstd[c], gamma[c], beta[c]) > 0.f);
      const double g = masked ? 0.0 : double(dy[i]);
      first += g;
      second += g * (double(x[i]) - double(mean[c])) * double(invstd[c]);
    } else {
      const double v = x[i];
      first += v;
      second += v * v;
    }
  }
  first = block_sum(first, scratch);
  second = block_sum(second, scratch);
  if (threadIdx.x == 0) {
    partial[int64_t(c) * chunks + blockIdx.x] = first;
    partial[(int64_t(channels) + c) * chunks + blockIdx.x] = second;
  }
}

// out[r] = Σ_k partial[r·cols + k], k in order; with a count (≥ 0), out[rows] = count.
__global__ void row_sums_kernel(const double* partial, int64_t rows, int64_t cols, double count, double* out) {
  const int64_t r = blockIdx.x * int64_t(blockDim.x) + threadIdx.x;
  if (r == rows && count >= 0) out[r] = count;
  if (r >= rows) return;
  double total = 0;
  for (int64_t k = 0; k < cols; ++k) total += partial[r * cols + k];
  out[r] = total;
}

// The two sums per channel into sums[0, 2C); without dy (the forward's), the count into sums[2C].
void channel_sums(const float* x, const float* dy, const float* mean, const float* invstd, const float* gamma,
                  const float* beta, const ops::BatchNormShape& s, double* sums) {
  const int64_t chunks = (s.count() + kReduceChunk - 1) / kReduceChunk;
  const double count = dy == nullptr ? double(s.count()) : -1.0;
  if (chunks == 0 || s.channels == 0) {  // zeros (no partial sums to add), and the count
    LT_LAUNCH(row_sums_kernel, blocks_for(2 * s.channels + 1), kThreads, stream())
    (nullptr, 2 * s.channels, 0, count, sums);
    check(cudaGetLastError(), "batchnorm sums");
    return;
  }
  double* partial =
      static_cast<double*>(scratch(kScratchOp0, sizeof(double) * 2 * size_t(s.channels) * size_t(chunks)));
  LT_LAUNCH(channel_partial_sums_kernel, dim3(unsigned(chunks), unsigned(s.channels)), kThreads, stream())
  (x, dy, mean, invstd, gamma, beta, s.outer, s.channels, s.inner, partial);
  LT_LAUNCH(row_sums_kernel, blocks_for(2 * s.channels + 1), kThreads, stream())
  (partial, 2 * s.channels, chunks, count, sums);
  check(cudaGetLastError(), "batchnorm sums");
}

// y in T: float, or the matmul precision's 16-bit type (y_narrow), rounded to nearest even.
template <class T>
__global__ void batchnorm_apply_kernel(const float* x, const float* mean, const float* invstd, const float* gamma,
                                       const float* beta, T* y, int channels, int64_t inner, int64_t n,
                                       bool with_relu) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x) {
    const int c = int((i / inner) % channels);
    const float v = ::lt::batchnorm_apply(x[i], mean[c], invstd[c], gamma[c], beta[c]);
    y[i] = from_float<T>(with_relu ? relu(v) : v);
  }
}

// beta non-null: dy masked by the ReLU after the BN (the fused BN + ReLU).
__global__ void batchnorm_grad_input_kernel(const float* x, const float* dy, const float* mean, const float* invstd,
                                            const float* gamma, const float* beta, const double* sums, float* dx,
                                            int channels, int64_t inner, int64_t n) {
  const float count = float(sums[2 * channels]);
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x) {
    const int c = int((i / inner) % channels);
    const bool masked = beta && !(::lt::batchnorm_apply(x[i], mean[c], invstd[c], gamma[c], beta[c]) > 0.f);
    dx[i] = batchnorm_grad_input(x[i], masked ? 0.f : dy[i], mean[c], invstd[c], gamma[c], float(sums[c]),
                                 float(sums[channels + c]), count);
  }
}

__global__ void batchnorm_param_grads_kernel(const double* sums, int channels, float* dgamma, float* dbeta) {
  const int c = int(blockIdx.x * blockDim.x + threadIdx.x);
  if (c >= channels) return;
  dbeta[c] += float(sums[c]);
  dgamma[c] += float(sums[channels + c]);
}

__global__ void batchnorm_stats_kernel(const double* sums, int channels, bool training, float* mean, float* invstd,
                                       float* running_mean, float* running_var) {
  const int c = int(blockIdx.x * blockDim.x + threadIdx.x);
  const double count = training ? sums[2 * channels] : 0.0;  // eval: no sums were made
  if (c < channels) batchnorm_statistics(sums, channels, c, count, training, mean, invstd, running_mean, running_var);
}

}  // namespace

void batchnorm_sums(const float* x, const ops::BatchNormShape& s, double* sums) {
  channel_sums(x, nullptr, nullptr, nullptr, nullptr, nullptr, s, sums);
}

void batchnorm_apply(const float* x, const float* mean, const float* invstd, const float* gamma, const float* beta,
                     float* y, const ops::BatchNormShape& s) {
  const int64_t n = s.count() * s.channels;
  if (n == 0) return;
  LT_LAUNCH(batchnorm_apply_kernel<float>, blocks_for(n), kThreads, stream())
  (x, mean, invstd, gamma, beta, y, s.channels, s.inner, n, false);
  check(cudaGetLastError(), "batchnorm_apply");
}

void batchnorm_backward_sums(const float* x, const float* dy, const float* mean, const float* invstd,
                             const ops::BatchNormShape& s, double* sums) {
  channel_sums(x, dy, mean, invstd, nullptr, nullptr, s, sums);
}

void batchnorm_backward_apply(const float* x, const float* dy, const float* mean, const float* invstd,
                              const float* gamma, const double* sums, float* dx, float* dgamma, float* dbeta,
                              const ops::BatchNormShape& s) {
  if (dgamma && dbeta && s.channels > 0)
    LT_LAUNCH(batchnorm_param_grads_kernel, blocks_for(s.channels), kThreads, stream())
  (sums, s.channels, dgamma, dbeta);
  const int64_t n = s.count() * s.channels;
  if (dx && n > 0) LT_LAUNCH(batchnorm_grad_input_kernel, blocks_for(n), kThreads, stream())
  (x, dy, mean, invstd, gamma, nullptr, sums, dx, s.channels, s.inner, n);
  check(cudaGetLastError(), "batchnorm_backward_apply");
}

void batchnorm_relu_apply(const float* x, const float* mean, const float* invstd, const float* gamma, const float* beta,
                          float* y, const ops::BatchNormShape& s) {
  const int64_t n = s.count() * s.channels;
  if (n == 0) return;
  // Narrow: y in the matmul precision's type, which the convolutions reading it round it to anyway.
  activation_bytes(s.y_narrow);  // (narrow under fp32: a programming error)
  const auto apply = [&](auto* typed) {
    using T = std::remove_pointer_t<decltype(typed)>;
    LT_LAUNCH(batchnorm_apply_kernel<T>, blocks_for(n), kThreads, stream())
    (x, mean, invstd, gamma, beta, typed, s.channels, s.inner, n, true);
  };
  if (s.y_narrow)
    as_matmul_type(y, apply);
  else
    apply(y);
  check(cudaGetLastError(), "batchnorm_relu_apply");
}

void batchnorm_relu_backward_sums(const float* x, const float* dy, const float* mean, const float* invstd,
                                  const float* gamma, const float* beta, const ops::BatchNormShape& s, double* sums) {
  channel_sums(x, dy, mean, invstd, gamma, beta, s, sums);
}

void batchnorm_relu_backward_apply(const float* x, const float* dy, const float* mean, const float* invstd,
                                   const float* gamma, const float* beta, const double* sums, float* dx, float* dgamma,
                                   float* dbeta, const ops::BatchNormShape& s) {
  if (dgamma && dbeta && s.channels > 0)
    LT_LAUNCH(batchnorm_param_grads_kernel, blocks_for(s.channels), kThreads, stream())
  (sums, s.channels, dgamma, dbeta);
  const int64_t n = s.count() * s.channels;
  if (dx && n > 0) LT_LAUNCH(batchnorm_grad_input_kernel, blocks_for(n), kThreads, stream())
  (x, dy, mean, invstd, gamma, beta, sums, dx, s.channels, s.inner, n);
  check(cudaGetLastError(), "batchnorm_relu_backward_apply");
}

void batchnorm_stats(const double* sums, int channels, bool training, float* mean, float* invstd, float* running_mean,
                     float* running_var) {
  if (channels == 0) return;
  LT_LAUNCH(batchnorm_stats_kernel, blocks_for(channels), kThreads, stream())
  (sums, channels, training, mean, invstd, running_mean, running_var);
  check(cudaGetLastError(), "batchnorm_stats");
}

}  // namespace lt::LT_CUDA_NS
