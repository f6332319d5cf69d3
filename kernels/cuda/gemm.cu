// GEMM: cuBLAS in the GPU build (the call is thin; its argument mapping is kernels/common/gemm_layout.hpp,
// tested on the CPU), and in the emulated build a plain kernel in its place. With a 16-bit matmul
// precision (train.precision) both inputs are converted to it first, by a kernel of both builds, and
// multiplied with fp32 accumulation: cublasGemmEx (16-bit A and B, fp32 C, compute type 32F: the tensor
// cores' mode), or the emulated kernel reading the 16-bit values and summing in float.
#include <stdexcept>

#include "kernels/common/gemm_layout.hpp"
#include "kernels/cuda/ops.cuh"

#if defined(__CUDACC__)
#include <cublas_v2.h>
#endif

namespace lt::LT_CUDA_NS {

namespace {

Precision current_precision = Precision::fp32;

// y = x in T, rounded to nearest even.
template <class T>
__global__ void convert_kernel(const float* x, T* y, int64_t n) {
  for (int64_t e = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; e < n; e += int64_t(gridDim.x) * blockDim.x)
    y[e] = from_float<T>(x[e]);
}

#if !defined(__CUDACC__)
// One thread per element of C, its k-sum in order, in float whatever T is. No shared memory and no barrier,
// so the emulation runs it as plain calls: what makes whole training steps affordable there.
template <class T>
__global__ void gemm_kernel(bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, float alpha, const T* a,
                            const T* b, float beta, float* c) {
  for (int64_t e = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; e < m * n; e += int64_t(gridDim.x) * blockDim.x) {
    const int64_t row = e / n, col = e % n;
    float sum = 0.f;
    for (int64_t i = 0; i < k; ++i)
      sum += to_float(trans_a ? a[i * m + row] : a[row * k + i]) * to_float(trans_b ? b[col * k + i] : b[i * n + col]);
    c[e] = beta == 0.f ? alpha * sum : alpha * sum + beta * c[e];  // β = 0 never reads C (it may be garbage)
  }
}

// The emulated build's stand-in for cuBLAS (which cannot run without a GPU): tested against the CPU's
// GEMM in the op table, and what every emulated linear and convolution multiplies with.
template <class T>
void gemm_as(bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, float alpha, const T* a, const T* b,
             float beta, float* c) {
  LT_LAUNCH(gemm_kernel<T>, blocks_for(m * n), kThreads, stream())(trans_a, trans_b, m, n, k, alpha, a, b, beta, c);
  check(cudaGetLastError(), "gemm (emulated)");
}
#else
cublasHandle_t cublas() {
  static cublasHandle_t handle = [] {
    cublasHandle_t h = nullptr;
    if (cublasCreate(&h) != CUBLAS_STATUS_SUCCESS) {
      std::fprintf(stderr, "lidartrain: cublasCreate failed\n");
      std::abort();
    }
    cublasSetStream(h, stream());  // the stream every op runs on
    return h;
  }();
  return handle;
}

void check_cublas(cublasStatus_t status, const char* what, int64_t m, int64_t n, int64_t k) {
  if (status != CUBLAS_STATUS_SUCCESS) {
    std::fprintf(stderr, "lidartrain: %s failed (status %d, m %lld n %lld k %lld)\n", what, int(status), (long long)m,
                 (long long)n, (long long)k);
    std::abort();
  }
}

template <class T>
cudaDataType_t cuda_type();
template <>
cudaDataType_t cuda_type<__nv_bfloat16>() {
  return CUDA_R_16BF;
}
template <>
cudaDataType_t cuda_type<__half>() {
  return CUDA_R_16F;
}

template <class T>
void gemm_as(bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, float alpha, const T* a, const T* b,
             float beta, float* c) {
  const ColumnMajorGemm g = column_major_gemm(trans_a, trans_b, m, n, k);
  const cublasOperation_t first = g.transpose_first ? CUBLAS_OP_T : CUBLAS_OP_N;
  const cublasOperation_t second = g.transpose_second ? CUBLAS_OP_T : CUBLAS_OP_N;
  if constexpr (sizeof(T) == sizeof(float)) {
    check_cublas(cublasSgemm(cublas(), first, second, int(g.m), int(g.n), int(g.k), &alpha, b, int(g.ld_first), a,
                             int(g.ld_second), &beta, c, int(g.ld_c)),
                 "cublasSgemm", m, n, k);
  } else {
    check_cublas(cublasGemmEx(cublas(), first, second, int(g.m), int(g.n), int(g.k), &alpha, b, cuda_type<T>(),
                              int(g.ld_first), a, cuda_type<T>(), int(g.ld_second), &beta, c, CUDA_R_32F, int(g.ld_c),
                              CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT),
                 "cublasGemmEx", m, n, k);
  }
}
#endif

// x (n floats) converted to T into scratch `slot`.
template <class T>
const T* converted(const float* x, int64_t n, ScratchSlot slot) {
  T* y = static_cast<T*>(scratch(slot, sizeof(T) * size_t(n > 0 ? n : 1)));
  if (n > 0) LT_LAUNCH(convert_kernel<T>, blocks_for(n), kThreads, stream())(x, y, n);
  return y;
}

// A and B in T (each converted into scratch unless the caller wrote it in T already: `*_narrow`), then
// multiplied.
template <class T>
void gemm_converted(bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, float alpha, const void* a,
                    bool a_narrow, const void* b, bool b_narrow, float beta, float* c) {
  const auto in_t = [](const void* x, bool narrow, int64_t count, ScratchSlot slot) {
    return narrow ? static_cast<const T*>(x) : converted<T>(static_cast<const float*>(x), count, slot);
  };
  gemm_as<T>(trans_a, trans_b, m, n, k, alpha, in_t(a, a_narrow, m * k, kScratchGemmA),
             in_t(b, b_narrow, k * n, kScratchGemmB), beta, c);
}

void gemm_any(bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, float alpha, const void* a, bool a_narrow,
              const void* b, bool b_narrow, float beta, float* c) {
  if (m == 0 || n == 0) return;
  switch (current_precision) {
    case Precision::bf16:
      return gemm_converted<__nv_bfloat16>(trans_a, trans_b, m, n, k, alpha, a, a_narrow, b, b_narrow, beta, c);
    case Precision::fp16:
      return gemm_converted<__half>(trans_a, trans_b, m, n, k, alpha, a, a_narrow, b, b_narrow, beta, c);
    case Precision::fp32:
      break;
  }
  // In fp32 nothing is narrow: matmul_bytes() is 4 and a layout kernel wrote floats.
  gemm_as<float>(trans_a, trans_b, m, n, k, alpha, static_cast<const float*>(a), static_cast<const float*>(b), beta, c);
}

}  // namespace

void set_matmul_precision(Precision precision) {
  current_precision = precision;
}

Precision matmul_precision() {
  return current_precision;
}

size_t matmul_bytes() {
  return current_precision == Precision::fp32 ? sizeof(float) : 2;
}

void gemm(bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, float alpha, const float* a, const float* b,
          float beta, float* c) {
  gemm_any(trans_a, trans_b, m, n, k, alpha, a, false, b, false, beta, c);
}

void gemm_matmul_ab(bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, float alpha, const void* a,
                    const void* b, float beta, float* c) {
  gemm_any(trans_a, trans_b, m, n, k, alpha, a, true, b, true, beta, c);
}

void gemm_narrow(bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, float alpha, const void* a, bool a_narrow,
                 const void* b, bool b_narrow, float beta, float* c) {
  gemm_any(trans_a, trans_b, m, n, k, alpha, a, a_narrow, b, b_narrow, beta, c);
}

size_t activation_bytes(bool narrow) {
  if (narrow && current_precision == Precision::fp32)
    throw std::logic_error("an activation stored narrow (16-bit) while the matmul precision is fp32");
  return narrow ? matmul_bytes() : sizeof(float);
}

const void* to_matmul_type(const float* x, int64_t n, ScratchSlot slot) {
  switch (current_precision) {
    case Precision::bf16:
      return converted<__nv_bfloat16>(x, n, slot);
    case Precision::fp16:
      return converted<__half>(x, n, slot);
    case Precision::fp32:
      break;
  }
  return x;
}

}  // namespace lt::LT_CUDA_NS
