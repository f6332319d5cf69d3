// GEMM: cuBLAS in the GPU build (the call is thin; its argument mapping is kernels/common/gemm_layout.hpp,
// tested on the CPU), and in the emulated build a hand-written tiled kernel (shared-memory tiles,
// __syncthreads) in its place.
#include "kernels/common/gemm_layout.hpp"
#include "kernels/cuda/ops.cuh"

#if defined(__CUDACC__)
#include <cublas_v2.h>
#endif

namespace lt::LT_CUDA_NS {

#if !defined(__CUDACC__)
namespace {

// A block computes a kTileM × kTileN tile of C, one thread per element; op(A) and op(B) tiles of depth
// kTileK are staged through __shared__ memory. The k-sum runs in order, so the result does not depend on
// the schedule. (Sized for the emulation, which pays per thread and per barrier: few rows, since the
// convolutions' M is their 8 to 128 output channels.)
constexpr int kTileM = 8, kTileN = 32, kTileK = 32;

// P (m×n) = op(A) op(B), written to c[row·ldc_row + col·ldc_col] as α P + β c (so that P may be Cᵀ).
__global__ void gemm_tiled_kernel(bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, float alpha,
                                  const float* a, const float* b, float beta, float* c, int64_t ldc_row,
                                  int64_t ldc_col) {
  __shared__ float a_tile[kTileM][kTileK];
  __shared__ float b_tile[kTileK][kTileN];
  const int tx = int(threadIdx.x), ty = int(threadIdx.y);
  const int64_t row = int64_t(blockIdx.y) * kTileM + ty, col = int64_t(blockIdx.x) * kTileN + tx;
  float sum = 0.f;
  for (int64_t k0 = 0; k0 < k; k0 += kTileK) {
    // op(A)[row, k0 + tx] and op(B)[k0 + r, col], 0 outside the matrices.
    const int64_t ka = k0 + tx;
    a_tile[ty][tx] = row < m && ka < k ? (trans_a ? a[ka * m + row] : a[row * k + ka]) : 0.f;
    for (int r = ty; r < kTileK; r += kTileM) {
      const int64_t kb = k0 + r;
      b_tile[r][tx] = kb < k && col < n ? (trans_b ? b[col * k + kb] : b[kb * n + col]) : 0.f;
    }
    __syncthreads();
    for (int i = 0; i < kTileK; ++i) sum += a_tile[ty][i] * b_tile[i][tx];
    __syncthreads();
  }
  if (row < m && col < n) {
    float* out = c + row * ldc_row + col * ldc_col;
    *out = beta == 0.f ? alpha * sum : alpha * sum + beta * *out;  // β = 0 never reads C (it may be garbage)
  }
}

}  // namespace

// The emulated build's stand-in for cuBLAS (which cannot run without a GPU): tested against the CPU's
// GEMM in the op table, and what every emulated linear and convolution multiplies with.
void gemm(bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, float alpha, const float* a, const float* b,
          float beta, float* c) {
  if (m == 0 || n == 0) return;
  // The wide side of the tile along the larger dimension: C = op(A) op(B), or Cᵀ = op(B)ᵀ op(A)ᵀ for
  // tall products (the point MLPs' rows × a few channels). The same k-sums either way.
  if (n >= m) {
    const dim3 grid(unsigned((n + kTileN - 1) / kTileN), unsigned((m + kTileM - 1) / kTileM));
    LT_LAUNCH(gemm_tiled_kernel, grid, dim3(kTileN, kTileM), nullptr)(trans_a, trans_b, m, n, k, alpha, a, b, beta, c,
                                                                       n, 1);
  } else {
    const dim3 grid(unsigned((m + kTileN - 1) / kTileN), unsigned((n + kTileM - 1) / kTileM));
    LT_LAUNCH(gemm_tiled_kernel, grid, dim3(kTileN, kTileM), nullptr)(!trans_b, !trans_a, n, m, k, alpha, b, a, beta,
                                                                       c, 1, n);
  }
  check(cudaGetLastError(), "gemm_tiled");
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
