// conv2d and conv-transpose on the GPU (kernels/cpu/conv.cpp is the CPU side; linear: linear.cu): convolutions
// through cuDNN where the build has it (cudnn_conv.cu) and the matmul precision is fp32, else, and always in the
// emulated build, GEMMs (gemm.cu: cuBLAS, or the plain kernel of the emulated build) around hand-written layout
// kernels: bias, im2col, col2im as a gather (each input element sums its taps in a fixed order: no atomics, the
// same bits every run), the conv-transpose's tap scatter and gather. A layout kernel that makes a GEMM's operand
// (the columns, the output gradient's taps) writes it in the matmul precision's type: in bf16/fp16 half the
// memory, and no fp32 copy to convert. x may be stored in that type already (x_narrow: a layer's narrow
// output, layers.hpp): im2col reads it as it is, and the GEMMs that read x directly take it so. Bias
// gradients through the batch-norm channel sums (fixed order).
#include <type_traits>

#include "kernels/cuda/ops.cuh"

namespace lt::LT_CUDA_NS {
namespace {

// y[o·inner + i] += bias[o], over `outer` blocks of (C, inner).
__global__ void add_bias_kernel(float* y, const float* bias, int64_t outer, int channels, int64_t inner) {
  const int64_t n = outer * channels * inner;
  for (int64_t e = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; e < n; e += int64_t(gridDim.x) * blockDim.x)
    y[e] += bias[(e / inner) % channels];
}

__global__ void add_first_sums_kernel(const double* sums, int channels, float* out) {
  const int c = int(blockIdx.x * blockDim.x + threadIdx.x);
  if (c < channels) out[c] += float(sums[c]);
}

// col (C·k·k, Ho·Wo) of one image (C, H, W), in T: the matmul precision's type, so that with bf16/fp16 the
// GEMM reads it as it is (rounding each value is what converting the fp32 columns would do, no fp32 copy).
// The image's elements are floats, or (s.x_narrow) T's: the layer before wrote them in T.
template <class T>
__global__ void im2col_kernel(const void* image, ops::Conv2dShape s, T* col) {
  const int ho = s.out_height(), wo = s.out_width(), k = s.kernel;
  const int64_t pixels = int64_t(ho) * wo, n = int64_t(s.in_channels) * k * k * pixels;
  for (int64_t e = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; e < n; e += int64_t(gridDim.x) * blockDim.x) {
    const int64_t row = e / pixels, p = e % pixels;
    const int c = int(row / (k * k)), ky = int(row / k % k), kx = int(row % k);
    const int iy = int(p / wo) * s.stride - s.padding + ky, ix = int(p % wo) * s.stride - s.padding + kx;
    const int64_t at = (int64_t(c) * s.height + iy) * s.width + ix;
    const bool inside = iy >= 0 && iy < s.height && ix >= 0 && ix < s.width;
    col[e] = !inside      ? from_float<T>(0.f)
             : s.x_narrow ? static_cast<const T*>(image)[at]
                          : from_float<T>(static_cast<const float*>(image)[at]);
  }
}

// image (C, H, W) = Σ of col's taps that came from each element, taps (ky, kx) in order.
__global__ void col2im_kernel(const float* col, ops::Conv2dShape s, float* image) {
  const int ho = s.out_height(), wo = s.out_width(), k = s.kernel;
  const int64_t pixels = int64_t(ho) * wo, n = int64_t(s.in_channels) * s.height * s.width;
  for (int64_t e = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; e < n; e += int64_t(gridDim.x) * blockDim.x) {
    const int c = int(e / (int64_t(s.height) * s.width)), iy = int(e / s.width % s.height), ix = int(e % s.width);
    float sum = 0.f;
    for (int ky = 0; ky < k; ++ky) {
      const int ty = iy + s.padding - ky;
      if (ty < 0 || ty % s.stride != 0 || ty / s.stride >= ho) continue;
      for (int kx = 0; kx < k; ++kx) {
        const int tx = ix + s.padding - kx;
        if (tx < 0 || tx % s.stride != 0 || tx / s.stride >= wo) continue;
        sum += col[(int64_t(c) * k * k + ky * k + kx) * pixels + int64_t(ty / s.stride) * wo + tx / s.stride];
      }
    }
    image[e] = sum;
  }
}

// Conv-transpose, kernel = stride = k: taps ((o, p, q), (i, j)) <-> y (o, k·i + p, k·j + q) of one image.
__global__ void taps_to_output_kernel(const float* taps, const float* bias, ops::ConvTransposeShape s, float* y) {
  const int k = s.stride, out_h = k * s.height, out_w = k * s.width;
  const int64_t n = int64_t(s.out_channels) * out_h * out_w, pixels = int64_t(s.height) * s.width;
  for (int64_t e = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; e < n; e += int64_t(gridDim.x) * blockDim.x) {
    const int o = int(e / (int64_t(out_h) * out_w)), Y = int(e / out_w % out_h), X = int(e % out_w);
    const float b = bias ? bias[o] : 0.f;
    y[e] = taps[(int64_t(o) * k * k + (Y % k) * k + X % k) * pixels + int64_t(Y / k) * s.width + X / k] + b;
  }
}

// dtaps in T, the matmul precision's type, as im2col's columns: both GEMMs read them as they are.
template <class T>
__global__ void output_to_taps_kernel(const float* dy, ops::ConvTransposeShape s, T* dtaps) {
  const int k = s.stride, out_w = k * s.width;
  const int64_t pixels = int64_t(s.height) * s.width, n = int64_t(s.out_channels) * k * k * pixels;
  for (int64_t e = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; e < n; e += int64_t(gridDim.x) * blockDim.x) {
    const int64_t tap = e / pixels, p = e % pixels;
    const int o = int(tap / (k * k)), pq = int(tap % (k * k)), i = int(p / s.width), j = int(p % s.width);
    dtaps[e] = from_float<T>(dy[(int64_t(o) * k * s.height + k * i + pq / k) * out_w + k * j + pq % k]);
  }
}

// y[o·inner + i] = max(y + bias[o], 0): the epilogue of the layers with BatchNorm folded in.
__global__ void bias_relu_kernel(float* y, const float* bias, int64_t outer, int channels, int64_t inner) {
  const int64_t n = outer * channels * inner;
  for (int64_t e = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; e < n; e += int64_t(gridDim.x) * blockDim.x) {
    const float v = y[e] + bias[(e / inner) % channels];
    y[e] = v > 0.f ? v : 0.f;
  }
}

// col (M, C·k·k): the patch of each occupied output cell (zero outside the image), in T as im2col's.
template <class T>
__global__ void cells_im2col_kernel(const float* x, const int64_t* cells, int64_t occupied, ops::Conv2dShape s,
                                    T* col) {
  const int k = s.kernel;
  const int64_t k_dim = int64_t(s.in_channels) * k * k, n = occupied * k_dim;
  const int64_t plane = int64_t(s.out_height()) * s.out_width();
  for (int64_t e = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; e < n; e += int64_t(gridDim.x) * blockDim.x) {
    const int64_t m = e / k_dim, tap = e % k_dim, cell = cells[m], hw = cell % plane;
    const int c = int(tap / (k * k)), ky = int(tap / k % k), kx = int(tap % k);
    const int iy = int(hw / s.out_width()) * s.stride - s.padding + ky;
    const int ix = int(hw % s.out_width()) * s.stride - s.padding + kx;
    col[e] = from_float<T>((iy >= 0 && iy < s.height && ix >= 0 && ix < s.width)
                               ? x[((cell / plane * s.in_channels + c) * s.height + iy) * int64_t(s.width) + ix]
                               : 0.f);
  }
}

// One image's columns into `col`, in the matmul precision's type (matmul_bytes() each), from the image in
// fp32 or, s.x_narrow, in that type.
void im2col(const void* image, const ops::Conv2dShape& s, void* col) {
  const int64_t n = int64_t(s.in_channels) * s.kernel * s.kernel * s.out_height() * s.out_width();
  as_matmul_type(col, [&](auto* typed) {
    using T = std::remove_pointer_t<decltype(typed)>;
    LT_LAUNCH(im2col_kernel<T>, blocks_for(n), kThreads, stream())(image, s, typed);
  });
}

// Image b of x (`elements` each) in x's storage: fp32, or narrow (the matmul precision's type).
const void* image_of(const float* x, bool narrow, int b, int64_t elements) {
  return reinterpret_cast<const char*>(x) + activation_bytes(narrow) * size_t(b * elements);
}

void cells_im2col(const float* x, const int64_t* cells, int64_t occupied, const ops::Conv2dShape& s, void* col) {
  const int64_t n = occupied * s.in_channels * s.kernel * s.kernel;
  as_matmul_type(col, [&](auto* typed) {
    using T = std::remove_pointer_t<decltype(typed)>;
    LT_LAUNCH(cells_im2col_kernel<T>, blocks_for(n), kThreads, stream())(x, cells, occupied, s, typed);
  });
}

bool is_pointwise(const ops::Conv2dShape& s) {
  return s.kernel == 1 && s.stride == 1 && s.padding == 0;
}

}  // namespace

// out[c] += Σ over (outer, inner) of data's channel c (the bias gradient).
void add_channel_sums(const float* data, int64_t outer, int channels, int64_t inner, float* out) {
  auto* sums = static_cast<double*>(scratch(kScratchOp2, sizeof(double) * (2 * size_t(channels) + 1)));  // + the count
  batchnorm_sums(data, ops::BatchNormShape{outer, channels, inner}, sums);
  LT_LAUNCH(add_first_sums_kernel, blocks_for(channels), kThreads, stream())(sums, channels, out);
}

void bias_relu(float* y, const float* bias, int64_t outer, int channels, int64_t inner) {
  const int64_t n = outer * channels * inner;
  if (n > 0) LT_LAUNCH(bias_relu_kernel, blocks_for(n), kThreads, stream())(y, bias, outer, channels, inner);
}

void add_bias(float* y, const float* bias, int64_t outer, int channels, int64_t inner) {
  const int64_t n = outer * channels * inner;
  if (n > 0) LT_LAUNCH(add_bias_kernel, blocks_for(n), kThreads, stream())(y, bias, outer, channels, inner);
}

void conv2d_forward(const float* x, const float* weight, const float* bias, float* y, const ops::Conv2dShape& s) {
#if defined(__CUDACC__) && defined(LIDARTRAIN_HAVE_CUDNN)
  if (matmul_precision() == Precision::fp32 && cudnn_conv2d_forward(x, weight, y, s)) {
    if (bias) add_bias(y, bias, s.batch, s.out_channels, int64_t(s.out_height()) * s.out_width());
    check(cudaGetLastError(), "conv2d_forward");
    return;
  }
#endif
  const int64_t pixels = int64_t(s.out_height()) * s.out_width(), k_dim = int64_t(s.in_channels) * s.kernel * s.kernel;
  const int64_t in_size = int64_t(s.in_channels) * s.height * s.width, out_size = s.out_channels * pixels;
  void* col = is_pointwise(s) ? nullptr : scratch(kScratchOp1, matmul_bytes() * size_t(k_dim * pixels));
  const void* w = to_matmul_type(weight, s.out_channels * k_dim, kScratchOp0);  // once, for every image
  for (int b = 0; b < s.batch; ++b) {
    const void* image = image_of(x, s.x_narrow, b, in_size);
    if (col) {
      im2col(image, s, col);
      gemm_matmul_ab(false, false, s.out_channels, pixels, k_dim, 1.f, w, col, 0.f, y + b * out_size);
    } else {
      gemm_narrow(false, false, s.out_channels, pixels, k_dim, 1.f, w, true, image, s.x_narrow, 0.f, y + b * out_size);
    }
  }
  if (bias) add_bias(y, bias, s.batch, s.out_channels, pixels);
  check(cudaGetLastError(), "conv2d_forward");
}

void conv2d_backward(const float* x, const float* weight, const float* dy, float* dx, float* dweight, float* dbias,
                     const ops::Conv2dShape& s) {
  const int64_t pixels = int64_t(s.out_height()) * s.out_width(), k_dim = int64_t(s.in_channels) * s.kernel * s.kernel;
  const int64_t in_size = int64_t(s.in_channels) * s.height * s.width, out_size = s.out_channels * pixels;
  if (dbias) add_channel_sums(dy, s.batch, s.out_channels, pixels, dbias);
#if defined(__CUDACC__) && defined(LIDARTRAIN_HAVE_CUDNN)
  if (matmul_precision() == Precision::fp32 && cudnn_conv2d_backward(x, weight, dy, dx, dweight, s)) {
    check(cudaGetLastError(), "conv2d_backward");
    return;
  }
#endif
  const bool pointwise = is_pointwise(s);
  // Slot 1: dcol (fp32, k_dim × pixels), then col in the matmul precision's type.
  char* cols =
      pointwise ? nullptr
                : static_cast<char*>(scratch(kScratchOp1, (sizeof(float) + matmul_bytes()) * size_t(k_dim * pixels)));
  float* dcol = reinterpret_cast<float*>(cols);
  void* col = pointwise ? nullptr : cols + sizeof(float) * size_t(k_dim * pixels);
  // In bf16/fp16 the weight is converted once and each image's dy once, for both of its GEMMs.
  const void* w = dx ? to_matmul_type(weight, s.out_channels * k_dim, kScratchOp0) : nullptr;
  for (int b = 0; b < s.batch; ++b) {
    const void* dyb = to_matmul_type(dy + b * out_size, out_size, kScratchOp2);
    const void* image = image_of(x, s.x_narrow, b, in_size);
    if (pointwise) {
      gemm_narrow(false, true, s.out_channels, k_dim, pixels, 1.f, dyb, true, image, s.x_narrow, 1.f, dweight);
    } else {
      im2col(image, s, col);
      gemm_matmul_ab(false, true, s.out_channels, k_dim, pixels, 1.f, dyb, col, 1.f, dweight);
    }
    if (!dx) continue;
    if (pointwise) {
      gemm_matmul_ab(true, false, k_dim, pixels, s.out_channels, 1.f, w, dyb, 0.f, dx + b * in_size);
    } else {
      gemm_matmul_ab(true, false, k_dim, pixels, s.out_channels, 1.f, w, dyb, 0.f, dcol);
      LT_LAUNCH(col2im_kernel, blocks_for(in_size), kThreads, stream())(dcol, s, dx + b * in_size);
    }
  }
  check(cudaGetLastError(), "conv2d_backward");
}

void conv_transpose_forward(const float* x, const float* weight, const float* bias, float* y,
                            const ops::ConvTransposeShape& s) {
  const int kk = s.stride * s.stride;
  const int64_t pixels = int64_t(s.height) * s.width, taps = int64_t(s.out_channels) * kk;
#if defined(__CUDACC__) && defined(LIDARTRAIN_HAVE_CUDNN)
  if (matmul_precision() == Precision::fp32 && cudnn_conv_transpose_forward(x, weight, y, s)) {
    if (bias) add_bias(y, bias, s.batch, s.out_channels, kk * pixels);
    check(cudaGetLastError(), "conv_transpose_forward");
    return;
  }
#endif
  auto* tap_values = static_cast<float*>(scratch(kScratchOp1, sizeof(float) * size_t(taps * pixels)));
  const void* w = to_matmul_type(weight, s.in_channels * taps, kScratchOp0);  // once, for every image
  for (int b = 0; b < s.batch; ++b) {
    gemm_narrow(true, false, taps, pixels, s.in_channels, 1.f, w, true,
                image_of(x, s.x_narrow, b, s.in_channels * pixels), s.x_narrow, 0.f, tap_values);
    LT_LAUNCH(taps_to_output_kernel, blocks_for(taps * pixels), kThreads, stream())
    (tap_values, bias, s, y + b * taps * pixels);
  }
  check(cudaGetLastError(), "conv_transpose_forward");
}

void conv_transpose_backward(const float* x, const float* weight, const float* dy, float* dx, float* dweight,
                             float* dbias, const ops::ConvTransposeShape& s) {
  const int kk = s.stride * s.stride;
  const int64_t pixels = int64_t(s.height) * s.width, taps = int64_t(s.out_channels) * kk;
  if (dbias) add_channel_sums(dy, s.batch, s.out_channels, kk * pixels, dbias);
#if defined(__CUDACC__) && defined(LIDARTRAIN_HAVE_CUDNN)
  if (matmul_precision() == Precision::fp32 && cudnn_conv_transpose_backward(x, weight, dy, dx, dweight, s)) {
    check(cudaGetLastError(), "conv_transpose_backward");
    return;
  }
#endif
  void* dtaps = scratch(kScratchOp1, matmul_bytes() * size_t(taps * pixels));
  const void* w = dx ? to_matmul_type(weight, s.in_channels * taps, kScratchOp0) : nullptr;  // once
  for (int b = 0; b < s.batch; ++b) {
    as_matmul_type(dtaps, [&](auto* typed) {
      using T = std::remove_pointer_t<decltype(typed)>;
      LT_LAUNCH(output_to_taps_kernel<T>, blocks_for(taps * pixels), kThreads, stream())
      (dy + b * taps * pixels, s, typed);
    });
    gemm_narrow(false, true, s.in_channels, taps, pixels, 1.f, image_of(x, s.x_narrow, b, s.in_channels * pixels),
                s.x_narrow, dtaps, true, 1.f, dweight);
    if (dx)
      gemm_matmul_ab(false, false, s.in_channels, pixels, taps, 1.f, w, dtaps, 0.f, dx + b * s.in_channels * pixels);
  }
  check(cudaGetLastError(), "conv_transpose_backward");
}

// ---- BatchNorm folded in (inference): the unfused op, then bias and ReLU in one pass ----

void conv2d_relu_forward(const float* x, const float* weight, const float* bias, float* y, const ops::Conv2dShape& s) {
  conv2d_forward(x, weight, nullptr, y, s);
  bias_relu(y, bias, s.batch, s.out_channels, int64_t(s.out_height()) * s.out_width());
  check(cudaGetLastError(), "conv2d_relu_forward");
}

void conv_transpose_relu_forward(const float* x, const float* weight, const float* bias, float* y,
                                 const ops::ConvTransposeShape& s) {
  conv_transpose_forward(x, weight, nullptr, y, s);
  bias_relu(y, bias, s.batch, s.out_channels, int64_t(s.stride) * s.stride * s.height * s.width);
  check(cudaGetLastError(), "conv_transpose_relu_forward");
}

void conv2d_relu_at_cells(const float* x, const float* weight, const float* bias, const ops::Conv2dShape& s,
                          const ops::CellIndexView& index, float* rows) {
  const int64_t occupied = index.occupied, k_dim = int64_t(s.in_channels) * s.kernel * s.kernel;
  if (occupied == 0) return;
  void* col = scratch(kScratchOp1, matmul_bytes() * size_t(occupied * k_dim));
  cells_im2col(x, index.cells, occupied, s, col);
  gemm_narrow(false, true, occupied, s.out_channels, k_dim, 1.f, col, true, weight, false, 0.f, rows);
  bias_relu(rows, bias, occupied, s.out_channels, 1);
  check(cudaGetLastError(), "conv2d_relu_at_cells");
}

}  // namespace lt::LT_CUDA_NS
