// Linear layers on the GPU (kernels/cpu/linear.cpp is the CPU side): GEMMs (gemm.cu) and the bias,
// bias-gradient and fused bias + ReLU epilogues that conv.cu shares.
#include "kernels/cuda/ops.cuh"

namespace lt::LT_CUDA_NS {

void linear_forward(const float* x, const float* weight, const float* bias, float* y, int64_t rows, int in, int out) {
  gemm(false, true, rows, out, in, 1.f, x, weight, 0.f, y);
  if (bias) add_bias(y, bias, rows, out, 1);
  check(cudaGetLastError(), "linear_forward");
}

void linear_backward(const float* x, const float* weight, const float* dy, float* dx, float* dweight, float* dbias,
                     int64_t rows, int in, int out) {
  if (dx) gemm(false, false, rows, in, out, 1.f, dy, weight, 0.f, dx);
  gemm(true, false, out, in, rows, 1.f, dy, x, 1.f, dweight);
  if (dbias) add_channel_sums(dy, rows, out, 1, dbias);
  check(cudaGetLastError(), "linear_backward");
}

// BatchNorm folded in (inference): the GEMM, then bias and ReLU in one pass.
void linear_relu_forward(const float* x, const float* weight, const float* bias, float* y, int64_t rows, int in,
                         int out) {
  gemm(false, true, rows, out, in, 1.f, x, weight, 0.f, y);
  bias_relu(y, bias, rows, out, 1);
  check(cudaGetLastError(), "linear_relu_forward");
}

}  // namespace lt::LT_CUDA_NS
