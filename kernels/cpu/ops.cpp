#include "kernels/cpu/ops.hpp"

#include <omp.h>

#include <Eigen/Dense>
#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <type_traits>
#include <vector>

#include "kernels/common/elementwise.hpp"

namespace lt::ops {
namespace {

template <class T>
using RowMatrix = Eigen::Matrix<T, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
template <class T>
using MatrixMap = Eigen::Map<RowMatrix<T>>;
template <class T>
using ConstMatrixMap = Eigen::Map<const RowMatrix<T>>;
template <class T>
using ColumnMatrixMap = Eigen::Map<Eigen::Matrix<T, Eigen::Dynamic, Eigen::Dynamic>>;
template <class T>
using ConstColumnMatrixMap = Eigen::Map<const Eigen::Matrix<T, Eigen::Dynamic, Eigen::Dynamic>>;

// Row chunk for reductions over points: a fixed size, so the summation order does not depend on the
// number of threads.
constexpr int64_t kReductionChunk = 2048;

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

bool skinny(int in, int out) {
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

// ---- linear -----------------------------------------------------------------------------------

template <class T>
void linear_forward(const T* x, const T* weight, const T* bias, T* y, int64_t rows, int in, int out) {
  if constexpr (std::is_same_v<T, float>)
    if (skinny(in, out)) return skinny_product<false>(x, rows, SkinnyWeights::transposed(weight, bias, out, in), y);
  ConstMatrixMap<T> X(x, rows, in), W(weight, out, in);
  MatrixMap<T> Y(y, rows, out);
  Y.noalias() = X * W.transpose();
  if (bias) {
    const Eigen::Map<const Eigen::Matrix<T, 1, Eigen::Dynamic>> b(bias, out);
    Y.rowwise() += b;
  }
}

template <class T>
void linear_backward(const T* x, const T* weight, const T* dy, T* dx, T* dweight, T* dbias, int64_t rows, int in,
                     int out) {
  ConstMatrixMap<T> X(x, rows, in), W(weight, out, in), DY(dy, rows, out);
  if (dx) {
    bool done = false;
    if constexpr (std::is_same_v<T, float>)
      if ((done = skinny(out, in))) skinny_product<false>(dy, rows, SkinnyWeights::as_is(weight, out, in), dx);
    if (!done) MatrixMap<T>(dx, rows, in).noalias() = DY * W;
  }
  MatrixMap<T> DW(dweight, out, in);
  DW.noalias() += DY.transpose() * X;
  if (dbias) {
    // Column sums in fixed chunks of rows, chunks added in order.
    const int64_t chunks = (rows + kReductionChunk - 1) / kReductionChunk;
    std::vector<double> partial(size_t(chunks) * out, 0.0);
#pragma omp parallel for schedule(static)
    for (int64_t chunk = 0; chunk < chunks; ++chunk) {
      double* p = &partial[size_t(chunk) * out];
      for (int64_t r = chunk * kReductionChunk; r < std::min(rows, (chunk + 1) * kReductionChunk); ++r)
        for (int o = 0; o < out; ++o) p[o] += double(dy[r * out + o]);
    }
    for (int o = 0; o < out; ++o) {
      double sum = 0;
      for (int64_t chunk = 0; chunk < chunks; ++chunk) sum += partial[size_t(chunk) * out + o];
      dbias[o] += T(sum);
    }
  }
}

// Rows per block of the fused point layers: a block's outputs (≤ 256 × 64 floats) stay in L1/L2 between
// the GEMM that writes them and the epilogue that reads them.
constexpr int64_t kPointBlock = 256;

template <class T>
void linear_relu_forward(const T* x, const T* weight, const T* bias, T* y, int64_t rows, int in, int out) {
  if constexpr (std::is_same_v<T, float>)
    if (skinny(in, out)) return skinny_product<true>(x, rows, SkinnyWeights::transposed(weight, bias, out, in), y);
  ConstMatrixMap<T> W(weight, out, in);
  const int64_t blocks = (rows + kPointBlock - 1) / kPointBlock;
#pragma omp parallel for schedule(static)
  for (int64_t block = 0; block < blocks; ++block) {
    const int64_t r0 = block * kPointBlock, n = std::min(kPointBlock, rows - r0);
    MatrixMap<T>(y + r0 * out, n, out).noalias() = ConstMatrixMap<T>(x + r0 * in, n, in) * W.transpose();
    for (int64_t r = r0; r < r0 + n; ++r) {
      T* row = y + r * out;
      for (int o = 0; o < out; ++o) row[o] = std::max(row[o] + bias[o], T(0));
    }
  }
}

// ---- conv2d -----------------------------------------------------------------------------------

namespace {

bool is_pointwise(const Conv2dShape& s) {
  return s.kernel == 1 && s.stride == 1 && s.padding == 0;
}

// Output rows per im2col tile (~512 pixels): the tile (C·k·k, rows·Wo) stays in cache while the GEMM
// reads it (measured against 1024, 2048 and 4096 with bench_ops).
int tile_rows(const Conv2dShape& s) {
  return std::max(1, 512 / std::max(1, s.out_width()));
}

// col (C·k·k, (oy1 - oy0)·Wo): the im2col matrix of output rows [oy0, oy1) of one image (C, H, W).
template <class T>
void im2col(const T* image, const Conv2dShape& s, int oy0, int oy1, T* col) {
  const int wo = s.out_width(), k = s.kernel;
  const int64_t tile = int64_t(oy1 - oy0) * wo;
#pragma omp parallel for schedule(static)
  for (int row = 0; row < s.in_channels * k * k; ++row) {
    const int c = row / (k * k), ky = (row / k) % k, kx = row % k;
    const T* plane = image + int64_t(c) * s.height * s.width;
    T* out = col + int64_t(row) * tile;
    // Output columns whose input column ox·stride - padding + kx lies inside the image.
    const int ox_first = std::max(0, (s.padding - kx + s.stride - 1) / s.stride);
    const int ox_last = std::min(wo, (s.width - 1 + s.padding - kx) / s.stride + 1);
    for (int oy = oy0; oy < oy1; ++oy) {
      T* dst = out + int64_t(oy - oy0) * wo;
      const int iy = oy * s.stride - s.padding + ky;
      if (iy < 0 || iy >= s.height || ox_first >= ox_last) {
        std::fill(dst, dst + wo, T(0));
        continue;
      }
      std::fill(dst, dst + ox_first, T(0));
      const T* src = plane + int64_t(iy) * s.width - s.padding + kx;
      if (s.stride == 1) {
        std::memcpy(dst + ox_first, src + ox_first, sizeof(T) * (ox_last - ox_first));
      } else {
        for (int ox = ox_first; ox < ox_last; ++ox) dst[ox] = src[ox * s.stride];
      }
      std::fill(dst + ox_last, dst + wo, T(0));
    }
  }
}

// image (C, H, W) += col's entries back where they came from (output rows [oy0, oy1)); each channel by
// one thread, taps in a fixed order.
template <class T>
void col2im_add(const T* col, const Conv2dShape& s, int oy0, int oy1, T* image) {
  const int wo = s.out_width(), k = s.kernel;
  const int64_t tile = int64_t(oy1 - oy0) * wo;
#pragma omp parallel for schedule(static)
  for (int c = 0; c < s.in_channels; ++c) {
    T* plane = image + int64_t(c) * s.height * s.width;
    for (int ky = 0; ky < k; ++ky)
      for (int kx = 0; kx < k; ++kx) {
        const T* in = col + (int64_t(c) * k * k + ky * k + kx) * tile;
        const int ox_first = std::max(0, (s.padding - kx + s.stride - 1) / s.stride);
        const int ox_last = std::min(wo, (s.width - 1 + s.padding - kx) / s.stride + 1);
        for (int oy = oy0; oy < oy1; ++oy) {
          const int iy = oy * s.stride - s.padding + ky;
          if (iy < 0 || iy >= s.height) continue;
          T* dst = plane + int64_t(iy) * s.width - s.padding + kx;
          const T* src = in + int64_t(oy - oy0) * wo;
          for (int ox = ox_first; ox < ox_last; ++ox) dst[ox * s.stride] += src[ox];
        }
      }
  }
}

// Row sums of (rows, cols) data added to out, each row summed in order.
template <class T>
void add_row_sums(const T* data, int64_t rows, int64_t cols, T* out) {
#pragma omp parallel for schedule(static)
  for (int64_t r = 0; r < rows; ++r) {
    double sum = 0;
    for (int64_t i = 0; i < cols; ++i) sum += double(data[r * cols + i]);
    out[r] += T(sum);
  }
}

}  // namespace

namespace {

// y[o·pixels + p] = (relu of) y + bias[o] for p in [p0, p0 + count): the epilogue of a tile of one image.
template <class T>
void bias_relu_tile(T* y, int64_t pixels, int channels, int64_t p0, int64_t count, const T* bias, bool relu) {
  if (!bias && !relu) return;
  for (int o = 0; o < channels; ++o) {
    T* row = y + o * pixels + p0;
    const T b = bias ? bias[o] : T(0);
    if (relu)
      for (int64_t i = 0; i < count; ++i) row[i] = std::max(row[i] + b, T(0));
    else
      for (int64_t i = 0; i < count; ++i) row[i] += b;
  }
}

// ---- Winograd F(2×2, 3×3) (Lavin & Gray 2016) ----
// Each 2×2 output tile is Aᵀ [(G g Gᵀ) ⊙ (Bᵀ d B)] A of its 4×4 input patch d: 16 multiplications per
// tile and channel pair instead of 36. Tiles go in chunks; per chunk, the 16 element-wise products
// summed over input channels are 16 GEMMs (O × C) · (C × tiles).
//   Bᵀ = [1 0 −1 0; 0 1 1 0; 0 −1 1 0; 0 1 0 −1], G = [1 0 0; ½ ½ ½; ½ −½ ½; 0 0 1], Aᵀ = [1 1 1 0; 0 1 −1 −1]

// Tile rows per chunk: about 16384 / C tiles, so that each chunk's 16 GEMMs are large enough to amortize
// Eigen's packing (with 2048, the budget first chosen on an AMD EPYC where 2048 … 32768 measured alike, a
// 128×128 map with 32 channels made 16 GEMMs of 32×32×64 per tile row and this Xeon spent 12 % of the
// convolution packing them; 16384 and 32768 were 15–40 % faster here than 2048, 131072 slower: bench_ops
// BM_Conv3x3Forward). A fixed budget, so the chunks (and the sums) do not depend on the thread count.
int winograd_chunk_rows(int channels, int tiles_x) {
  return std::max(1, 16384 / std::max(1, channels * tiles_x));
}

// u (16, O, C): the transformed weights.
template <class T>
void winograd_weights(const T* weight, int out_channels, int in_channels, T* u) {
  const int64_t plane = int64_t(out_channels) * in_channels;
  for (int64_t oc = 0; oc < plane; ++oc) {
    const T* g = weight + oc * 9;
    T t[4][3];
    for (int j = 0; j < 3; ++j) {
      t[0][j] = g[j];
      t[1][j] = T(0.5) * (g[j] + g[3 + j] + g[6 + j]);
      t[2][j] = T(0.5) * (g[j] - g[3 + j] + g[6 + j]);
      t[3][j] = g[6 + j];
    }
    for (int i = 0; i < 4; ++i) {
      u[(4 * i + 0) * plane + oc] = t[i][0];
      u[(4 * i + 1) * plane + oc] = T(0.5) * (t[i][0] + t[i][1] + t[i][2]);
      u[(4 * i + 2) * plane + oc] = T(0.5) * (t[i][0] - t[i][1] + t[i][2]);
      u[(4 * i + 3) * plane + oc] = t[i][2];
    }
  }
}

// out[i] = a[i] + sb · b[i] + sc · c[i] (sb, sc = ±1): the transforms' row operations, on arrays the
// compiler knows are distinct (so it vectorizes them).
template <class T>
void combine3(const T* __restrict a, const T* __restrict b, const T* __restrict c, T sb, T sc, int n,
              T* __restrict out) {
  for (int i = 0; i < n; ++i) out[i] = a[i] + sb * b[i] + sc * c[i];
}
template <class T>
void combine2(const T* __restrict a, const T* __restrict b, T sb, int n, T* __restrict out) {
  for (int i = 0; i < n; ++i) out[i] = a[i] + sb * b[i];
}

// v (16, C, count): the transformed 4×4 input patches of tile rows [ty0, ty1) of one image (C, H, W),
// count = (ty1 − ty0) · tiles_x. Each of the four input rows of a tile row is split into its columns
// 2k − 1 and 2k (zero outside the image); Bᵀ d then runs along those arrays and · B along the tiles, all
// on contiguous arrays. `rows`: 16 · (tiles_x + 1) scratch.
template <class T>
void winograd_input(const T* image, int channels, int height, int width, int tiles_x, int ty0, int ty1, T* rows, T* v) {
  const int n = tiles_x + 1;  // column pairs (2k − 1, 2k), k = 0 … tiles_x
  const int64_t count = int64_t(ty1 - ty0) * tiles_x, plane = int64_t(channels) * count;
  // d[i][0|1]: input row i's columns 2k − 1 | 2k; t[i][0|1]: the same of Bᵀ d.
  T* d[4][2];
  T* t[4][2];
  for (int i = 0; i < 4; ++i)
    for (int h = 0; h < 2; ++h) d[i][h] = rows + (2 * i + h) * n, t[i][h] = rows + (8 + 2 * i + h) * n;
  for (int c = 0; c < channels; ++c) {
    const T* src = image + int64_t(c) * height * width;
    for (int ty = ty0; ty < ty1; ++ty) {
      for (int i = 0; i < 4; ++i) {
        const int y = 2 * ty - 1 + i;
        T* odd_columns = d[i][0];  // 2k − 1
        T* even_columns = d[i][1];
        if (y < 0 || y >= height) {
          std::fill(odd_columns, odd_columns + n, T(0));
          std::fill(even_columns, even_columns + n, T(0));
          continue;
        }
        const T* __restrict line = src + int64_t(y) * width;
        // k = 0 (column −1 is padding), the columns inside the image without a test (a loop the compiler
        // vectorizes: per input row this was the transform's hottest loop), then the right edge.
        const int inside = (width - 1) / 2;  // k ≤ inside: columns 2k − 1 and 2k are both in the image
        odd_columns[0] = T(0);
        even_columns[0] = width > 0 ? line[0] : T(0);
        T* __restrict odd_out = odd_columns;
        T* __restrict even_out = even_columns;
        for (int k = 1; k <= inside; ++k) {
          odd_out[k] = line[2 * k - 1];
          even_out[k] = line[2 * k];
        }
        for (int k = std::max(1, inside + 1); k < n; ++k) {
          odd_columns[k] = 2 * k - 1 < width ? line[2 * k - 1] : T(0);
          even_columns[k] = 2 * k < width ? line[2 * k] : T(0);
        }
      }
      for (int h = 0; h < 2; ++h) {
        combine2(d[0][h], d[2][h], T(-1), n, t[0][h]);
        combine2(d[1][h], d[2][h], T(1), n, t[1][h]);
        combine2(d[2][h], d[1][h], T(-1), n, t[2][h]);
        combine2(d[1][h], d[3][h], T(-1), n, t[3][h]);
      }
      const int64_t k0 = int64_t(ty - ty0) * tiles_x + int64_t(c) * count;
      for (int i = 0; i < 4; ++i) {
        // A tile's four columns are (2tx − 1, 2tx, 2tx + 1, 2tx + 2) = (odd[tx], even[tx], odd[tx + 1], even[tx + 1]).
        const T* odd = t[i][0];
        const T* even = t[i][1];
        combine2(odd, odd + 1, T(-1), tiles_x, v + (4 * i + 0) * plane + k0);
        combine2(even, odd + 1, T(1), tiles_x, v + (4 * i + 1) * plane + k0);
        combine2(odd + 1, even, T(-1), tiles_x, v + (4 * i + 2) * plane + k0);
        combine2(even, even + 1, T(-1), tiles_x, v + (4 * i + 3) * plane + k0);
      }
    }
  }
}

// y (O, H, W) of one image at tile rows [ty0, ty1) from m (16, O, count), with bias and ReLU. `row`:
// 8 · tiles_x scratch.
template <class T>
void winograd_output(const T* m, int out_channels, int height, int width, int tiles_x, int ty0, int ty1, const T* bias,
                     bool relu, T* row, T* y) {
  const int64_t count = int64_t(ty1 - ty0) * tiles_x, plane = int64_t(out_channels) * count;
  const T floor = relu ? T(0) : -std::numeric_limits<T>::infinity();
  T* s[4] = {row + 2 * tiles_x, row + 3 * tiles_x, row + 4 * tiles_x, row + 5 * tiles_x};
  for (int o = 0; o < out_channels; ++o) {
    const T b = bias ? bias[o] : T(0);
    T* dst = y + int64_t(o) * height * width;
    for (int ty = ty0; ty < ty1; ++ty) {
      const T* e = m + int64_t(o) * count + int64_t(ty - ty0) * tiles_x;
      for (int i = 0; i < 2 && 2 * ty + i < height; ++i) {
        // Row i of Aᵀ M (M's rows 0 + 1 + 2, or 1 − 2 − 3), per tile column j.
        for (int j = 0; j < 4; ++j)
          if (i == 0)
            combine3(e + j * plane, e + (4 + j) * plane, e + (8 + j) * plane, T(1), T(1), tiles_x, s[j]);
          else
            combine3(e + (4 + j) * plane, e + (8 + j) * plane, e + (12 + j) * plane, T(-1), T(-1), tiles_x, s[j]);
        const T* __restrict s0 = s[0];
        const T* __restrict s1 = s[1];
        const T* __restrict s2 = s[2];
        const T* __restrict s3 = s[3];
        // Each tile's left and right output columns straight into the output row (interleaved stores the
        // compiler vectorizes), the last column of an odd width alone.
        T* __restrict out = dst + int64_t(2 * ty + i) * width;
        const int pairs = width / 2;
        for (int tx = 0; tx < pairs; ++tx) {
          out[2 * tx] = std::max(s0[tx] + s1[tx] + s2[tx] + b, floor);
          out[2 * tx + 1] = std::max(s1[tx] - s2[tx] - s3[tx] + b, floor);
        }
        if (width % 2) out[2 * pairs] = std::max(s0[pairs] + s1[pairs] + s2[pairs] + b, floor);
      }
    }
  }
}

template <class T>
void winograd_conv3x3(const T* x, const T* weight, const T* bias, T* y, const Conv2dShape& s, bool relu,
                      std::vector<T>& workspace) {
  const int C = s.in_channels, O = s.out_channels, H = s.height, W = s.width;
  const int tiles_x = (W + 1) / 2, tiles_y = (H + 1) / 2;
  const int chunk_rows = winograd_chunk_rows(std::max(C, O), tiles_x);
  const int chunks = (tiles_y + chunk_rows - 1) / chunk_rows;
  const int64_t chunk = int64_t(chunk_rows) * tiles_x;
  const int threads = omp_get_max_threads();
  const int64_t u_size = 16 * int64_t(O) * C;
  const int64_t per_thread = 16 * (int64_t(C) + O) * chunk + 16 * (int64_t(tiles_x) + 1);
  workspace.resize(size_t(u_size + threads * per_thread));
  T* u = workspace.data();
  winograd_weights(weight, O, C, u);
  for (int b = 0; b < s.batch; ++b) {
    const T* image = x + int64_t(b) * C * H * W;
    T* out = y + int64_t(b) * O * H * W;
#pragma omp parallel for schedule(static)
    for (int k = 0; k < chunks; ++k) {
      T* v = workspace.data() + u_size + omp_get_thread_num() * per_thread;
      T* m = v + 16 * int64_t(C) * chunk;
      T* rows = m + 16 * int64_t(O) * chunk;
      const int ty0 = k * chunk_rows, ty1 = std::min(tiles_y, ty0 + chunk_rows);
      const int64_t count = int64_t(ty1 - ty0) * tiles_x;
      winograd_input(image, C, H, W, tiles_x, ty0, ty1, rows, v);
      for (int e = 0; e < 16; ++e)
        MatrixMap<T>(m + e * int64_t(O) * count, O, count).noalias() =
            ConstMatrixMap<T>(u + e * int64_t(O) * C, O, C) * ConstMatrixMap<T>(v + e * int64_t(C) * count, C, count);
      winograd_output(m, O, H, W, tiles_x, ty0, ty1, bias, relu, rows, out);
    }
  }
}

template <class T>
void conv2d_forward_epilogue(const T* x, const T* weight, const T* bias, T* y, const Conv2dShape& s, bool relu,
                             std::vector<T>& workspace, bool allow_winograd = true) {
  if (allow_winograd && conv2d_uses_winograd(s)) return winograd_conv3x3(x, weight, bias, y, s, relu, workspace);
  const int ho = s.out_height(), wo = s.out_width(), rows_per_tile = tile_rows(s);
  const int64_t k_dim = int64_t(s.in_channels) * s.kernel * s.kernel, pixels = int64_t(ho) * wo;
  const int64_t in_size = int64_t(s.in_channels) * s.height * s.width, out_size = s.out_channels * pixels;
  ConstMatrixMap<T> W(weight, s.out_channels, k_dim);
  for (int b = 0; b < s.batch; ++b) {
    MatrixMap<T> Y(y + b * out_size, s.out_channels, pixels);
    if (is_pointwise(s)) {
      Y.noalias() = W * ConstMatrixMap<T>(x + b * in_size, k_dim, pixels);
      bias_relu_tile(y + b * out_size, pixels, s.out_channels, 0, pixels, bias, relu);
    } else {
      workspace.resize(size_t(k_dim * rows_per_tile * wo));
      for (int oy0 = 0; oy0 < ho; oy0 += rows_per_tile) {
        const int oy1 = std::min(ho, oy0 + rows_per_tile);
        const int64_t tile = int64_t(oy1 - oy0) * wo;
        im2col(x + b * in_size, s, oy0, oy1, workspace.data());
        // Y_tile = W · col, computed as its transpose col^T · W^T in column-major terms (the same memory):
        // Eigen's column-major GEMM kernel is ~5 % faster for these shapes (bench_ops).
        ColumnMatrixMap<T>(y + b * out_size, pixels, s.out_channels).middleRows(int64_t(oy0) * wo, tile).noalias() =
            ConstColumnMatrixMap<T>(workspace.data(), tile, k_dim) *
            ConstColumnMatrixMap<T>(weight, k_dim, s.out_channels);
        bias_relu_tile(y + b * out_size, pixels, s.out_channels, int64_t(oy0) * wo, tile, bias, relu);
      }
    }
  }
}

}  // namespace

bool conv2d_uses_winograd(const Conv2dShape& s) {
  return s.kernel == 3 && s.stride == 1 && s.padding == 1 && s.in_channels >= 8 && s.out_channels >= 8;
}

template <class T>
void conv2d_forward(const T* x, const T* weight, const T* bias, T* y, const Conv2dShape& s, std::vector<T>& workspace) {
  conv2d_forward_epilogue(x, weight, bias, y, s, false, workspace);
}

template <class T>
void conv2d_forward_im2col(const T* x, const T* weight, const T* bias, T* y, const Conv2dShape& s,
                           std::vector<T>& workspace) {
  conv2d_forward_epilogue(x, weight, bias, y, s, false, workspace, false);
}

template <class T>
void conv2d_relu_forward(const T* x, const T* weight, const T* bias, T* y, const Conv2dShape& s,
                         std::vector<T>& workspace) {
  conv2d_forward_epilogue(x, weight, bias, y, s, true, workspace);
}

template <class T>
void conv2d_backward(const T* x, const T* weight, const T* dy, T* dx, T* dweight, T* dbias, const Conv2dShape& s,
                     std::vector<T>& workspace) {
  const int ho = s.out_height(), wo = s.out_width(), rows_per_tile = tile_rows(s);
  const int64_t k_dim = int64_t(s.in_channels) * s.kernel * s.kernel, pixels = int64_t(ho) * wo;
  const int64_t in_size = int64_t(s.in_channels) * s.height * s.width, out_size = s.out_channels * pixels;
  ConstMatrixMap<T> W(weight, s.out_channels, k_dim);
  MatrixMap<T> DW(dweight, s.out_channels, k_dim);
  // A stride-1 3×3 convolution's input gradient is the convolution of dy with the weights flipped and
  // their channels swapped: Winograd too, instead of the GEMM and the col2im scatter.
  if (dx && conv2d_uses_winograd(s)) {
    const int C = s.in_channels, O = s.out_channels;
    std::vector<T> flipped(size_t(O) * C * 9);
    for (int o = 0; o < O; ++o)
      for (int c = 0; c < C; ++c)
        for (int tap = 0; tap < 9; ++tap)
          flipped[(size_t(c) * O + o) * 9 + (8 - tap)] = weight[(size_t(o) * C + c) * 9 + tap];
    winograd_conv3x3(dy, flipped.data(), static_cast<const T*>(nullptr), dx,
                     Conv2dShape{s.batch, O, C, s.height, s.width, 3, 1, 1}, false, workspace);
    dx = nullptr;  // done
  }
  for (int b = 0; b < s.batch; ++b) {
    ConstMatrixMap<T> DY(dy + b * out_size, s.out_channels, pixels);
    if (dbias) add_row_sums(dy + b * out_size, s.out_channels, pixels, dbias);
    if (is_pointwise(s)) {
      DW.noalias() += DY * ConstMatrixMap<T>(x + b * in_size, k_dim, pixels).transpose();
      if (dx) MatrixMap<T>(dx + b * in_size, k_dim, pixels).noalias() = W.transpose() * DY;
      continue;
    }
    workspace.resize(size_t(2 * k_dim * rows_per_tile * wo));
    T* col = workspace.data();
    T* dcol = workspace.data() + k_dim * rows_per_tile * wo;
    if (dx) std::fill(dx + b * in_size, dx + (b + 1) * in_size, T(0));
    for (int oy0 = 0; oy0 < ho; oy0 += rows_per_tile) {
      const int oy1 = std::min(ho, oy0 + rows_per_tile);
      const int64_t tile = int64_t(oy1 - oy0) * wo;
      im2col(x + b * in_size, s, oy0, oy1, col);
      const auto dy_tile = DY.middleCols(int64_t(oy0) * wo, tile);
      DW.noalias() += dy_tile * ConstMatrixMap<T>(col, k_dim, tile).transpose();
      if (dx) {
        MatrixMap<T>(dcol, k_dim, tile).noalias() = W.transpose() * dy_tile;
        col2im_add(dcol, s, oy0, oy1, dx + b * in_size);
      }
    }
  }
}

// ---- conv-transpose 2x2 stride 2 -----------------------------------------------------------------

namespace {
template <class T>
void conv_transpose_epilogue(const T* x, const T* weight, const T* bias, T* y, const ConvTransposeShape& s, bool relu,
                             std::vector<T>& workspace) {
  const int k = s.stride, kk = k * k;
  const int64_t pixels = int64_t(s.height) * s.width, taps = int64_t(s.out_channels) * kk;
  const int out_w = k * s.width;
  workspace.resize(size_t(taps * pixels));
  ConstMatrixMap<T> W(weight, s.in_channels, taps);
  for (int b = 0; b < s.batch; ++b) {
    MatrixMap<T> taps_out(workspace.data(), taps, pixels);  // ((o, p, q), (i, j))
    taps_out.noalias() = W.transpose() * ConstMatrixMap<T>(x + b * s.in_channels * pixels, s.in_channels, pixels);
    T* yb = y + int64_t(b) * s.out_channels * kk * pixels;
#pragma omp parallel for schedule(static)
    for (int o = 0; o < s.out_channels; ++o) {
      const T bo = bias ? bias[o] : T(0);
      for (int pq = 0; pq < kk; ++pq) {
        const int p = pq / k, q = pq % k;
        const T* src = workspace.data() + (int64_t(o) * kk + pq) * pixels;
        for (int i = 0; i < s.height; ++i)
          for (int j = 0; j < s.width; ++j)
            yb[(int64_t(o) * k * s.height + k * i + p) * out_w + k * j + q] =
                relu ? std::max(src[int64_t(i) * s.width + j] + bo, T(0)) : src[int64_t(i) * s.width + j] + bo;
      }
    }
  }
}
}  // namespace

template <class T>
void conv_transpose_forward(const T* x, const T* weight, const T* bias, T* y, const ConvTransposeShape& s,
                            std::vector<T>& workspace) {
  conv_transpose_epilogue(x, weight, bias, y, s, false, workspace);
}

template <class T>
void conv_transpose_relu_forward(const T* x, const T* weight, const T* bias, T* y, const ConvTransposeShape& s,
                                 std::vector<T>& workspace) {
  conv_transpose_epilogue(x, weight, bias, y, s, true, workspace);
}

template <class T>
void conv_transpose_backward(const T* x, const T* weight, const T* dy, T* dx, T* dweight, T* dbias,
                             const ConvTransposeShape& s, std::vector<T>& workspace) {
  const int k = s.stride, kk = k * k;
  const int64_t pixels = int64_t(s.height) * s.width, taps = int64_t(s.out_channels) * kk;
  const int out_w = k * s.width;
  workspace.resize(size_t(taps * pixels));
  ConstMatrixMap<T> W(weight, s.in_channels, taps);
  MatrixMap<T> DW(dweight, s.in_channels, taps);
  for (int b = 0; b < s.batch; ++b) {
    const T* dyb = dy + int64_t(b) * s.out_channels * kk * pixels;
#pragma omp parallel for schedule(static)
    for (int o = 0; o < s.out_channels; ++o)
      for (int pq = 0; pq < kk; ++pq) {
        const int p = pq / k, q = pq % k;
        T* dst = workspace.data() + (int64_t(o) * kk + pq) * pixels;
        for (int i = 0; i < s.height; ++i)
          for (int j = 0; j < s.width; ++j)
            dst[int64_t(i) * s.width + j] = dyb[(int64_t(o) * k * s.height + k * i + p) * out_w + k * j + q];
      }
    ConstMatrixMap<T> dtaps(workspace.data(), taps, pixels);
    ConstMatrixMap<T> X(x + b * s.in_channels * pixels, s.in_channels, pixels);
    DW.noalias() += X * dtaps.transpose();
    if (dx) MatrixMap<T>(dx + b * s.in_channels * pixels, s.in_channels, pixels).noalias() = W * dtaps;
    if (dbias) {
      std::vector<T> per_tap(size_t(taps), T(0));
      add_row_sums(workspace.data(), taps, pixels, per_tap.data());
      for (int o = 0; o < s.out_channels; ++o) {
        T sum = T(0);
        for (int pq = 0; pq < kk; ++pq) sum += per_tap[size_t(kk * o + pq)];
        dbias[o] += sum;
      }
    }
  }
}

// ---- batch norm ---------------------------------------------------------------------------------

namespace {

// sums[c] += Σ f(x, c), sums[C + c] += Σ g(x, c) over channel c, in a fixed order: for points
// (inner == 1) by fixed row chunks summed in order; for maps by channel, image after image.
template <class T, class First, class Second>
void channel_sums(const T* x, const BatchNormShape& s, double* sums, First first, Second second) {
  const int C = s.channels;
  std::fill(sums, sums + 2 * C, 0.0);
  if (s.inner == 1) {
    const int64_t chunks = (s.outer + kReductionChunk - 1) / kReductionChunk;
    std::vector<double> partial(size_t(chunks) * 2 * C, 0.0);
#pragma omp parallel for schedule(static)
    for (int64_t chunk = 0; chunk < chunks; ++chunk) {
      double* p = &partial[size_t(chunk) * 2 * C];
      for (int64_t r = chunk * kReductionChunk; r < std::min(s.outer, (chunk + 1) * kReductionChunk); ++r)
        for (int c = 0; c < C; ++c) {
          p[c] += first(r * C + c, c);
          p[C + c] += second(r * C + c, c);
        }
    }
    for (int64_t chunk = 0; chunk < chunks; ++chunk)
      for (int c = 0; c < 2 * C; ++c) sums[c] += partial[size_t(chunk) * 2 * C + c];
    return;
  }
#pragma omp parallel for schedule(static)
  for (int c = 0; c < C; ++c) {
    double a = 0, b = 0;
    for (int64_t o = 0; o < s.outer; ++o) {
      const int64_t base = (o * C + c) * s.inner;
      for (int64_t i = 0; i < s.inner; ++i) {
        a += first(base + i, c);
        b += second(base + i, c);
      }
    }
    sums[c] = a;
    sums[C + c] = b;
  }
  (void)x;
}

// Calls body(flat_index, channel) for every element, in parallel.
template <class Body>
void for_each_element(const BatchNormShape& s, Body body) {
  const int C = s.channels;
  if (s.inner == 1) {
#pragma omp parallel for schedule(static)
    for (int64_t r = 0; r < s.outer; ++r)
      for (int c = 0; c < C; ++c) body(r * C + c, c);
    return;
  }
#pragma omp parallel for collapse(2) schedule(static)
  for (int64_t o = 0; o < s.outer; ++o)
    for (int c = 0; c < C; ++c) {
      const int64_t base = (o * C + c) * s.inner;
      for (int64_t i = 0; i < s.inner; ++i) body(base + i, c);
    }
}

}  // namespace

// dbeta += Σdy, dgamma += Σdy·x̂ (the sums of the backward), unless they are null.
template <class T>
void add_batchnorm_param_grads(const double* sums, int channels, T* dgamma, T* dbeta) {
  if (!dgamma || !dbeta) return;
  for (int c = 0; c < channels; ++c) {
    dbeta[c] += T(sums[c]);
    dgamma[c] += T(sums[channels + c]);
  }
}

template <class T>
void batchnorm_sums(const T* x, const BatchNormShape& s, double* sums) {
  channel_sums(
      x, s, sums, [&](int64_t i, int) { return double(x[i]); },
      [&](int64_t i, int) { return double(x[i]) * double(x[i]); });
}

template <class T>
void batchnorm_apply(const T* x, const T* mean, const T* invstd, const T* gamma, const T* beta, T* y,
                     const BatchNormShape& s) {
  for_each_element(s,
                   [&](int64_t i, int c) { y[i] = lt::batchnorm_apply(x[i], mean[c], invstd[c], gamma[c], beta[c]); });
}

template <class T>
void batchnorm_backward_sums(const T* x, const T* dy, const T* mean, const T* invstd, const BatchNormShape& s,
                             double* sums) {
  channel_sums(
      x, s, sums, [&](int64_t i, int) { return double(dy[i]); },
      [&](int64_t i, int c) { return double(dy[i]) * (double(x[i]) - double(mean[c])) * double(invstd[c]); });
}

template <class T>
void batchnorm_backward_apply(const T* x, const T* dy, const T* mean, const T* invstd, const T* gamma,
                              const double* sums, double count, T* dx, T* dgamma, T* dbeta, const BatchNormShape& s) {
  const int C = s.channels;
  add_batchnorm_param_grads(sums, C, dgamma, dbeta);
  if (!dx) return;
  for_each_element(s, [&](int64_t i, int c) {
    dx[i] = batchnorm_grad_input(x[i], dy[i], mean[c], invstd[c], gamma[c], T(sums[c]), T(sums[C + c]), T(count));
  });
}

template <class T>
void batchnorm_relu_apply(const T* x, const T* mean, const T* invstd, const T* gamma, const T* beta, T* y,
                          const BatchNormShape& s) {
  for_each_element(
      s, [&](int64_t i, int c) { y[i] = relu(lt::batchnorm_apply(x[i], mean[c], invstd[c], gamma[c], beta[c])); });
}

template <class T>
void batchnorm_relu_backward_sums(const T* x, const T* dy, const T* mean, const T* invstd, const T* gamma,
                                  const T* beta, const BatchNormShape& s, double* sums) {
  // dy masked by the ReLU (bn(x) > 0) into a scratch array, then BN's own sums over it. dy is loaded
  // whatever the mask (a select, not a conditional load, so the loop vectorizes); the mask inside the
  // double sums' loops measured 2.4× slower, a conditional load 3× (bench_ops BM_BatchNormRelu120kx32).
  thread_local std::vector<T> masked;
  masked.resize(size_t(s.outer * s.channels * s.inner));
  T* g = masked.data();
  for_each_element(s, [&](int64_t i, int c) {
    const T d = dy[i];
    g[i] = lt::batchnorm_apply(x[i], mean[c], invstd[c], gamma[c], beta[c]) > T(0) ? d : T(0);
  });
  batchnorm_backward_sums(x, g, mean, invstd, s, sums);
}

template <class T>
void batchnorm_relu_backward_apply(const T* x, const T* dy, const T* mean, const T* invstd, const T* gamma,
                                   const T* beta, const double* sums, double count, T* dx, T* dgamma, T* dbeta,
                                   const BatchNormShape& s) {
  const int C = s.channels;
  add_batchnorm_param_grads(sums, C, dgamma, dbeta);
  if (!dx) return;
  for_each_element(s, [&](int64_t i, int c) {
    const T d = dy[i];  // a select, not a conditional load (see batchnorm_relu_backward_sums)
    const T g = lt::batchnorm_apply(x[i], mean[c], invstd[c], gamma[c], beta[c]) > T(0) ? d : T(0);
    dx[i] = batchnorm_grad_input(x[i], g, mean[c], invstd[c], gamma[c], T(sums[c]), T(sums[C + c]), T(count));
  });
}

// ---- element-wise and layout ------------------------------------------------------------------

template <class T>
void relu_forward(const T* x, T* y, int64_t n) {
#pragma omp parallel for schedule(static)
  for (int64_t i = 0; i < n; ++i) y[i] = relu(x[i]);
}

template <class T>
void relu_backward(const T* y, const T* dy, T* dx, int64_t n) {
#pragma omp parallel for schedule(static)
  for (int64_t i = 0; i < n; ++i) dx[i] = relu_grad(y[i], dy[i]);
}

template <class T>
void concat_channels(const T* a, int ca, const T* b, int cb, int64_t outer, int64_t inner, T* out) {
#pragma omp parallel for schedule(static)
  for (int64_t o = 0; o < outer; ++o) {
    std::memcpy(out + o * (ca + cb) * inner, a + o * ca * inner, sizeof(T) * ca * inner);
    std::memcpy(out + (o * (ca + cb) + ca) * inner, b + o * cb * inner, sizeof(T) * cb * inner);
  }
}

template <class T>
void split_channels(const T* in, int ca, int cb, int64_t outer, int64_t inner, T* a, T* b) {
#pragma omp parallel for schedule(static)
  for (int64_t o = 0; o < outer; ++o) {
    if (a) std::memcpy(a + o * ca * inner, in + o * (ca + cb) * inner, sizeof(T) * ca * inner);
    if (b) std::memcpy(b + o * cb * inner, in + (o * (ca + cb) + ca) * inner, sizeof(T) * cb * inner);
  }
}

// ---- points <-> BEV cells -------------------------------------------------------------------

CellIndex build_cell_index(std::vector<int64_t> point_cell, int64_t num_cells) {
  CellIndex index;
  index.num_points = int64_t(point_cell.size());
  index.num_cells = num_cells;
  index.point_cell = std::move(point_cell);
  // Counting sort by cell: stable, so points keep their order within a cell.
  std::vector<int64_t> count(size_t(num_cells) + 1, 0);
  for (int64_t cell : index.point_cell)
    if (cell >= 0) count[size_t(cell) + 1] += 1;
  std::vector<int64_t> slot_of_cell(size_t(num_cells), -1);
  index.cell_start.push_back(0);
  for (int64_t cell = 0; cell < num_cells; ++cell) {
    if (count[size_t(cell) + 1] == 0) continue;
    slot_of_cell[size_t(cell)] = int64_t(index.cells.size());
    index.cells.push_back(cell);
    index.cell_start.push_back(index.cell_start.back() + count[size_t(cell) + 1]);
  }
  index.sorted_points.resize(size_t(index.cell_start.back()));
  index.point_slot.assign(size_t(index.num_points), -1);
  std::vector<int64_t> next(index.cell_start.begin(), index.cell_start.end() - 1);
  for (int64_t p = 0; p < index.num_points; ++p) {
    const int64_t cell = index.point_cell[size_t(p)];
    if (cell < 0) continue;
    const int64_t m = slot_of_cell[size_t(cell)];
    index.point_slot[size_t(p)] = m;
    index.sorted_points[size_t(next[size_t(m)]++)] = p;
  }
  return index;
}

namespace {

// Moving between the occupied cells' rows (M, C) and the (B, C, H, W) grid, whose cells are numbered
// b·HW + hw. Channels go in blocks of 16 (one cache line of floats), occupied cells in ascending
// order, so both sides are read and written in near-sequential order.
constexpr int kChannelBlock = 16;

// to_grid: grid[cell, c] = rows[m, c]; otherwise rows[m, c] = grid[cell, c].
template <bool to_grid, class Rows, class Grid>
void move_cell_rows(Rows* rows, const CellIndexView& index, int channels, int64_t cells_per_map, Grid* grid) {
  const int64_t occupied = index.occupied;
  const int blocks = (channels + kChannelBlock - 1) / kChannelBlock;
#pragma omp parallel for schedule(static)
  for (int block = 0; block < blocks; ++block) {
    const int c0 = block * kChannelBlock, c1 = std::min(channels, c0 + kChannelBlock);
    for (int64_t m = 0; m < occupied; ++m) {
      const int64_t cell = index.cells[size_t(m)];
      Grid* base = grid + (cell / cells_per_map) * channels * cells_per_map + cell % cells_per_map;
      for (int c = c0; c < c1; ++c) {
        if constexpr (to_grid)
          base[c * cells_per_map] = rows[m * channels + c];
        else
          rows[m * channels + c] = base[c * cells_per_map];
      }
    }
  }
}

template <class T>
void rows_to_grid(const T* rows, const CellIndexView& index, int channels, int64_t cells_per_map, T* grid) {
  move_cell_rows<true>(rows, index, channels, cells_per_map, grid);
}

template <class T>
void grid_to_rows(const T* grid, const CellIndexView& index, int channels, int64_t cells_per_map, T* rows) {
  move_cell_rows<false>(rows, index, channels, cells_per_map, grid);
}

}  // namespace

template <class T>
void voxelize_max_forward(const T* features, const CellIndexView& index, int channels, int64_t cells_per_map, T* grid,
                          int64_t* argmax) {
  const int64_t occupied = index.occupied;
  std::vector<T> cell_max(size_t(occupied * channels));
  // Points are streamed in their own order (the features are the big array) into per-cell running
  // maxima (the small one); threads split the channels, so no two threads touch the same value.
  const int channel_blocks = (channels + kChannelBlock - 1) / kChannelBlock;
  const int blocks = std::min(channel_blocks, omp_get_max_threads());
#pragma omp parallel for schedule(static)
  for (int block = 0; block < blocks; ++block) {
    const int c0 = kChannelBlock * (channel_blocks * block / blocks);
    const int c1 = std::min(channels, kChannelBlock * (channel_blocks * (block + 1) / blocks));
    for (int64_t m = 0; m < occupied; ++m) {  // the first point of each cell starts its maxima
      const int64_t p0 = index.sorted_points[size_t(index.cell_start[size_t(m)])];
      for (int c = c0; c < c1; ++c) {
        cell_max[size_t(m * channels + c)] = features[p0 * channels + c];
        argmax[m * channels + c] = p0;
      }
    }
    for (int64_t p = 0; p < index.num_points; ++p) {
      const int64_t m = index.point_slot[size_t(p)];
      if (m < 0) continue;
      const T* row = features + p * channels;
      T* best_value = &cell_max[size_t(m * channels)];
      int64_t* best = argmax + m * channels;
      for (int c = c0; c < c1; ++c) {                 // branch-free so that it vectorizes
        const bool greater = row[c] > best_value[c];  // strictly: the first point wins ties
        best_value[c] = greater ? row[c] : best_value[c];
        best[c] = greater ? p : best[c];
      }
    }
  }
  std::fill(grid, grid + index.num_cells * channels, T(0));
  rows_to_grid(cell_max.data(), index, channels, cells_per_map, grid);
}

template <class T>
void linear_relu_voxelize_max_forward(const T* x, const T* weight, const T* bias, T* y, int64_t rows, int in, int out,
                                      const CellIndexView& index, int64_t cells_per_map, T* grid) {
  const int64_t occupied = index.occupied;
  if constexpr (std::is_same_v<T, float>) {
    if (skinny(in, out)) {
      const SkinnyWeights weights = SkinnyWeights::transposed(weight, bias, out, in);
      // Running maxima per thread (threads take row blocks, so they share cells), merged after.
      const int threads = omp_get_max_threads();
      const int64_t per_thread = occupied * out;
      std::vector<float> cell_max(size_t(threads * per_thread), -std::numeric_limits<float>::infinity());
      const int64_t blocks = (rows + kPointBlock - 1) / kPointBlock;
#pragma omp parallel
      {
        float* mine = cell_max.data() + omp_get_thread_num() * per_thread;
#pragma omp for schedule(static)
        for (int64_t block = 0; block < blocks; ++block)
          skinny_rows(x, block * kPointBlock, std::min(rows, (block + 1) * kPointBlock), weights,
                      [&](int64_t r, const float* acc) {
                        const int64_t m = index.point_slot[size_t(r)];
                        float* row = y ? y + r * out : nullptr;
                        float* best = m >= 0 ? mine + m * out : nullptr;
                        for (int o = 0; o < out; ++o) {
                          const float v = std::max(acc[o], 0.f);
                          if (row) row[o] = v;
                          if (best) best[o] = v > best[o] ? v : best[o];
                        }
                      });
#pragma omp for schedule(static)
        for (int64_t i = 0; i < per_thread; ++i)
          for (int t = 1; t < threads; ++t)
            cell_max[size_t(i)] = std::max(cell_max[size_t(i)], cell_max[size_t(t * per_thread + i)]);
      }
      std::fill(grid, grid + index.num_cells * out, 0.f);
      rows_to_grid(cell_max.data(), index, out, cells_per_map, grid);
      return;
    }
  }
  std::vector<T> scratch(y ? 0 : size_t(rows * out));
  T* point_out = y ? y : scratch.data();
  linear_relu_forward(x, weight, bias, point_out, rows, in, out);
  std::vector<int64_t> argmax(size_t(occupied * out));
  voxelize_max_forward(point_out, index, out, cells_per_map, grid, argmax.data());
}

template <class T>
void voxelize_max_backward(const T* dgrid, const CellIndexView& index, const int64_t* argmax, int channels,
                           int64_t cells_per_map, T* dfeatures) {
  const int64_t occupied = index.occupied;
  std::vector<T> dcell(size_t(occupied * channels));
  grid_to_rows(dgrid, index, channels, cells_per_map, dcell.data());
  // A point belongs to one cell, so no two cells write the same (point, channel): no races.
#pragma omp parallel for schedule(static)
  for (int64_t m = 0; m < occupied; ++m)
    for (int c = 0; c < channels; ++c)
      dfeatures[argmax[m * channels + c] * channels + c] += dcell[size_t(m * channels + c)];
}

template <class T>
void scatter_mean_forward(const T* features, const CellIndexView& index, int channels, T* mean) {
  const int64_t occupied = index.occupied;
#pragma omp parallel for schedule(static)
  for (int64_t m = 0; m < occupied; ++m) {
    const int64_t first = index.cell_start[size_t(m)], last = index.cell_start[size_t(m) + 1];
    for (int c = 0; c < channels; ++c) {
      double sum = 0;
      for (int64_t k = first; k < last; ++k) sum += double(features[index.sorted_points[size_t(k)] * channels + c]);
      mean[m * channels + c] = T(sum / double(last - first));
    }
  }
}

template <class T>
void scatter_mean_backward(const T* dmean, const CellIndexView& index, int channels, T* dfeatures) {
#pragma omp parallel for schedule(static)
  for (int64_t p = 0; p < index.num_points; ++p) {
    const int64_t m = index.point_slot[size_t(p)];
    if (m < 0) continue;
    const T scale = T(1) / T(index.cell_start[size_t(m) + 1] - index.cell_start[size_t(m)]);
    for (int c = 0; c < channels; ++c) dfeatures[p * channels + c] += dmean[m * channels + c] * scale;
  }
}

template <class T>
void devoxelize_forward(const T* grid, const CellIndexView& index, int channels, int64_t cells_per_map, T* features) {
  std::vector<T> cell_rows(size_t(index.occupied * channels));
  grid_to_rows(grid, index, channels, cells_per_map, cell_rows.data());
#pragma omp parallel for schedule(static)
  for (int64_t p = 0; p < index.num_points; ++p) {
    const int64_t m = index.point_slot[size_t(p)];
    if (m < 0)
      std::fill(features + p * channels, features + (p + 1) * channels, T(0));
    else
      std::memcpy(features + p * channels, &cell_rows[size_t(m * channels)], sizeof(T) * channels);
  }
}

template <class T>
void devoxelize_backward(const T* dfeatures, const CellIndexView& index, int channels, int64_t cells_per_map,
                         T* dgrid) {
  const int64_t occupied = index.occupied;
  std::vector<T> cell_sums(size_t(occupied * channels), T(0));
#pragma omp parallel for schedule(static)
  for (int64_t m = 0; m < occupied; ++m) {
    T* sum = &cell_sums[size_t(m * channels)];
    for (int64_t k = index.cell_start[size_t(m)]; k < index.cell_start[size_t(m) + 1]; ++k) {
      const T* row = dfeatures + index.sorted_points[size_t(k)] * channels;
      for (int c = 0; c < channels; ++c) sum[c] += row[c];
    }
  }
  // dgrid += the sums, through rows of what dgrid held.
  std::vector<T> current(size_t(occupied * channels));
  grid_to_rows(dgrid, index, channels, cells_per_map, current.data());
  for (size_t i = 0; i < current.size(); ++i) current[i] += cell_sums[i];
  rows_to_grid(current.data(), index, channels, cells_per_map, dgrid);
}

template <class T>
void devoxelize_head_forward(const T* cell_features, const CellIndexView& index, const T* point_features, const T* w1,
                             const T* b1, const T* w2, const T* b2, const PointHeadShape& s, T* logits) {
  const int cg = s.grid_channels, cp = s.point_channels, hidden = s.hidden, classes = s.classes;
  if constexpr (std::is_same_v<T, float>) {
    if (skinny(cg, hidden) && skinny(cp, hidden) && skinny(hidden, classes)) {
      std::vector<float> w1_grid(size_t(hidden) * cg), w1_point(size_t(hidden) * cp);
      for (int j = 0; j < hidden; ++j) {
        std::copy(w1 + int64_t(j) * (cg + cp), w1 + int64_t(j) * (cg + cp) + cg, &w1_grid[size_t(j) * cg]);
        std::copy(w1 + int64_t(j) * (cg + cp) + cg, w1 + int64_t(j + 1) * (cg + cp), &w1_point[size_t(j) * cp]);
      }
      const int64_t occupied = index.occupied, points = index.num_points;
      std::vector<float> cell_hidden(size_t(occupied * hidden));
      skinny_product<false>(cell_features, occupied, SkinnyWeights::transposed(w1_grid.data(), nullptr, hidden, cg),
                            cell_hidden.data());
      const SkinnyWeights first = SkinnyWeights::transposed(w1_point.data(), b1, hidden, cp),
                          second = SkinnyWeights::transposed(w2, b2, classes, hidden);
      const int64_t blocks = (points + kPointBlock - 1) / kPointBlock;
#pragma omp parallel
      {
        std::vector<float> h(size_t(kPointBlock * hidden));
#pragma omp for schedule(static)
        for (int64_t block = 0; block < blocks; ++block) {
          const int64_t p0 = block * kPointBlock, p1 = std::min(points, p0 + kPointBlock);
          skinny_rows(point_features, p0, p1, first, [&](int64_t p, const float* acc) {
            const int64_t m = index.point_slot[size_t(p)];
            float* row = &h[size_t((p - p0) * hidden)];
            if (m >= 0) {
              const float* from_cell = &cell_hidden[size_t(m * hidden)];
              for (int j = 0; j < hidden; ++j) row[j] = std::max(acc[j] + from_cell[j], 0.f);
            } else {
              for (int j = 0; j < hidden; ++j) row[j] = std::max(acc[j], 0.f);
            }
          });
          skinny_rows(h.data(), 0, p1 - p0, second,
                      [&](int64_t r, const float* acc) { std::copy(acc, acc + classes, logits + (p0 + r) * classes); });
        }
      }
      return;
    }
  }
  // w1's two halves as matrices of their own.
  RowMatrix<T> w1_grid(hidden, cg), w1_point(hidden, cp);
  for (int j = 0; j < hidden; ++j) {
    std::copy(w1 + int64_t(j) * (cg + cp), w1 + int64_t(j) * (cg + cp) + cg, &w1_grid(j, 0));
    std::copy(w1 + int64_t(j) * (cg + cp) + cg, w1 + int64_t(j + 1) * (cg + cp), &w1_point(j, 0));
  }
  // The BEV half once per occupied cell.
  const int64_t occupied = index.occupied;
  std::vector<T> cell_hidden(size_t(occupied * hidden));
  const T* cell_rows = cell_features;
  const int64_t cell_blocks = (occupied + kPointBlock - 1) / kPointBlock;
#pragma omp parallel for schedule(static)
  for (int64_t block = 0; block < cell_blocks; ++block) {
    const int64_t m0 = block * kPointBlock, n = std::min(kPointBlock, occupied - m0);
    MatrixMap<T>(cell_hidden.data() + m0 * hidden, n, hidden).noalias() =
        ConstMatrixMap<T>(cell_rows + m0 * cg, n, cg) * w1_grid.transpose();
  }
  ConstMatrixMap<T> W2(w2, classes, hidden);
  const int64_t points = index.num_points, blocks = (points + kPointBlock - 1) / kPointBlock;
#pragma omp parallel
  {
    RowMatrix<T> h(kPointBlock, hidden);
#pragma omp for schedule(static)
    for (int64_t block = 0; block < blocks; ++block) {
      const int64_t p0 = block * kPointBlock, n = std::min(kPointBlock, points - p0);
      auto hb = h.topRows(n);
      hb.noalias() = ConstMatrixMap<T>(point_features + p0 * cp, n, cp) * w1_point.transpose();
      for (int64_t r = 0; r < n; ++r) {
        const int64_t m = index.point_slot[size_t(p0 + r)];
        const T* from_cell = m >= 0 ? &cell_hidden[size_t(m * hidden)] : nullptr;
        T* row = &h(r, 0);
        for (int j = 0; j < hidden; ++j) row[j] = std::max(row[j] + (from_cell ? from_cell[j] : T(0)) + b1[j], T(0));
      }
      MatrixMap<T> out(logits + p0 * classes, n, classes);
      out.noalias() = hb * W2.transpose();
      out.rowwise() += Eigen::Map<const Eigen::Matrix<T, 1, Eigen::Dynamic>>(b2, classes);
    }
  }
}

template <class T>
void conv2d_relu_at_cells(const T* x, const T* weight, const T* bias, const Conv2dShape& s, const CellIndexView& index,
                          T* rows) {
  // x is first copied channels-last (B, H, W, C): a cell's patch is then k·k contiguous runs of C values
  // (read from the channel planes directly, each of its C·k·k values was a cache line of its own, and
  // gathering 5k cells of a real scan took 4× the whole map's convolution). The weights are reordered to
  // (O, ky, kx, C) to match.
  const int k = s.kernel, ho = s.out_height(), wo = s.out_width(), C = s.in_channels;
  const int64_t k_dim = int64_t(C) * k * k, plane = int64_t(ho) * wo, in_plane = int64_t(s.height) * s.width;
  const int64_t occupied = index.occupied;
  std::vector<T> x_last(size_t(int64_t(s.batch) * in_plane * C)), w_last(size_t(s.out_channels * k_dim));
  for (int o = 0; o < s.out_channels; ++o)
    for (int c = 0; c < C; ++c)
      for (int t = 0; t < k * k; ++t) w_last[size_t(o * k_dim + t * C + c)] = weight[(int64_t(o) * C + c) * k * k + t];
  constexpr int64_t kCellBlock = 128;
  const int64_t blocks = (occupied + kCellBlock - 1) / kCellBlock;
  ConstMatrixMap<T> W(w_last.data(), s.out_channels, k_dim);
  // The channels-last copy goes 16 channels at a time, through a copy of their 16 rows: read in place, the
  // 16 planes (64 KB apart on a 128² map) share an L1 set and evict each other; channel by channel, every
  // store was a cache line of its own. Either way the transposition was half of the op.
  constexpr int kChannelBlock = 16;
#pragma omp parallel
  {
    std::vector<T> rows_copy(size_t(kChannelBlock) * s.width);
#pragma omp for schedule(static)
    for (int64_t row = 0; row < int64_t(s.batch) * s.height; ++row) {
      const int64_t b = row / s.height, y = row % s.height;
      T* to = &x_last[size_t(row * s.width * C)];
      const T* from = x + (b * C * s.height + y) * s.width;
      for (int c0 = 0; c0 < C; c0 += kChannelBlock) {
        const int n = std::min(kChannelBlock, C - c0);
        for (int cc = 0; cc < n; ++cc)
          std::copy_n(from + int64_t(c0 + cc) * in_plane, s.width, &rows_copy[size_t(cc) * s.width]);
        // A full block's count as a constant: its inner loop is unrolled (a third faster).
        const auto interleave = [&](auto count) {
          for (int w = 0; w < s.width; ++w)
            for (int cc = 0; cc < int(count); ++cc) to[int64_t(w) * C + c0 + cc] = rows_copy[size_t(cc) * s.width + w];
        };
        if (n == kChannelBlock)
          interleave(std::integral_constant<int, kChannelBlock>{});
        else
          interleave(n);
      }
    }
    std::vector<T> col(size_t(kCellBlock * k_dim));
#pragma omp for schedule(static)
    for (int64_t block = 0; block < blocks; ++block) {
      const int64_t m0 = block * kCellBlock, n = std::min(kCellBlock, occupied - m0);
      for (int64_t r = 0; r < n; ++r) {
        const int64_t cell = index.cells[size_t(m0 + r)], hw = cell % plane;
        const T* image = &x_last[size_t((cell / plane) * in_plane * C)];
        const int oy = int(hw / wo), ox = int(hw % wo);
        T* patch = &col[size_t(r * k_dim)];
        for (int ky = 0; ky < k; ++ky) {
          const int iy = oy * s.stride - s.padding + ky;
          for (int kx = 0; kx < k; ++kx, patch += C) {
            const int ix = ox * s.stride - s.padding + kx;
            if (iy >= 0 && iy < s.height && ix >= 0 && ix < s.width)
              std::copy_n(image + (int64_t(iy) * s.width + ix) * C, C, patch);
            else
              std::fill_n(patch, C, T(0));
          }
        }
      }
      MatrixMap<T> out(rows + m0 * s.out_channels, n, s.out_channels);
      out.noalias() = ConstMatrixMap<T>(col.data(), n, k_dim) * W.transpose();
      for (int64_t r = 0; r < n; ++r)
        for (int o = 0; o < s.out_channels; ++o) out(r, o) = std::max(out(r, o) + bias[o], T(0));
    }
  }
}

// ---- loss -------------------------------------------------------------------------------

template <class T>
double cross_entropy(const T* logits, const uint8_t* labels, int64_t rows, int classes, const T* class_weights,
                     int ignore_label, T* dlogits) {
  // One pass: each row's softmax (its exponentials once, in double) gives its loss and its gradient up to
  // the 1 / Σ weight that only the total knows; a second pass over the gradient applies that.
  std::vector<double> point_loss(size_t(rows), 0.0), point_weight(size_t(rows), 0.0);
#pragma omp parallel
  {
    std::vector<double> e(static_cast<size_t>(classes));
#pragma omp for schedule(static)
    for (int64_t r = 0; r < rows; ++r) {
      const int label = labels[r];
      T* d = dlogits ? dlogits + r * classes : nullptr;
      if (label == ignore_label || label >= classes) {
        if (d) std::fill(d, d + classes, T(0));
        continue;
      }
      const T* z = logits + r * classes;
      double max_logit = double(z[0]);
      for (int k = 1; k < classes; ++k) max_logit = std::max(max_logit, double(z[k]));
      double sum_exp = 0;
      for (int k = 0; k < classes; ++k) sum_exp += e[size_t(k)] = std::exp(double(z[k]) - max_logit);
      const double weight = class_weights ? double(class_weights[label]) : 1.0;
      point_loss[size_t(r)] = weight * (std::log(sum_exp) + max_logit - double(z[label]));
      point_weight[size_t(r)] = weight;
      if (d)
        for (int k = 0; k < classes; ++k) d[k] = T(weight * (e[size_t(k)] / sum_exp - (k == label ? 1.0 : 0.0)));
    }
  }
  double total_loss = 0, total_weight = 0;
  for (int64_t r = 0; r < rows; ++r) {
    total_loss += point_loss[size_t(r)];
    total_weight += point_weight[size_t(r)];
  }
  const double loss = total_weight > 0 ? total_loss / total_weight : 0.0;
  if (dlogits) {
    const T scale = total_weight > 0 ? T(1.0 / total_weight) : T(0);
    const int64_t n = rows * classes;
#pragma omp parallel for schedule(static)
    for (int64_t i = 0; i < n; ++i) dlogits[i] *= scale;
  }
  return loss;
}

// ---- detection (CenterPoint) ---------------------------------------------------------------------

template <class T>
double focal_loss(const T* logits, const T* targets, int64_t n, T* dlogits) {
  // Fixed chunks summed in order: the same bits whatever the thread count.
  constexpr int64_t kChunk = 4096;
  const int64_t chunks = (n + kChunk - 1) / kChunk;
  std::vector<double> partial(size_t(chunks), 0.0);
#pragma omp parallel for schedule(static)
  for (int64_t c = 0; c < chunks; ++c) {
    double sum = 0;
    for (int64_t i = c * kChunk; i < std::min(n, (c + 1) * kChunk); ++i) {
      T loss, grad;
      focal_loss_element(logits[i], targets[i], &loss, &grad);
      sum += double(loss);
      if (dlogits) dlogits[i] = grad;
    }
    partial[size_t(c)] = sum;
  }
  double total = 0;
  for (double v : partial) total += v;
  return total;
}

template <class T>
void gather_positions_forward(const T* maps, const int64_t* positions, int64_t k, int channels, int64_t plane,
                              T* rows) {
  for (int64_t r = 0; r < k; ++r) {
    const int64_t b = positions[r] / plane, hw = positions[r] % plane;
    for (int c = 0; c < channels; ++c) rows[r * channels + c] = maps[(b * channels + c) * plane + hw];
  }
}

template <class T>
void gather_positions_backward(const T* drows, const int64_t* positions, int64_t k, int channels, int64_t plane,
                               T* dmaps) {
  for (int64_t r = 0; r < k; ++r) {
    const int64_t b = positions[r] / plane, hw = positions[r] % plane;
    for (int c = 0; c < channels; ++c) dmaps[(b * channels + c) * plane + hw] += drows[r * channels + c];
  }
}

template <class T>
double l1_loss(const T* pred, const T* target, int64_t rows, int channels, T* dpred) {
  double total = 0;
  for (int64_t i = 0; i < rows * channels; ++i) {
    T grad;
    total += double(l1_element(pred[i], target[i], &grad));
    if (dpred) dpred[i] = grad;
  }
  return total;
}

template <class T>
void max_pool3x3(const T* x, T* y, int64_t maps, int height, int width) {
#pragma omp parallel for schedule(static)
  for (int64_t m = 0; m < maps; ++m) {
    const T* in = x + m * height * width;
    T* out = y + m * height * width;
    for (int i = 0; i < height; ++i)
      for (int j = 0; j < width; ++j) {
        T best = in[int64_t(i) * width + j];
        for (int di = -1; di <= 1; ++di)
          for (int dj = -1; dj <= 1; ++dj) {
            const int a = i + di, b = j + dj;
            if (a >= 0 && a < height && b >= 0 && b < width) best = std::max(best, in[int64_t(a) * width + b]);
          }
        out[int64_t(i) * width + j] = best;
      }
  }
}

// ---- instantiations -------------------------------------------------------------------------

#define LT_INSTANTIATE(T)                                                                                             \
  template void linear_forward<T>(const T*, const T*, const T*, T*, int64_t, int, int);                               \
  template void linear_backward<T>(const T*, const T*, const T*, T*, T*, T*, int64_t, int, int);                      \
  template void conv2d_forward<T>(const T*, const T*, const T*, T*, const Conv2dShape&, std::vector<T>&);             \
  template void batchnorm_relu_apply<T>(const T*, const T*, const T*, const T*, const T*, T*, const BatchNormShape&); \
  template void batchnorm_relu_backward_sums<T>(const T*, const T*, const T*, const T*, const T*, const T*,           \
                                                const BatchNormShape&, double*);                                      \
  template void batchnorm_relu_backward_apply<T>(const T*, const T*, const T*, const T*, const T*, const T*,          \
                                                 const double*, double, T*, T*, T*, const BatchNormShape&);           \
  template void linear_relu_forward<T>(const T*, const T*, const T*, T*, int64_t, int, int);                          \
  template void conv2d_forward_im2col<T>(const T*, const T*, const T*, T*, const Conv2dShape&, std::vector<T>&);      \
  template void conv2d_relu_forward<T>(const T*, const T*, const T*, T*, const Conv2dShape&, std::vector<T>&);        \
  template void conv_transpose_relu_forward<T>(const T*, const T*, const T*, T*, const ConvTransposeShape&,           \
                                               std::vector<T>&);                                                      \
  template void conv2d_relu_at_cells<T>(const T*, const T*, const T*, const Conv2dShape&, const CellIndexView&, T*);  \
  template void devoxelize_head_forward<T>(const T*, const CellIndexView&, const T*, const T*, const T*, const T*,    \
                                           const T*, const PointHeadShape&, T*);                                      \
  template void conv2d_backward<T>(const T*, const T*, const T*, T*, T*, T*, const Conv2dShape&, std::vector<T>&);    \
  template void conv_transpose_forward<T>(const T*, const T*, const T*, T*, const ConvTransposeShape&,                \
                                          std::vector<T>&);                                                           \
  template void conv_transpose_backward<T>(const T*, const T*, const T*, T*, T*, T*, const ConvTransposeShape&,       \
                                           std::vector<T>&);                                                          \
  template void batchnorm_sums<T>(const T*, const BatchNormShape&, double*);                                          \
  template void batchnorm_apply<T>(const T*, const T*, const T*, const T*, const T*, T*, const BatchNormShape&);      \
  template void batchnorm_backward_sums<T>(const T*, const T*, const T*, const T*, const BatchNormShape&, double*);   \
  template void batchnorm_backward_apply<T>(const T*, const T*, const T*, const T*, const T*, const double*, double,  \
                                            T*, T*, T*, const BatchNormShape&);                                       \
  template void relu_forward<T>(const T*, T*, int64_t);                                                               \
  template void relu_backward<T>(const T*, const T*, T*, int64_t);                                                    \
  template void concat_channels<T>(const T*, int, const T*, int, int64_t, int64_t, T*);                               \
  template void split_channels<T>(const T*, int, int, int64_t, int64_t, T*, T*);                                      \
  template void voxelize_max_forward<T>(const T*, const CellIndexView&, int, int64_t, T*, int64_t*);                  \
  template void voxelize_max_backward<T>(const T*, const CellIndexView&, const int64_t*, int, int64_t, T*);           \
  template void linear_relu_voxelize_max_forward<T>(const T*, const T*, const T*, T*, int64_t, int, int,              \
                                                    const CellIndexView&, int64_t, T*);                               \
  template void scatter_mean_forward<T>(const T*, const CellIndexView&, int, T*);                                     \
  template void scatter_mean_backward<T>(const T*, const CellIndexView&, int, T*);                                    \
  template void devoxelize_forward<T>(const T*, const CellIndexView&, int, int64_t, T*);                              \
  template void devoxelize_backward<T>(const T*, const CellIndexView&, int, int64_t, T*);                             \
  template double cross_entropy<T>(const T*, const uint8_t*, int64_t, int, const T*, int, T*);                        \
  template double focal_loss<T>(const T*, const T*, int64_t, T*);                                                     \
  template void gather_positions_forward<T>(const T*, const int64_t*, int64_t, int, int64_t, T*);                     \
  template void gather_positions_backward<T>(const T*, const int64_t*, int64_t, int, int64_t, T*);                    \
  template double l1_loss<T>(const T*, const T*, int64_t, int, T*);                                                   \
  template void max_pool3x3<T>(const T*, T*, int64_t, int, int);

LT_INSTANTIATE(float)
LT_INSTANTIATE(double)
#undef LT_INSTANTIATE

}  // namespace lt::ops
