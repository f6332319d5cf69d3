// GEMM: cuBLAS in the GPU build (the call is thin; its argument mapping is kernels/common/gemm_layout.hpp,
// tested on the CPU), and in the emulated build a plain kernel in its place.
#include "kernels/common/gemm_layout.hpp"
#include "kernels/cuda/ops.cuh"

#if defined(__CUDACC__)
#include <cublas_v2.h>
#endif

namespace lt::LT_CUDA_NS {

#if !defined(__CUDACC__)
namespace {

// One thread per element of C, its k-sum in order. No shared memory and no barrier, so the emulation runs
// it as plain calls: what makes whole training steps affordable there.
__global__ void gemm_kernel(bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, float alpha, const float* a,
                            const float* b, float beta, float* c) {
  for (int64_t e = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; e < m * n; e += int64_t(gridDim.x) * blockDim.x) {
    const int64_t row = e / n, col = e % n;
    float sum = 0.f;
    for (int64_t i = 0; i < k; ++i)
      sum += (trans_a ? a[i * m + row] : a[row * k + i]) * (trans_b ? b[col * k + i] : b[i * n + col]);
    c[e] = beta == 0.f ? alpha * sum : alpha * sum + beta * c[e];  // β = 0 never reads C (it may be garbage)
  }
}

}  // namespace

// The emulated build's stand-in for cuBLAS (which cannot run without a GPU): tested against the CPU's
// GEMM in the op table, and what every emulated linear and convolution multiplies with.
void gemm(bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, float alpha, const float* a, const float* b,
          float beta, float* c) {
  if (m == 0 || n == 0) return;
  LT_LAUNCH(gemm_kernel, blocks_for(m * n), kThreads, stream())(trans_a, trans_b, m, n, k, alpha, a, b, beta, c);
  check(cudaGetLastError(), "gemm (emulated)");
}
#endif

#if defined(__CUDACC__)
void gemm(bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, float alpha, const float* a, const float* b,
          float beta, float* c) {
  if (m == 0 || n == 0) return;
  static cublasHandle_t handle = [] {
    cublasHandle_t h = nullptr;
    if (cublasCreate(&h) != CUBLAS_STATUS_SUCCESS) {
      std::fprintf(stderr, "lidartrain: cublasCreate failed\n");
      std::abort();
    }
    cublasSetStream(h, stream());  // the stream every op runs on
    return h;
  }();
  const ColumnMajorGemm g = column_major_gemm(trans_a, trans_b, m, n, k);
  const cublasStatus_t status =
      cublasSgemm(handle, g.transpose_first ? CUBLAS_OP_T : CUBLAS_OP_N, g.transpose_second ? CUBLAS_OP_T : CUBLAS_OP_N,
                  int(g.m), int(g.n), int(g.k), &alpha, b, int(g.ld_first), a, int(g.ld_second), &beta, c, int(g.ld_c));
  if (status != CUBLAS_STATUS_SUCCESS) {
    std::fprintf(stderr, "lidartrain: cublasSgemm failed (status %d, m %lld n %lld k %lld)\n", int(status),
                 (long long)m, (long long)n, (long long)k);
    std::abort();
  }
}
#endif

}  // namespace lt::LT_CUDA_NS
