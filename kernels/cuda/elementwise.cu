// Element-wise and layout ops: y += x, ReLU, channel concat/split (kernels/cpu/elementwise.cpp is the CPU
// side).
#include "kernels/common/elementwise.hpp"
#include "kernels/cuda/ops.cuh"

namespace lt::LT_CUDA_NS {
namespace {

__global__ void add_kernel(float* y, const float* x, int64_t n) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x)
    y[i] += x[i];
}

__global__ void relu_forward_kernel(const float* x, float* y, int64_t n) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x)
    y[i] = relu(x[i]);
}

__global__ void relu_backward_kernel(const float* y, const float* dy, float* dx, int64_t n) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x)
    dx[i] = relu_grad(y[i], dy[i]);
}

// to_parts false: out[o, :] = [a[o, :], b[o, :]]; true: the inverse (a or b may be null).
__global__ void concat_kernel(float* a, int64_t a_row, float* b, int64_t b_row, float* out, int64_t outer,
                              bool to_parts) {
  const int64_t row = a_row + b_row, n = outer * row;
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x) {
    const int64_t o = i / row, k = i % row;
    float* part = k < a_row ? (a ? a + o * a_row + k : nullptr) : (b ? b + o * b_row + (k - a_row) : nullptr);
    if (!part) continue;
    if (to_parts)
      *part = out[i];
    else
      out[i] = *part;
  }
}

}  // namespace

void add(float* y, const float* x, int64_t n) {
  if (n == 0) return;
  LT_LAUNCH(add_kernel, blocks_for(n), kThreads, stream())(y, x, n);
  check(cudaGetLastError(), "add");
}

void relu_forward(const float* x, float* y, int64_t n) {
  if (n == 0) return;
  LT_LAUNCH(relu_forward_kernel, blocks_for(n), kThreads, stream())(x, y, n);
  check(cudaGetLastError(), "relu_forward");
}

void relu_backward(const float* y, const float* dy, float* dx, int64_t n) {
  if (n == 0) return;
  LT_LAUNCH(relu_backward_kernel, blocks_for(n), kThreads, stream())(y, dy, dx, n);
  check(cudaGetLastError(), "relu_backward");
}

void concat_channels(const float* a, int ca, const float* b, int cb, int64_t outer, int64_t inner, float* out) {
  const int64_t n = outer * (ca + cb) * inner;
  if (n == 0) return;
  LT_LAUNCH(concat_kernel, blocks_for(n), kThreads, stream())
  (const_cast<float*>(a), ca * inner, const_cast<float*>(b), cb * inner, out, outer, false);
  check(cudaGetLastError(), "concat_channels");
}

void split_channels(const float* in, int ca, int cb, int64_t outer, int64_t inner, float* a, float* b) {
  const int64_t n = outer * (ca + cb) * inner;
  if (n == 0) return;
  LT_LAUNCH(concat_kernel, blocks_for(n), kThreads, stream())
  (a, ca * inner, b, cb * inner, const_cast<float*>(in), outer, true);
  check(cudaGetLastError(), "split_channels");
}

}  // namespace lt::LT_CUDA_NS
