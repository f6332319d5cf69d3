// The CPU's conv ops (kernels/cpu/ops.hpp; the CUDA side: kernels/cuda/conv.cu).
#include <omp.h>

#include <Eigen/Dense>
#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <type_traits>
#include <vector>

#include "kernels/common/elementwise.hpp"
#include "kernels/cpu/ops.hpp"
#include "kernels/cpu/ops_common.hpp"

namespace lt::ops {

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

// ---- instantiations -------------------------------------------------------------------------

#define LT_INSTANTIATE(T)                                                                                            \
  template void conv2d_forward<T>(const T*, const T*, const T*, T*, const Conv2dShape&, std::vector<T>&);            \
  template void conv2d_forward_im2col<T>(const T*, const T*, const T*, T*, const Conv2dShape&, std::vector<T>&);     \
  template void conv2d_relu_forward<T>(const T*, const T*, const T*, T*, const Conv2dShape&, std::vector<T>&);       \
  template void conv_transpose_relu_forward<T>(const T*, const T*, const T*, T*, const ConvTransposeShape&,          \
                                               std::vector<T>&);                                                     \
  template void conv2d_relu_at_cells<T>(const T*, const T*, const T*, const Conv2dShape&, const CellIndexView&, T*); \
  template void conv2d_backward<T>(const T*, const T*, const T*, T*, T*, T*, const Conv2dShape&, std::vector<T>&);   \
  template void conv_transpose_forward<T>(const T*, const T*, const T*, T*, const ConvTransposeShape&,               \
                                          std::vector<T>&);                                                          \
  template void conv_transpose_backward<T>(const T*, const T*, const T*, T*, T*, T*, const ConvTransposeShape&,      \
                                           std::vector<T>&);

LT_INSTANTIATE(float)
LT_INSTANTIATE(double)
#undef LT_INSTANTIATE

}  // namespace lt::ops
