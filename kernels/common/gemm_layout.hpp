#pragma once
// A row-major product C (m×n) = α op(A) op(B) + β C, as the column-major call of cuBLAS (and of any
// BLAS): a row-major matrix read as column-major is its transpose, so cuBLAS computes
// Cᵀ (n×m) = op(B)ᵀ op(A)ᵀ with B first. This is the whole of the cuBLAS call's setup; it is unit-tested on
// the CPU (tests/test_ops.cpp) against a plain column-major GEMM, since cuBLAS cannot run there.
#include <cstdint>

namespace lt {

struct ColumnMajorGemm {
  bool transpose_first, transpose_second;  // ops on the first (B) and second (A) operands
  int64_t m, n, k;                         // of the column-major product
  int64_t ld_first, ld_second, ld_c;       // leading dimensions of B, A and C
};

// trans_a: A is stored (k×m) and op(A) = Aᵀ; likewise trans_b: B stored (n×k).
inline ColumnMajorGemm column_major_gemm(bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k) {
  return {trans_b, trans_a, n, m, k, trans_b ? k : n, trans_a ? m : k, n};
}

}  // namespace lt
