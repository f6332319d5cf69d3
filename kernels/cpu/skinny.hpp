#pragma once
// The register-tiled product of the point layers (linear.cpp, and the fused point ops of points.cpp).
// Internal to kernels/cpu: included by the files that use it, each with its own copy.
#include <omp.h>

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <vector>

#include "kernels/cpu/ops_common.hpp"

namespace lt::ops {
namespace {

// ---- skinny products ------------------------------------------------------------------------
// The point layers' products, (N ≈ 120k, K) · (K, M) with K and M of 8 to 64: Eigen's GEMM, built for
// large products, packs and blocks them and reaches 14–30 GFLOP/s here; this register-tiled kernel keeps a
// tile of R rows × M outputs in vector registers across the whole K loop (one broadcast of x and M / kSimdWidth
// vector loads of the weights per k), 1.6–1.8× faster at these widths (bench BM_LinearRelu120k), and its
// summation order (bias, then k ascending) is fixed. float only (the double build is the tests' reference).
// The vector is the machine's own width: a 16-float GCC vector on an AVX2 machine is lowered piece by
// piece through the stack (measured on a Zen 3: the point layers at 2 GFLOP/s against Eigen's 34).
// Accumulators per tile: a tile also holds V weight vectors and one broadcast in registers; AVX-512 has
// 32 registers (16 + 4 + 1 at most), AVX2 and SSE (a portable build, LIDARTRAIN_NATIVE=OFF) 16 (8 + V +
// 1, a little spill only at the widest V).
#if defined(__AVX512F__)
constexpr int kSimdWidth = 16, kAccumulatorRegisters = 16;
#elif defined(__AVX__)
constexpr int kSimdWidth = 8, kAccumulatorRegisters = 8;
#else
constexpr int kSimdWidth = 4, kAccumulatorRegisters = 8;
#endif
typedef float SimdFloats __attribute__((vector_size(4 * kSimdWidth), aligned(4), __may_alias__));
constexpr int kSkinnyMaxOut = 64, kSkinnyMaxIn = 128;

inline bool skinny(int in, int out) {
  return in <= kSkinnyMaxIn && out <= kSkinnyMaxOut;
}

// A weight matrix as the kernel reads it: (K, MP), MP = M rounded up to the vector width, zero padded;
// bias (MP). (On AVX2 the head's 20 classes take 24 lanes; rounded up to 16 they took 32.)
struct SkinnyWeights {
  int in = 0, out = 0, padded = 0;
  std::vector<float> w, bias;
  SkinnyWeights(int in_, int out_, const float* b)
      : in(in_), out(out_), padded((out_ + kSimdWidth - 1) / kSimdWidth * kSimdWidth) {
    w.assign(size_t(in) * padded, 0.f);
    bias.assign(size_t(padded), 0.f);
    if (b) std::copy(b, b + out, bias.begin());
  }
  // From W (out, in) (a Linear's weight): y = x · Wᵀ.
  static SkinnyWeights transposed(const float* weight, const float* b, int out, int in) {
    SkinnyWeights s(in, out, b);
    for (int o = 0; o < out; ++o)
      for (int k = 0; k < in; ++k) s.w[size_t(k) * s.padded + o] = weight[int64_t(o) * in + k];
    return s;
  }
  // From A (in, out): y = x · A (a Linear's input gradient, dy · W).
  static SkinnyWeights as_is(const float* a, int in, int out) {
    SkinnyWeights s(in, out, nullptr);
    for (int k = 0; k < in; ++k) std::copy(a + int64_t(k) * out, a + int64_t(k + 1) * out, &s.w[size_t(k) * s.padded]);
    return s;
  }
};

// tile (R, V·kSimdWidth) = bias + x (R rows, stride ldx, K columns) · w.
template <int V, int R>
inline void skinny_tile(const float* __restrict x, int64_t ldx, const SkinnyWeights& weights, float* __restrict tile) {
  SimdFloats acc[R][V];
  const float* bias = weights.bias.data();
  for (int r = 0; r < R; ++r)
    for (int j = 0; j < V; ++j) acc[r][j] = *reinterpret_cast<const SimdFloats*>(bias + kSimdWidth * j);
  const float* w = weights.w.data();
  for (int k = 0; k < weights.in; ++k, w += V * kSimdWidth) {
    SimdFloats wk[V];
    for (int j = 0; j < V; ++j) wk[j] = *reinterpret_cast<const SimdFloats*>(w + kSimdWidth * j);
    for (int r = 0; r < R; ++r) {
      const float a = x[r * ldx + k];
      for (int j = 0; j < V; ++j) acc[r][j] += a * wk[j];
    }
  }
  for (int r = 0; r < R; ++r)
    for (int j = 0; j < V; ++j) *reinterpret_cast<SimdFloats*>(tile + (r * V + j) * kSimdWidth) = acc[r][j];
}

template <int V, class Epilogue>
void skinny_rows_of(const float* x, int64_t r0, int64_t r1, const SkinnyWeights& weights, Epilogue& epilogue) {
  constexpr int R = std::max(1, kAccumulatorRegisters / V);
  alignas(64) float tile[R * V * kSimdWidth];
  const int K = weights.in;
  int64_t r = r0;
  for (; r + R <= r1; r += R) {
    skinny_tile<V, R>(x + r * K, K, weights, tile);
    for (int i = 0; i < R; ++i) epilogue(r + i, tile + i * V * kSimdWidth);
  }
  if (r < r1) {  // the last rows, through a zero-padded copy
    std::vector<float> rest(size_t(R) * K, 0.f);
    std::copy(x + r * K, x + r1 * K, rest.begin());
    skinny_tile<V, R>(rest.data(), K, weights, tile);
    for (int64_t i = 0; i < r1 - r; ++i) epilogue(r + i, tile + i * V * kSimdWidth);
  }
}

// skinny_rows_of<V> with V = weights.padded / kSimdWidth.
template <int V, class Epilogue>
void skinny_rows_dispatch(const float* x, int64_t r0, int64_t r1, const SkinnyWeights& weights, Epilogue& epilogue) {
  if constexpr (V < kSkinnyMaxOut / kSimdWidth)
    if (weights.padded > V * kSimdWidth) return skinny_rows_dispatch<V + 1>(x, r0, r1, weights, epilogue);
  skinny_rows_of<V>(x, r0, r1, weights, epilogue);
}

// epilogue(row, acc) for rows [r0, r1) of x (rows, weights.in), acc = bias + x[row] · w (weights.padded
// floats, the first weights.out of them meant).
template <class Epilogue>
void skinny_rows(const float* x, int64_t r0, int64_t r1, const SkinnyWeights& weights, Epilogue&& epilogue) {
  skinny_rows_dispatch<1>(x, r0, r1, weights, epilogue);
}

// y (rows, out) = [relu](x · w + bias), rows in blocks over the threads.
template <bool Relu>
void skinny_product(const float* x, int64_t rows, const SkinnyWeights& weights, float* y) {
  constexpr int64_t kBlock = 256;
  const int64_t blocks = (rows + kBlock - 1) / kBlock;
  const int out = weights.out;
#pragma omp parallel for schedule(static)
  for (int64_t block = 0; block < blocks; ++block)
    skinny_rows(x, block * kBlock, std::min(rows, (block + 1) * kBlock), weights, [&](int64_t r, const float* acc) {
      float* row = y + r * out;
      for (int o = 0; o < out; ++o) row[o] = Relu ? std::max(acc[o], 0.f) : acc[o];
    });
}

}  // namespace
}  // namespace lt::ops
