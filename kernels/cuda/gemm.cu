// GEMM on the GPU: cuBLAS in the nvcc build (the call is thin; its argument mapping is
// kernels/common/gemm_layout.hpp, tested on the CPU), and a hand-written tiled kernel (shared-memory tiles,
// __syncthreads) that the emulated build runs in its place and that the GPU tests compare with cuBLAS.
#include "kernels/common/gemm_layout.hpp"
#include "kernels/cuda/ops.cuh"

#if defined(__CUDACC__)
#include <cublas_v2.h>
#endif

namespace lt::LT_CUDA_NS {
namespace {

constexpr int kTile = 16;

// One thread per element of C, one kTile×kTile tile of C per block; op(A) and op(B) tiles staged through
// __shared__ memory. The k-sum runs in order, so the result does not depend on the schedule.
__global__ void gemm_tiled_kernel(bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, float alpha,
                                  const float* a, const float* b, float beta, float* c) {
  __shared__ float a_tile[kTile][kTile];
  __shared__ float b_tile[kTile][kTile];
  const int tx = int(threadIdx.x), ty = int(threadIdx.y);
  const int64_t row = int64_t(blockIdx.y) * kTile + ty, col = int64_t(blockIdx.x) * kTile + tx;
  float sum = 0.f;
  for (int64_t k0 = 0; k0 < k; k0 += kTile) {
    const int64_t ka = k0 + tx, kb = k0 + ty;
    // op(A)[row, ka] and op(B)[kb, col], 0 outside the matrices.
    a_tile[ty][tx] = row < m && ka < k ? (trans_a ? a[ka * m + row] : a[row * k + ka]) : 0.f;
    b_tile[ty][tx] = kb < k && col < n ? (trans_b ? b[col * k + kb] : b[kb * n + col]) : 0.f;
    __syncthreads();
    for (int i = 0; i < kTile; ++i) sum += a_tile[ty][i] * b_tile[i][tx];
    __syncthreads();
  }
  if (row < m && col < n) {
    float* out = c + row * n + col;
    *out = beta == 0.f ? alpha * sum : alpha * sum + beta * *out;  // β = 0 never reads C (it may be garbage)
  }
}

}  // namespace

void gemm_tiled(bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, float alpha, const float* a,
                const float* b, float beta, float* c) {
  if (m == 0 || n == 0) return;
  const dim3 grid(unsigned((n + kTile - 1) / kTile), unsigned((m + kTile - 1) / kTile));
  LT_LAUNCH(gemm_tiled_kernel, grid, dim3(kTile, kTile), nullptr)(trans_a, trans_b, m, n, k, alpha, a, b, beta, c);
  check(cudaGetLastError(), "gemm_tiled");
}

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
#else
void gemm(bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, float alpha, const float* a, const float* b,
          float beta, float* c) {
  gemm_tiled(trans_a, trans_b, m, n, k, alpha, a, b, beta, c);
}
#endif

}  // namespace lt::LT_CUDA_NS
