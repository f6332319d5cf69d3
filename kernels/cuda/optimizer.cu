// The fused optimizer over a range of the flat buffers (one thread per element, the per-element bodies
// of kernels/common/elementwise.hpp, so the CPU and the GPU apply the same formulas), the gradient
// norm's sum of squares in a fixed order, and scaling (clipping).
#include "kernels/common/elementwise.hpp"
#include "kernels/cuda/ops.cuh"
#include "kernels/cuda/reduce.cuh"

namespace lt::LT_CUDA_NS {
namespace {

// A closed gate (OptimizerStep::gate) returns at once; an open one scales each gradient by its factor.
// OptimizerStep::decays says per element whether weight decay applies (one launch over many tensors).
__global__ void adamw_kernel(float* param, const float* grad, float* exp_avg, float* exp_avg_sq, int64_t n,
                             OptimizerStep s) {
  if (s.gate && s.gate[1] == 0.f) return;
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x)
    ::lt::adamw_update(param[i], s.gate ? grad[i] * s.gate[0] : grad[i], exp_avg[i], exp_avg_sq[i], s.lr, s.beta1,
                       s.beta2, s.eps, s.decays && !s.decays[i] ? 0.f : s.weight_decay, s.bias1, s.bias2);
}

__global__ void sgd_kernel(float* param, const float* grad, float* momentum_buffer, int64_t n, OptimizerStep s) {
  if (s.gate && s.gate[1] == 0.f) return;
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x)
    ::lt::sgd_update(param[i], s.gate ? grad[i] * s.gate[0] : grad[i], momentum_buffer[i], s.lr, s.momentum,
                     s.decays && !s.decays[i] ? 0.f : s.weight_decay, s.first_step);
}

__global__ void gradient_gate_kernel(const double* norm_sq, const double* loss, double max_norm, float* gate) {
  if (blockIdx.x == 0 && threadIdx.x == 0)
    ::lt::gradient_gate(*norm_sq, loss ? *loss : 0.0, max_norm, gate[0], gate[1]);
}

__global__ void scaled_gradient_gate_kernel(double* norm_sq, const double* loss, double max_norm,
                                            int64_t growth_interval, double* scaler, float* gate) {
  if (blockIdx.x == 0 && threadIdx.x == 0)
    ::lt::scaled_gradient_gate(*norm_sq, loss ? *loss : 0.0, max_norm, scaler[0], scaler[1], double(growth_interval),
                               gate[0], gate[1]);
}

__global__ void sum_squares_kernel(const float* x, int64_t n, double* partial) {
  __shared__ double scratch[kThreads + 1];
  const int64_t begin = int64_t(blockIdx.x) * kReduceChunk;
  const int64_t end = begin + kReduceChunk < n ? begin + kReduceChunk : n;
  double mine = 0;
  for (int64_t i = begin + threadIdx.x; i < end; i += blockDim.x) mine += double(x[i]) * double(x[i]);
  const double total = block_sum(mine, scratch);
  if (threadIdx.x == 0) partial[blockIdx.x] = total;
}

__global__ void scale_kernel(float* x, int64_t n, float factor) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x)
    x[i] *= factor;
}

}  // namespace

void adamw_update(float* param, const float* grad, float* exp_avg, float* exp_avg_sq, int64_t n,
                  const OptimizerStep& step) {
  if (n == 0) return;
  LT_LAUNCH(adamw_kernel, blocks_for(n), kThreads, stream())(param, grad, exp_avg, exp_avg_sq, n, step);
  check(cudaGetLastError(), "adamw_update");
}

void sgd_update(float* param, const float* grad, float* momentum_buffer, int64_t n, const OptimizerStep& step) {
  if (n == 0) return;
  LT_LAUNCH(sgd_kernel, blocks_for(n), kThreads, stream())(param, grad, momentum_buffer, n, step);
  check(cudaGetLastError(), "sgd_update");
}

void sum_squares(const float* x, int64_t n, double* sum) {
  const int64_t chunks = reduce_chunks(n);
  auto* partial = static_cast<double*>(scratch(kScratchOp0, sizeof(double) * size_t(chunks)));
  LT_LAUNCH(sum_squares_kernel, unsigned(chunks), kThreads, stream())(x, n, partial);
  sum_doubles(partial, chunks, sum);
  check(cudaGetLastError(), "sum_squares");
}

void gradient_gate(const double* norm_sq, const double* loss, double max_norm, float* gate) {
  LT_LAUNCH(gradient_gate_kernel, 1, 1, stream())(norm_sq, loss, max_norm, gate);
  check(cudaGetLastError(), "gradient_gate");
}

void scaled_gradient_gate(double* norm_sq, const double* loss, double max_norm, int64_t growth_interval, double* scaler,
                          float* gate) {
  LT_LAUNCH(scaled_gradient_gate_kernel, 1, 1, stream())(norm_sq, loss, max_norm, growth_interval, scaler, gate);
  check(cudaGetLastError(), "scaled_gradient_gate");
}

void scale(float* x, int64_t n, float factor) {
  if (n == 0) return;
  LT_LAUNCH(scale_kernel, blocks_for(n), kThreads, stream())(x, n, factor);
  check(cudaGetLastError(), "scale");
}

}  // namespace lt::LT_CUDA_NS
