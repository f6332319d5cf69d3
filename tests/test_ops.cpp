// One table of ops (kernels/cpu/ops.hpp). For every op and case:
//   - its forward (T = double) equals a plain-loop reference;
//   - its backward equals central finite differences of L = Σ forward(inputs) · R for random R
//     (T = double, h = 1e-6; relative error ≤ 1e-5 with a floor of 1e-3 on the scale, far inside the
//     issue's 1e-3: the finite differences themselves carry ~1e-9 of rounding);
//   - its float instantiation (what training runs) agrees with the double one to float precision.
// The inference ops (BatchNorm folded in, no backward) sit in the same table, against their unfused
// references. Edge cases sit in the table as cases of their own: empty cells, empty frames, all points in
// one cell, points outside the grid, all labels ignored. Every case also runs on every backend against the
// CPU (DeviceOpTable), written once: k.op(…) with the Backend's signature, host arrays as ro/wr/rw
// (tests/device_staging.hpp). BackendOps holds the ops without gradients (GEMM, decode, NMS, optimizer).
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <functional>
#include <limits>
#include <numeric>
#include <tuple>
#include <utility>

#include "kernels/backend.hpp"
#include "kernels/common/gemm_layout.hpp"
#include "kernels/cpu/ops.hpp"
#include "kernels/cuda/conv_plan.hpp"
#include "kernels/cuda/device.hpp"
#include "kernels/cuda/emu/emulated.hpp"
#include "src/common/rng.hpp"
#include "src/train/optimizer.hpp"
#include "tests/device_staging.hpp"

namespace lt::ops {
namespace {

using testing::ro;
using testing::ro_if;
using testing::rw;
using testing::wr;
using testing::wr_if;

template <class T>
using Tensors = std::vector<std::vector<T>>;
// The element type of a Tensors<T>.
template <class TensorsType>
using value_of = typename std::decay_t<TensorsType>::value_type::value_type;
using Vec = std::vector<double>;

// One case of the table: an op (or a layer's sequence of them) on given inputs, written once against a
// kernel set k (the CPU reference Cpu<T>, or a backend through testing::Staged). An inference op (BatchNorm
// folded, no training) has no backward: it is checked against its unfused reference instead.
struct OpCase {
  std::string name;
  Tensors<double> inputs;  // the differentiable inputs
  std::function<Vec(const Tensors<double>&)> forward;
  std::function<std::vector<float>(const Tensors<float>&)> forward_float;
  std::function<Vec(const Tensors<double>&)> reference;                                            // plain loops
  std::function<Tensors<double>(const Tensors<double>&, const Vec&)> backward;                     // null: inference
  std::function<Tensors<float>(const Tensors<float>&, const std::vector<float>&)> backward_float;  // likewise
  // The same forward and backward on a backend (float).
  std::function<std::vector<float>(const testing::Staged&, const Tensors<float>&)> forward_on;
  std::function<Tensors<float>(const testing::Staged&, const Tensors<float>&, const std::vector<float>&)> backward_on;
  double float_tolerance = 1e-4;  // the float forward against the double one, relative to 1 + |value|
};

void PrintTo(const OpCase& c, std::ostream* os) {
  *os << c.name;
}

// The CPU reference as a kernel set: k.op(…) with the Backend's signature (tests/device_staging.hpp) calls
// ops::op<T>(…) on the arrays' own pointers, as testing::Staged runs a backend's op on copies.
template <class T>
struct Cpu {
#define LT_CPU_OP(op)                       \
  template <class... Args>                  \
  void op(const Args&... args) const {      \
    ops::op<T>(testing::host_arg(args)...); \
  }
  LT_CPU_OP(linear_forward)
  LT_CPU_OP(linear_backward)
  LT_CPU_OP(linear_relu_forward)
  LT_CPU_OP(conv2d_relu_at_cells)
  LT_CPU_OP(batchnorm_sums)
  LT_CPU_OP(batchnorm_apply)
  LT_CPU_OP(batchnorm_backward_sums)
  LT_CPU_OP(batchnorm_backward_apply)
  LT_CPU_OP(batchnorm_relu_apply)
  LT_CPU_OP(batchnorm_relu_backward_sums)
  LT_CPU_OP(batchnorm_relu_backward_apply)
  LT_CPU_OP(relu_forward)
  LT_CPU_OP(relu_backward)
  LT_CPU_OP(concat_channels)
  LT_CPU_OP(split_channels)
  LT_CPU_OP(voxelize_max_forward)
  LT_CPU_OP(voxelize_max_backward)
  LT_CPU_OP(scatter_mean_forward)
  LT_CPU_OP(scatter_mean_backward)
  LT_CPU_OP(devoxelize_forward)
  LT_CPU_OP(devoxelize_backward)
  LT_CPU_OP(devoxelize_head_forward)
  LT_CPU_OP(linear_relu_voxelize_max_forward)
  LT_CPU_OP(gather_positions_forward)
  LT_CPU_OP(gather_positions_backward)
#undef LT_CPU_OP
  // The CPU's convolutions take their im2col workspace; a backend keeps its own.
#define LT_CPU_CONV_OP(op)                             \
  template <class... Args>                             \
  void op(const Args&... args) const {                 \
    std::vector<T> workspace;                          \
    ops::op<T>(testing::host_arg(args)..., workspace); \
  }
  LT_CPU_CONV_OP(conv2d_forward)
  LT_CPU_CONV_OP(conv2d_backward)
  LT_CPU_CONV_OP(conv_transpose_forward)
  LT_CPU_CONV_OP(conv_transpose_backward)
  LT_CPU_CONV_OP(conv2d_relu_forward)
  LT_CPU_CONV_OP(conv_transpose_relu_forward)
#undef LT_CPU_CONV_OP
  // The CPU's losses return the value; a backend writes it to its last argument (one double).
#define LT_CPU_LOSS_OP(op)                                                                       \
  template <class... Args>                                                                       \
  void op(const Args&... args) const {                                                           \
    store_loss([](const auto&... in) { return ops::op<T>(testing::host_arg(in)...); }, args...); \
  }
  LT_CPU_LOSS_OP(cross_entropy)
  LT_CPU_LOSS_OP(focal_loss)
  LT_CPU_LOSS_OP(l1_loss)
#undef LT_CPU_LOSS_OP

 private:
  // *last = op(every argument but the last).
  template <class Op, class... Args>
  static void store_loss(Op op, const Args&... args) {
    const auto all = std::forward_as_tuple(args...);
    constexpr size_t last = sizeof...(Args) - 1;
    [&]<size_t... I>(std::index_sequence<I...>) {
      *std::get<last>(all).data = op(std::get<I>(all)...);
    }
    (std::make_index_sequence<last>());
  }
};

// A case whose forward(k, inputs) is written against a kernel set k: the CPU reference in double and
// float, and every backend through testing::Staged.
template <class Forward>
OpCase make_forward_case(std::string name, Tensors<double> inputs, Forward forward,
                         std::function<Vec(const Tensors<double>&)> reference) {
  OpCase c;
  c.name = std::move(name);
  c.inputs = std::move(inputs);
  c.reference = std::move(reference);
  c.forward = [forward](const Tensors<double>& in) { return forward(Cpu<double>{}, in); };
  c.forward_float = [forward](const Tensors<float>& in) { return forward(Cpu<float>{}, in); };
  c.forward_on = [forward](const testing::Staged& k, const Tensors<float>& in) { return forward(k, in); };
  return c;
}

// A training op's case: its backward(k, inputs, dout) too, checked against finite differences.
template <class Forward, class Backward>
OpCase make_device_case(std::string name, Tensors<double> inputs, Forward forward, Backward backward,
                        std::function<Vec(const Tensors<double>&)> reference) {
  OpCase c = make_forward_case(std::move(name), std::move(inputs), forward, std::move(reference));
  c.backward = [backward](const Tensors<double>& in, const Vec& d) { return backward(Cpu<double>{}, in, d); };
  c.backward_float = [backward](const Tensors<float>& in, const std::vector<float>& d) {
    return backward(Cpu<float>{}, in, d);
  };
  c.backward_on = [backward](const testing::Staged& k, const Tensors<float>& in, const std::vector<float>& d) {
    return backward(k, in, d);
  };
  return c;
}

// An inference op's case: forward only, against its unfused reference (to 1e-9 in double, 1e-5 in float).
template <class Forward>
OpCase make_inference_case(std::string name, Tensors<double> inputs, Forward forward,
                           std::function<Vec(const Tensors<double>&)> reference) {
  OpCase c = make_forward_case(std::move(name), std::move(inputs), forward, std::move(reference));
  c.float_tolerance = 1e-5;
  return c;
}

Vec random_vector(size_t n, uint64_t seed, double lo = -1, double hi = 1) {
  Rng rng(stream_key(seed, n, 77));
  Vec v(n);
  for (double& x : v) x = rng.uniform(lo, hi);
  return v;
}

template <class T>
std::vector<T> zeros_like(const std::vector<T>& v) {
  return std::vector<T>(v.size(), T(0));
}

// ---- cases ---------------------------------------------------------------------------------

OpCase linear_case(int64_t rows, int in, int out) {
  auto forward = [=](const auto& k, const auto& x) {
    using T = typename std::decay_t<decltype(x[0])>::value_type;
    std::vector<T> y(size_t(rows * out));
    k.linear_forward(ro(x[0]), ro(x[1]), ro(x[2]), wr(y), rows, in, out);
    return y;
  };
  auto backward = [=](const auto& k, const auto& x, const auto& dy) {
    using T = typename std::decay_t<decltype(dy)>::value_type;
    Tensors<T> d = {zeros_like(x[0]), zeros_like(x[1]), zeros_like(x[2])};
    k.linear_backward(ro(x[0]), ro(x[1]), ro(dy), wr(d[0]), rw(d[1]), rw(d[2]), rows, in, out);
    return d;
  };
  auto reference = [=](const Tensors<double>& x) {
    Vec y(size_t(rows * out));
    for (int64_t r = 0; r < rows; ++r)
      for (int o = 0; o < out; ++o) {
        double s = x[2][o];
        for (int i = 0; i < in; ++i) s += x[0][r * in + i] * x[1][o * in + i];
        y[r * out + o] = s;
      }
    return y;
  };
  return make_device_case("linear " + std::to_string(rows) + "x" + std::to_string(in) + "->" + std::to_string(out),
                          {random_vector(rows * in, 1), random_vector(size_t(out * in), 2), random_vector(out, 3)},
                          forward, backward, reference);
}

OpCase conv_case(Conv2dShape s) {
  const size_t x_size = size_t(s.batch) * s.in_channels * s.height * s.width;
  const size_t w_size = size_t(s.out_channels) * s.in_channels * s.kernel * s.kernel;
  const size_t y_size = size_t(s.batch) * s.out_channels * s.out_height() * s.out_width();
  auto forward = [=](const auto& k, const auto& x) {
    using T = typename std::decay_t<decltype(x[0])>::value_type;
    std::vector<T> y(y_size);
    k.conv2d_forward(ro(x[0]), ro(x[1]), ro(x[2]), wr(y), s);
    return y;
  };
  auto backward = [=](const auto& k, const auto& x, const auto& dy) {
    using T = typename std::decay_t<decltype(dy)>::value_type;
    Tensors<T> d = {zeros_like(x[0]), zeros_like(x[1]), zeros_like(x[2])};
    k.conv2d_backward(ro(x[0]), ro(x[1]), ro(dy), wr(d[0]), rw(d[1]), rw(d[2]), s);
    return d;
  };
  auto reference = [=](const Tensors<double>& x) {
    Vec y(y_size);
    const int ho = s.out_height(), wo = s.out_width(), taps = s.kernel;
    for (int b = 0; b < s.batch; ++b)
      for (int o = 0; o < s.out_channels; ++o)
        for (int oy = 0; oy < ho; ++oy)
          for (int ox = 0; ox < wo; ++ox) {
            double sum = x[2][o];
            for (int c = 0; c < s.in_channels; ++c)
              for (int ky = 0; ky < taps; ++ky)
                for (int kx = 0; kx < taps; ++kx) {
                  const int iy = oy * s.stride - s.padding + ky, ix = ox * s.stride - s.padding + kx;
                  if (iy < 0 || iy >= s.height || ix < 0 || ix >= s.width) continue;
                  sum += x[0][((size_t(b) * s.in_channels + c) * s.height + iy) * s.width + ix] *
                         x[1][((size_t(o) * s.in_channels + c) * taps + ky) * taps + kx];
                }
            y[((size_t(b) * s.out_channels + o) * ho + oy) * wo + ox] = sum;
          }
    return y;
  };
  return make_device_case("conv2d k" + std::to_string(s.kernel) + " s" + std::to_string(s.stride) + " p" +
                              std::to_string(s.padding) + (conv2d_uses_winograd(s) ? " Winograd" : ""),
                          {random_vector(x_size, 4), random_vector(w_size, 5), random_vector(s.out_channels, 6)},
                          forward, backward, reference);
}

OpCase conv_transpose_case(ConvTransposeShape s) {
  const int kernel = s.stride;
  const size_t x_size = size_t(s.batch) * s.in_channels * s.height * s.width;
  const size_t w_size = size_t(s.in_channels) * s.out_channels * kernel * kernel;
  const size_t y_size = size_t(s.batch) * s.out_channels * kernel * kernel * s.height * s.width;
  auto forward = [=](const auto& k, const auto& x) {
    using T = typename std::decay_t<decltype(x[0])>::value_type;
    std::vector<T> y(y_size);
    k.conv_transpose_forward(ro(x[0]), ro(x[1]), ro(x[2]), wr(y), s);
    return y;
  };
  auto backward = [=](const auto& k, const auto& x, const auto& dy) {
    using T = typename std::decay_t<decltype(dy)>::value_type;
    Tensors<T> d = {zeros_like(x[0]), zeros_like(x[1]), zeros_like(x[2])};
    k.conv_transpose_backward(ro(x[0]), ro(x[1]), ro(dy), wr(d[0]), rw(d[1]), rw(d[2]), s);
    return d;
  };
  auto reference = [=](const Tensors<double>& x) {
    // PyTorch's definition: every input pixel scatters weight[c, o, :, :] into the k×k block it owns.
    Vec y(y_size, 0.0);
    const int H = kernel * s.height, W = kernel * s.width;
    for (int b = 0; b < s.batch; ++b)
      for (int o = 0; o < s.out_channels; ++o)
        for (int oy = 0; oy < H; ++oy)
          for (int ox = 0; ox < W; ++ox) {
            double sum = x[2][o];
            for (int c = 0; c < s.in_channels; ++c)
              sum += x[0][((size_t(b) * s.in_channels + c) * s.height + oy / kernel) * s.width + ox / kernel] *
                     x[1][((size_t(c) * s.out_channels + o) * kernel + oy % kernel) * kernel + ox % kernel];
            y[((size_t(b) * s.out_channels + o) * H + oy) * W + ox] = sum;
          }
    return y;
  };
  return make_device_case("conv_transpose k" + std::to_string(kernel),
                          {random_vector(x_size, 7), random_vector(w_size, 8), random_vector(s.out_channels, 9)},
                          forward, backward, reference);
}

// Training-mode batch norm as a layer does it: sums, mean/invstd, apply; backward: sums, apply.
// with_relu: BN with its ReLU fused in (batchnorm_relu_*), the reference BN's then max(·, 0).
OpCase batchnorm_case(BatchNormShape s, const std::string& what, bool with_relu = false) {
  const size_t n = size_t(s.outer * s.channels * s.inner);
  constexpr double kEps = 1e-5;
  auto statistics = [=](const auto& k, const auto& x) {
    using T = typename std::decay_t<decltype(x)>::value_type;
    std::vector<double> sums(2 * s.channels + 1);
    k.batchnorm_sums(ro(x), s, wr(sums));
    EXPECT_EQ(sums[size_t(2 * s.channels)], double(s.count()));
    std::vector<T> mean(s.channels), invstd(s.channels);
    for (int c = 0; c < s.channels; ++c) {
      const double m = sums[c] / double(s.count()), var = sums[s.channels + c] / double(s.count()) - m * m;
      mean[c] = T(m);
      invstd[c] = T(1.0 / std::sqrt(var + kEps));
    }
    return std::make_pair(mean, invstd);
  };
  auto forward = [=](const auto& k, const auto& x) {
    using T = typename std::decay_t<decltype(x[0])>::value_type;
    const auto [mean, invstd] = statistics(k, x[0]);
    std::vector<T> y(n);
    if (with_relu)
      k.batchnorm_relu_apply(ro(x[0]), ro(mean), ro(invstd), ro(x[1]), ro(x[2]), wr(y), s);
    else
      k.batchnorm_apply(ro(x[0]), ro(mean), ro(invstd), ro(x[1]), ro(x[2]), wr(y), s);
    return y;
  };
  auto backward = [=](const auto& k, const auto& x, const auto& dy) {
    using T = typename std::decay_t<decltype(dy)>::value_type;
    const auto [mean, invstd] = statistics(k, x[0]);
    // The count where the forward's sums leave it (backward sums keep it: rw).
    std::vector<double> sums(2 * s.channels + 1);
    sums.back() = double(s.count());
    Tensors<T> d = {zeros_like(x[0]), zeros_like(x[1]), zeros_like(x[2])};
    if (with_relu) {
      k.batchnorm_relu_backward_sums(ro(x[0]), ro(dy), ro(mean), ro(invstd), ro(x[1]), ro(x[2]), s, rw(sums));
      k.batchnorm_relu_backward_apply(ro(x[0]), ro(dy), ro(mean), ro(invstd), ro(x[1]), ro(x[2]), ro(sums), wr(d[0]),
                                      rw(d[1]), rw(d[2]), s);
    } else {
      k.batchnorm_backward_sums(ro(x[0]), ro(dy), ro(mean), ro(invstd), s, rw(sums));
      k.batchnorm_backward_apply(ro(x[0]), ro(dy), ro(mean), ro(invstd), ro(x[1]), ro(sums), wr(d[0]), rw(d[1]),
                                 rw(d[2]), s);
    }
    EXPECT_EQ(sums.back(), double(s.count()));
    return d;
  };
  auto reference = [=](const Tensors<double>& x) {
    Vec y(n);
    for (int c = 0; c < s.channels; ++c) {
      double mean = 0, var = 0;
      for (int64_t o = 0; o < s.outer; ++o)
        for (int64_t i = 0; i < s.inner; ++i) mean += x[0][(o * s.channels + c) * s.inner + i];
      mean /= double(s.count());
      for (int64_t o = 0; o < s.outer; ++o)
        for (int64_t i = 0; i < s.inner; ++i) var += std::pow(x[0][(o * s.channels + c) * s.inner + i] - mean, 2);
      var /= double(s.count());
      for (int64_t o = 0; o < s.outer; ++o)
        for (int64_t i = 0; i < s.inner; ++i) {
          const size_t k = (o * s.channels + c) * s.inner + i;
          y[k] = x[1][c] * (x[0][k] - mean) / std::sqrt(var + kEps) + x[2][c];
          if (with_relu) y[k] = std::max(y[k], 0.0);
        }
    }
    return y;
  };
  return make_device_case(
      (with_relu ? "batchnorm+relu " : "batchnorm ") + what,
      {random_vector(n, 10, -2, 3), random_vector(s.channels, 11, 0.5, 1.5), random_vector(s.channels, 12)}, forward,
      backward, reference);
}

OpCase relu_case() {
  // Values kept away from 0, where ReLU has no derivative.
  Vec x = random_vector(40, 13);
  for (double& v : x) v += v > 0 ? 0.05 : -0.05;
  auto forward = [](const auto& k, const auto& in) {
    auto y = in[0];
    k.relu_forward(ro(in[0]), wr(y), int64_t(y.size()));
    return y;
  };
  auto backward = [](const auto& k, const auto& in, const auto& dy) {
    auto y = in[0];
    k.relu_forward(ro(in[0]), wr(y), int64_t(y.size()));
    auto d = Tensors<typename std::decay_t<decltype(dy)>::value_type>{zeros_like(in[0])};
    k.relu_backward(ro(y), ro(dy), wr(d[0]), int64_t(y.size()));
    return d;
  };
  auto reference = [](const Tensors<double>& in) {
    Vec y = in[0];
    for (double& v : y) v = std::max(v, 0.0);
    return y;
  };
  return make_device_case("relu", {x}, forward, backward, reference);
}

OpCase concat_case() {
  const int ca = 2, cb = 3, outer = 2, inner = 4;
  auto forward = [=](const auto& k, const auto& in) {
    std::vector<typename std::decay_t<decltype(in[0])>::value_type> out(size_t(outer * (ca + cb) * inner));
    k.concat_channels(ro(in[0]), ca, ro(in[1]), cb, outer, inner, wr(out));
    return out;
  };
  auto backward = [=](const auto& k, const auto& in, const auto& dout) {
    auto d = Tensors<typename std::decay_t<decltype(dout)>::value_type>{zeros_like(in[0]), zeros_like(in[1])};
    k.split_channels(ro(dout), ca, cb, outer, inner, wr(d[0]), wr(d[1]));
    return d;
  };
  auto reference = [=](const Tensors<double>& in) {
    Vec out;
    for (int o = 0; o < outer; ++o) {
      out.insert(out.end(), in[0].begin() + o * ca * inner, in[0].begin() + (o + 1) * ca * inner);
      out.insert(out.end(), in[1].begin() + o * cb * inner, in[1].begin() + (o + 1) * cb * inner);
    }
    return out;
  };
  return make_device_case("concat", {random_vector(outer * ca * inner, 14), random_vector(outer * cb * inner, 15)},
                          forward, backward, reference);
}

// Grid of 2 maps of 2x3 cells; `point_cell` says where each point falls (-1: outside the grid).
constexpr int kMaps = 2, kCellsPerMap = 6;

OpCase voxelize_case(const std::string& what, std::vector<int64_t> point_cell, int channels) {
  const auto index = std::make_shared<CellIndex>(build_cell_index(point_cell, kMaps * kCellsPerMap));
  const int64_t n = int64_t(point_cell.size());
  const size_t grid_size = size_t(kMaps) * channels * kCellsPerMap;
  auto forward = [=](const auto& k, const auto& in) {
    std::vector<typename std::decay_t<decltype(in[0])>::value_type> grid(grid_size);
    std::vector<int64_t> argmax(size_t(index->occupied() * channels));
    k.voxelize_max_forward(ro(in[0]), *index, channels, kCellsPerMap, wr(grid), wr(argmax));
    return grid;
  };
  auto backward = [=](const auto& k, const auto& in, const auto& dgrid) {
    using T = typename std::decay_t<decltype(dgrid)>::value_type;
    std::vector<T> grid(grid_size);
    std::vector<int64_t> argmax(size_t(index->occupied() * channels));
    k.voxelize_max_forward(ro(in[0]), *index, channels, kCellsPerMap, wr(grid), wr(argmax));
    Tensors<T> d = {zeros_like(in[0])};
    k.voxelize_max_backward(ro(dgrid), *index, ro(argmax), channels, kCellsPerMap, rw(d[0]));
    return d;
  };
  auto reference = [=](const Tensors<double>& in) {
    Vec grid(grid_size, 0.0);
    std::vector<bool> seen(grid_size, false);
    for (int64_t p = 0; p < n; ++p) {
      const int64_t cell = point_cell[p];
      if (cell < 0) continue;
      for (int c = 0; c < channels; ++c) {
        const size_t k = size_t((cell / kCellsPerMap * channels + c) * kCellsPerMap + cell % kCellsPerMap);
        const double v = in[0][p * channels + c];
        if (!seen[k] || v > grid[k]) grid[k] = v;
        seen[k] = true;
      }
    }
    return grid;
  };
  return make_device_case("voxelize_max " + what, {random_vector(size_t(n * channels), 16)}, forward, backward,
                          reference);
}

OpCase scatter_mean_case(const std::string& what, std::vector<int64_t> point_cell, int channels) {
  const auto index = std::make_shared<CellIndex>(build_cell_index(point_cell, kMaps * kCellsPerMap));
  const int64_t n = int64_t(point_cell.size());
  auto forward = [=](const auto& k, const auto& in) {
    std::vector<typename std::decay_t<decltype(in[0])>::value_type> mean(size_t(index->occupied() * channels));
    k.scatter_mean_forward(ro(in[0]), *index, channels, wr(mean));
    return mean;
  };
  auto backward = [=](const auto& k, const auto& in, const auto& dmean) {
    auto d = Tensors<typename std::decay_t<decltype(dmean)>::value_type>{zeros_like(in[0])};
    k.scatter_mean_backward(ro(dmean), *index, channels, rw(d[0]));
    return d;
  };
  auto reference = [=](const Tensors<double>& in) {
    Vec mean;
    for (int64_t cell = 0; cell < kMaps * kCellsPerMap; ++cell) {
      Vec sum(channels, 0.0);
      int count = 0;
      for (int64_t p = 0; p < n; ++p)
        if (point_cell[p] == cell) {
          ++count;
          for (int c = 0; c < channels; ++c) sum[c] += in[0][p * channels + c];
        }
      if (count > 0)
        for (int c = 0; c < channels; ++c) mean.push_back(sum[c] / count);
    }
    return mean;
  };
  return make_device_case("scatter_mean " + what, {random_vector(size_t(n * channels), 17)}, forward, backward,
                          reference);
}

OpCase devoxelize_case(const std::string& what, std::vector<int64_t> point_cell, int channels) {
  const auto index = std::make_shared<CellIndex>(build_cell_index(point_cell, kMaps * kCellsPerMap));
  const int64_t n = int64_t(point_cell.size());
  const size_t grid_size = size_t(kMaps) * channels * kCellsPerMap;
  auto forward = [=](const auto& k, const auto& in) {
    std::vector<typename std::decay_t<decltype(in[0])>::value_type> features(size_t(n * channels));
    k.devoxelize_forward(ro(in[0]), *index, channels, kCellsPerMap, wr(features));
    return features;
  };
  auto backward = [=](const auto& k, const auto& in, const auto& dfeatures) {
    auto d = Tensors<typename std::decay_t<decltype(dfeatures)>::value_type>{zeros_like(in[0])};
    k.devoxelize_backward(ro(dfeatures), *index, channels, kCellsPerMap, rw(d[0]));
    return d;
  };
  auto reference = [=](const Tensors<double>& in) {
    Vec features(size_t(n * channels), 0.0);
    for (int64_t p = 0; p < n; ++p)
      for (int c = 0; c < channels && point_cell[p] >= 0; ++c)
        features[p * channels + c] =
            in[0][(point_cell[p] / kCellsPerMap * channels + c) * kCellsPerMap + point_cell[p] % kCellsPerMap];
    return features;
  };
  return make_device_case("devoxelize " + what, {random_vector(grid_size, 18)}, forward, backward, reference);
}

OpCase cross_entropy_case(const std::string& what, std::vector<uint8_t> labels, bool weighted) {
  const int classes = 5;
  const int64_t rows = int64_t(labels.size());
  const Vec weights = {0.0, 1.0, 2.5, 0.5, 1.5};
  auto forward = [=](const auto& k, const auto& in) {
    using T = typename std::decay_t<decltype(in[0])>::value_type;
    const std::vector<T> w(weights.begin(), weights.end());
    std::vector<double> loss(1);
    k.cross_entropy(ro(in[0]), ro(labels), rows, classes, ro_if(weighted, w), 0, nullptr, wr(loss));
    return std::vector<T>{T(loss[0])};
  };
  auto backward = [=](const auto& k, const auto& in, const auto& dloss) {
    using T = typename std::decay_t<decltype(dloss)>::value_type;
    const std::vector<T> w(weights.begin(), weights.end());
    Tensors<T> d = {zeros_like(in[0])};
    std::vector<double> loss(1);
    k.cross_entropy(ro(in[0]), ro(labels), rows, classes, ro_if(weighted, w), 0, wr(d[0]), wr(loss));
    for (T& v : d[0]) v *= dloss[0];
    return d;
  };
  auto reference = [=](const Tensors<double>& in) {
    double loss = 0, total = 0;
    for (int64_t r = 0; r < rows; ++r) {
      if (labels[r] == 0) continue;
      double sum = 0;
      for (int k = 0; k < classes; ++k) sum += std::exp(in[0][r * classes + k]);
      const double w = weighted ? weights[labels[r]] : 1.0;
      loss += -w * std::log(std::exp(in[0][r * classes + labels[r]]) / sum);
      total += w;
    }
    return Vec{total > 0 ? loss / total : 0.0};
  };
  return make_device_case("cross_entropy " + what, {random_vector(size_t(rows * classes), 19, -3, 3)}, forward,
                          backward, reference);
}

// Heatmap logits against targets: object centres (1), Gaussian shoulders, background (0), and two
// logits whose sigmoid the clamp holds (no gradient through it).
OpCase focal_loss_case() {
  const Vec targets = {1, 0, 0.5, 0, 0.9, 1, 0, 0.2, 0, 0.01, 1, 0};
  Vec logits = random_vector(targets.size(), 20, -3, 3);
  logits[3] = 12;    // p > 1 − 1e-4: clamped
  logits[10] = -12;  // p < 1e-4 at a centre: clamped
  const int64_t n = int64_t(targets.size());
  auto forward = [=](const auto& k, const auto& in) {
    using T = typename std::decay_t<decltype(in[0])>::value_type;
    const std::vector<T> g(targets.begin(), targets.end());
    std::vector<double> loss(1);
    k.focal_loss(ro(in[0]), ro(g), n, nullptr, wr(loss));
    return std::vector<T>{T(loss[0])};
  };
  auto backward = [=](const auto& k, const auto& in, const auto& dloss) {
    using T = typename std::decay_t<decltype(dloss)>::value_type;
    const std::vector<T> g(targets.begin(), targets.end());
    Tensors<T> d = {zeros_like(in[0])};
    std::vector<double> loss(1);
    k.focal_loss(ro(in[0]), ro(g), n, wr(d[0]), wr(loss));
    for (T& v : d[0]) v *= dloss[0];
    return d;
  };
  auto reference = [=](const Tensors<double>& in) {
    double loss = 0;
    for (int64_t i = 0; i < n; ++i) {
      const double p = std::clamp(1 / (1 + std::exp(-in[0][i])), 1e-4, 1 - 1e-4), g = targets[i];
      loss += g == 1 ? -std::log(p) * std::pow(1 - p, 2) : -std::log(1 - p) * std::pow(p, 2) * std::pow(1 - g, 4);
    }
    return Vec{loss};
  };
  return make_device_case("focal_loss", {logits}, forward, backward, reference);
}

// Regression outputs gathered at object centres, a position repeated (two objects in one cell).
OpCase gather_positions_case() {
  const int channels = 3;
  const int64_t plane = 6, batch = 2;
  const std::vector<int64_t> positions = {0, 7, 7, 11, 3};
  const int64_t count = int64_t(positions.size());
  auto forward = [=](const auto& k, const auto& in) {
    using T = typename std::decay_t<decltype(in[0])>::value_type;
    std::vector<T> rows(size_t(count * channels));
    k.gather_positions_forward(ro(in[0]), ro(positions), count, channels, plane, wr(rows));
    return rows;
  };
  auto backward = [=](const auto& k, const auto& in, const auto& drows) {
    using T = typename std::decay_t<decltype(drows)>::value_type;
    Tensors<T> d = {zeros_like(in[0])};
    k.gather_positions_backward(ro(drows), ro(positions), count, channels, plane, rw(d[0]));
    return d;
  };
  auto reference = [=](const Tensors<double>& in) {
    Vec rows;
    for (int64_t position : positions)
      for (int c = 0; c < channels; ++c)
        rows.push_back(in[0][size_t((position / plane * channels + c) * plane + position % plane)]);
    return rows;
  };
  return make_device_case("gather_positions", {random_vector(size_t(batch * channels * plane), 21)}, forward, backward,
                          reference);
}

OpCase l1_loss_case() {
  const int64_t rows = 4;
  const int channels = 3;
  const Vec target = random_vector(size_t(rows * channels), 22);
  auto forward = [=](const auto& k, const auto& in) {
    using T = typename std::decay_t<decltype(in[0])>::value_type;
    const std::vector<T> t(target.begin(), target.end());
    std::vector<double> loss(1);
    k.l1_loss(ro(in[0]), ro(t), rows, channels, nullptr, wr(loss));
    return std::vector<T>{T(loss[0])};
  };
  auto backward = [=](const auto& k, const auto& in, const auto& dloss) {
    using T = typename std::decay_t<decltype(dloss)>::value_type;
    const std::vector<T> t(target.begin(), target.end());
    Tensors<T> d = {zeros_like(in[0])};
    std::vector<double> loss(1);
    k.l1_loss(ro(in[0]), ro(t), rows, channels, wr(d[0]), wr(loss));
    for (T& v : d[0]) v *= dloss[0];
    return d;
  };
  auto reference = [=](const Tensors<double>& in) {
    double loss = 0;
    for (size_t i = 0; i < target.size(); ++i) loss += std::abs(in[0][i] - target[i]);
    return Vec{loss};
  };
  return make_device_case("l1_loss", {random_vector(size_t(rows * channels), 23)}, forward, backward, reference);
}

std::vector<OpCase> op_table() {
  // Points in cells: several per cell, an empty cell (3), points outside the grid, both maps used.
  const std::vector<int64_t> scattered = {0, 0, 1, 4, 4, 4, -1, 7, 11, 11, 6, -1, 2};
  const std::vector<int64_t> one_cell(9, 5);
  const std::vector<int64_t> empty_frame = {};
  return {
      linear_case(7, 4, 3),
      // The register-tiled float kernel at each vector count it dispatches to (outputs padded to 4, 8 or
      // 16 lanes by the machine's width), rows that leave a partial tile, and past its limits (Eigen).
      linear_case(37, 40, 20),
      linear_case(23, 9, 47),
      linear_case(13, 33, 64),
      linear_case(5, 130, 12),
      linear_case(6, 7, 70),
      linear_case(0, 4, 3),  // an empty frame
      conv_case({2, 3, 4, 5, 6, 3, 1, 1}),
      conv_case({2, 3, 4, 7, 6, 3, 2, 1}),
      conv_case({2, 3, 4, 4, 5, 1, 1, 0}),
      conv_case({1, 3, 2, 5, 4, 1, 2, 0}),
      // Winograd F(2×2, 3×3): odd and even sizes (partial tiles at the right and bottom edges).
      conv_case({1, 8, 9, 5, 7, 3, 1, 1}),
      conv_case({2, 9, 8, 6, 4, 3, 1, 1}),
      conv_transpose_case({2, 3, 5, 3, 4, 2}),
      conv_transpose_case({2, 3, 4, 3, 2, 1}),
      conv_transpose_case({1, 2, 3, 2, 3, 4}),
      batchnorm_case({9, 3, 1}, "over points (N, C)"),
      batchnorm_case({2, 3, 20}, "over maps (B, C, H·W)"),
      batchnorm_case({9, 3, 1}, "over points (N, C)", true),
      batchnorm_case({2, 3, 20}, "over maps (B, C, H·W)", true),
      relu_case(),
      concat_case(),
      voxelize_case("scattered, with empty cells", scattered, 3),
      voxelize_case("all points in one cell", one_cell, 4),
      voxelize_case("empty frame", empty_frame, 3),
      scatter_mean_case("scattered", scattered, 2),
      scatter_mean_case("all points in one cell", one_cell, 3),
      devoxelize_case("scattered, points outside the grid", scattered, 3),
      devoxelize_case("all points in one cell", one_cell, 2),
      cross_entropy_case("with ignored points", {1, 0, 2, 3, 4, 0, 2, 1}, false),
      cross_entropy_case("class weights", {1, 0, 2, 3, 4, 0, 2, 1}, true),
      cross_entropy_case("all points ignored", {0, 0, 0}, false),
      focal_loss_case(),
      gather_positions_case(),
      l1_loss_case(),
  };
}

class OpTable : public ::testing::TestWithParam<OpCase> {};

TEST_P(OpTable, ForwardMatchesReference) {
  const OpCase& c = GetParam();
  const Vec got = c.forward(c.inputs), want = c.reference(c.inputs);
  ASSERT_EQ(got.size(), want.size());
  for (size_t i = 0; i < got.size(); ++i) EXPECT_NEAR(got[i], want[i], 1e-9 * (1 + std::abs(want[i]))) << i;
}

TEST_P(OpTable, BackwardMatchesFiniteDifferences) {
  const OpCase& c = GetParam();
  if (!c.backward) GTEST_SKIP() << "an inference op: no backward";
  const Vec out = c.forward(c.inputs);
  const Vec r = random_vector(out.size(), 99);
  const Tensors<double> analytic = c.backward(c.inputs, r);
  ASSERT_EQ(analytic.size(), c.inputs.size());
  const auto objective = [&](const Tensors<double>& in) {
    const Vec y = c.forward(in);
    return std::inner_product(y.begin(), y.end(), r.begin(), 0.0);
  };
  constexpr double h = 1e-6;
  for (size_t t = 0; t < c.inputs.size(); ++t) {
    ASSERT_EQ(analytic[t].size(), c.inputs[t].size());
    for (size_t i = 0; i < c.inputs[t].size(); ++i) {
      Tensors<double> plus = c.inputs, minus = c.inputs;
      plus[t][i] += h;
      minus[t][i] -= h;
      const double numeric = (objective(plus) - objective(minus)) / (2 * h);
      const double scale = std::max({std::abs(numeric), std::abs(analytic[t][i]), 1e-3});
      EXPECT_LE(std::abs(numeric - analytic[t][i]) / scale, 1e-5)
          << "input " << t << " element " << i << ": analytic " << analytic[t][i] << ", numeric " << numeric;
    }
  }
}

TEST_P(OpTable, FloatAgreesWithDouble) {
  const OpCase& c = GetParam();
  Tensors<float> inputs;
  for (const Vec& v : c.inputs) inputs.emplace_back(v.begin(), v.end());
  const Vec want = c.forward(c.inputs);
  const std::vector<float> got = c.forward_float(inputs);
  ASSERT_EQ(got.size(), want.size());
  for (size_t i = 0; i < got.size(); ++i) EXPECT_NEAR(got[i], want[i], c.float_tolerance * (1 + std::abs(want[i])));
  if (!c.backward) return;
  const Vec r = random_vector(want.size(), 98);
  const Tensors<double> grad = c.backward(c.inputs, r);
  const Tensors<float> grad_float = c.backward_float(inputs, std::vector<float>(r.begin(), r.end()));
  for (size_t t = 0; t < grad.size(); ++t)
    for (size_t i = 0; i < grad[t].size(); ++i)
      EXPECT_NEAR(grad_float[t][i], grad[t][i], 1e-3 * (1 + std::abs(grad[t][i])));
}

// A gtest name for the case of parameter `index` named `label` ("3_conv2d_k3_s1_p1_emulated").
std::string gtest_name(size_t index, const std::string& label) {
  std::string name = std::to_string(index) + "_" + label;
  for (char& ch : name)
    if (!std::isalnum(static_cast<unsigned char>(ch))) ch = '_';
  return name;
}

std::string case_name(const ::testing::TestParamInfo<OpCase>& info) {
  return gtest_name(info.index, info.param.name);
}

// ---- the inference ops with BatchNorm folded in ------------------------------------------------------
// They do not train: each is checked against its unfused plain-loop reference (double, to 1e-9), in float
// against double (1e-5), and on every backend against the CPU.

Vec relu_of(Vec v) {
  for (double& x : v) x = std::max(x, 0.0);
  return v;
}

OpCase linear_relu_case(int64_t rows, int in, int out) {
  const OpCase linear = linear_case(rows, in, out);
  auto forward = [=](const auto& k, const auto& x) {
    std::vector<value_of<decltype(x)>> y(size_t(rows * out));
    k.linear_relu_forward(ro(x[0]), ro(x[1]), ro(x[2]), wr(y), rows, in, out);
    return y;
  };
  const auto reference = linear.reference;
  return make_inference_case(
      "linear+bias+relu " + std::to_string(rows) + "x" + std::to_string(in) + "->" + std::to_string(out), linear.inputs,
      forward, [reference](const Tensors<double>& x) { return relu_of(reference(x)); });
}

OpCase conv_relu_case(Conv2dShape s) {
  const OpCase conv = conv_case(s);
  const size_t y_size = size_t(s.batch) * s.out_channels * s.out_height() * s.out_width();
  auto forward = [=](const auto& k, const auto& x) {
    std::vector<value_of<decltype(x)>> y(y_size);
    k.conv2d_relu_forward(ro(x[0]), ro(x[1]), ro(x[2]), wr(y), s);
    return y;
  };
  const auto reference = conv.reference;
  return make_inference_case(conv.name + "+bias+relu", conv.inputs, forward,
                             [reference](const Tensors<double>& x) { return relu_of(reference(x)); });
}

OpCase conv_transpose_relu_case(ConvTransposeShape s) {
  const OpCase deconv = conv_transpose_case(s);
  const size_t y_size = size_t(s.batch) * s.out_channels * s.stride * s.stride * s.height * s.width;
  auto forward = [=](const auto& k, const auto& x) {
    std::vector<value_of<decltype(x)>> y(y_size);
    k.conv_transpose_relu_forward(ro(x[0]), ro(x[1]), ro(x[2]), wr(y), s);
    return y;
  };
  const auto reference = deconv.reference;
  return make_inference_case(deconv.name + "+bias+relu", deconv.inputs, forward,
                             [reference](const Tensors<double>& x) { return relu_of(reference(x)); });
}

// semseg's head: devoxelize, concat [cell feature, point feature], Linear+bias+ReLU, Linear+bias.
OpCase devoxelize_head_case(const std::string& what, std::vector<int64_t> point_cell) {
  const auto index = std::make_shared<CellIndex>(build_cell_index(point_cell, kMaps * kCellsPerMap));
  const PointHeadShape shape{3, 2, 4, 5};
  const int cg = shape.grid_channels, cp = shape.point_channels, hidden = shape.hidden, classes = shape.classes;
  const int64_t n = int64_t(point_cell.size());
  auto forward = [=](const auto& k, const auto& x) {
    std::vector<value_of<decltype(x)>> logits(size_t(n * classes));
    k.devoxelize_head_forward(ro(x[0]), *index, ro(x[1]), ro(x[2]), ro(x[3]), ro(x[4]), ro(x[5]), shape, wr(logits));
    return logits;
  };
  auto reference = [=](const Tensors<double>& x) {
    Vec logits(size_t(n * classes));
    for (int64_t p = 0; p < n; ++p) {
      Vec features(size_t(cg + cp), 0.0);
      // The cell's row: its place among the occupied cells in ascending order.
      const auto& cells = index->cells;
      const int64_t slot =
          point_cell[p] < 0 ? -1 : int64_t(std::lower_bound(cells.begin(), cells.end(), point_cell[p]) - cells.begin());
      for (int c = 0; c < cg && slot >= 0; ++c) features[c] = x[0][slot * cg + c];
      for (int c = 0; c < cp; ++c) features[cg + c] = x[1][p * cp + c];
      Vec h(static_cast<size_t>(hidden));
      for (int j = 0; j < hidden; ++j) {
        double sum = x[3][j];
        for (int c = 0; c < cg + cp; ++c) sum += x[2][j * (cg + cp) + c] * features[c];
        h[j] = std::max(sum, 0.0);
      }
      for (int o = 0; o < classes; ++o) {
        double sum = x[5][o];
        for (int j = 0; j < hidden; ++j) sum += x[4][o * hidden + j] * h[j];
        logits[p * classes + o] = sum;
      }
    }
    return logits;
  };
  return make_inference_case("devoxelize+concat+head " + what,
                             {random_vector(size_t(index->occupied()) * cg, 30), random_vector(size_t(n * cp), 31),
                              random_vector(size_t(hidden * (cg + cp)), 32), random_vector(hidden, 33),
                              random_vector(size_t(classes * hidden), 34), random_vector(classes, 35)},
                             forward, reference);
}

// The convolution at the occupied cells only: the full convolution's rows there.
OpCase conv_at_cells_case(Conv2dShape s, std::vector<int64_t> point_cell) {
  const OpCase conv = conv_case(s);
  const int64_t plane = int64_t(s.out_height()) * s.out_width();
  const auto index = std::make_shared<CellIndex>(build_cell_index(point_cell, s.batch * plane));
  auto forward = [=](const auto& k, const auto& x) {
    std::vector<value_of<decltype(x)>> rows(size_t(index->occupied() * s.out_channels));
    k.conv2d_relu_at_cells(ro(x[0]), ro(x[1]), ro(x[2]), s, *index, wr(rows));
    return rows;
  };
  const auto reference = conv.reference;
  return make_inference_case(
      conv.name + "+bias+relu at occupied cells", conv.inputs, forward, [=](const Tensors<double>& x) {
        const Vec y = relu_of(reference(x));
        Vec rows;
        for (int64_t cell : index->cells)
          for (int o = 0; o < s.out_channels; ++o)
            rows.push_back(y[size_t((cell / plane * s.out_channels + o) * plane + cell % plane)]);
        return rows;
      });
}

// A point layer and voxelize in one pass: [y, grid] (or the grid alone, y not asked for) against the
// Linear+bias+ReLU reference and a plain per-cell max over the 2 maps of 2×3 cells.
OpCase linear_voxelize_case(const std::string& what, std::vector<int64_t> point_cell, int in, int out, bool with_y) {
  const auto index = std::make_shared<CellIndex>(build_cell_index(point_cell, kMaps * kCellsPerMap));
  const int64_t rows = int64_t(point_cell.size());
  const OpCase linear = linear_case(rows, in, out);
  auto forward = [=](const auto& k, const auto& x) {
    using T = value_of<decltype(x)>;
    std::vector<T> y(with_y ? size_t(rows * out) : 0), grid(size_t(kMaps * kCellsPerMap * out));
    k.linear_relu_voxelize_max_forward(ro(x[0]), ro(x[1]), ro(x[2]), wr_if(with_y, y), rows, in, out, *index,
                                       kCellsPerMap, wr(grid));
    y.insert(y.end(), grid.begin(), grid.end());
    return y;
  };
  const auto reference = linear.reference;
  return make_inference_case("linear+bias+relu+voxelize " + what + (with_y ? "" : ", no point output"), linear.inputs,
                             forward, [=](const Tensors<double>& x) {
                               const Vec y = relu_of(reference(x));
                               Vec grid(size_t(kMaps * kCellsPerMap * out), 0.0);
                               std::vector<bool> seen(grid.size(), false);
                               for (int64_t p = 0; p < rows; ++p) {
                                 const int64_t cell = point_cell[p];
                                 if (cell < 0) continue;
                                 for (int o = 0; o < out; ++o) {
                                   const size_t g =
                                       size_t((cell / kCellsPerMap * out + o) * kCellsPerMap + cell % kCellsPerMap);
                                   grid[g] = seen[g] ? std::max(grid[g], y[p * out + o]) : y[p * out + o];
                                   seen[g] = true;
                                 }
                               }
                               Vec want = with_y ? y : Vec();
                               want.insert(want.end(), grid.begin(), grid.end());
                               return want;
                             });
}

std::vector<OpCase> inference_table() {
  // 600 points over the 12 cells and outside the grid: more than one block of 256 points.
  std::vector<int64_t> many(600);
  for (size_t p = 0; p < many.size(); ++p) many[p] = int64_t((p * 7) % 13) - 1;
  return {
      linear_relu_case(7, 4, 3),
      linear_relu_case(300, 5, 6),
      linear_relu_case(37, 32, 20),
      linear_relu_case(19, 16, 56),
      linear_relu_case(0, 4, 3),
      conv_relu_case({2, 3, 4, 7, 6, 3, 2, 1}),
      conv_relu_case({2, 3, 4, 4, 5, 1, 1, 0}),
      conv_relu_case({1, 8, 9, 5, 7, 3, 1, 1}),
      conv_transpose_relu_case({2, 3, 5, 3, 4, 2}),
      conv_transpose_relu_case({1, 3, 4, 3, 2, 1}),
      devoxelize_head_case("scattered, points outside the grid", {0, 0, 1, 4, 4, 4, -1, 7, 11, 11, 6, -1, 2}),
      devoxelize_head_case("600 points", many),
      devoxelize_head_case("empty frame", {}),
      // Cells at the corners and edges of both maps (5 × 7 each), interior ones, points outside the grid.
      conv_at_cells_case({2, 8, 9, 5, 7, 3, 1, 1}, {0, 6, 6, 28, 34, 17, -1, 35, 41, 69, 50, 50, -1}),
      conv_at_cells_case({1, 3, 4, 4, 5, 1, 1, 0}, {3, 3, 19, 0, 7}),
      conv_at_cells_case({2, 3, 4, 5, 5, 3, 1, 1}, {}),
      // 37 channels: the channels-last copy's two full 16-channel blocks and a partial one.
      conv_at_cells_case({2, 37, 5, 4, 6, 3, 1, 1}, {0, 5, 9, 23, 24, 30, -1, 47, 13}),
      linear_voxelize_case("scattered, points outside the grid", {0, 0, 1, 4, 4, 4, -1, 7, 11, 11, 6, -1, 2}, 5, 6,
                           true),
      linear_voxelize_case("600 points", many, 8, 20, true),
      linear_voxelize_case("600 points", many, 10, 17, false),
      linear_voxelize_case("empty frame", {}, 4, 3, true),
  };
}

// The training ops' cases, then the inference ops'.
std::vector<OpCase> every_case() {
  std::vector<OpCase> cases = op_table();
  for (OpCase& c : inference_table()) cases.push_back(std::move(c));
  return cases;
}

INSTANTIATE_TEST_SUITE_P(Ops, OpTable, ::testing::ValuesIn(every_case()), case_name);

// ---- the same table on the backends ----------------------------------------------------------------
// Every case with a backend implementation runs on the emulated CUDA build (kernels/cuda/*.cu as host
// C++, always) and on the GPU (skipped without one), against the CPU reference in float: the sums run in
// another fixed order, so agreement is to float rounding, not bits.

enum class BackendKind { emulated, cuda };

const Backend* backend_for(BackendKind kind) {
  return kind == BackendKind::emulated ? &cuda_emu::backend() : cuda_backend();
}

std::string backend_label(BackendKind kind) {
  return kind == BackendKind::emulated ? "emulated" : "cuda";
}

// The table is whole on every backend: each op's slot is set, or the backend lists the op as unsupported
// (ggml's supports_op) and leaves it null; a name it lists that is no op is a typo.
std::vector<std::string> incomplete_ops(const Backend& backend) {
  std::vector<std::string> wrong;
  std::vector<std::string> names;
#define LT_CHECK_OP(op)                                     \
  names.push_back(#op);                                     \
  if ((backend.op != nullptr) != supports_op(backend, #op)) \
    wrong.push_back(std::string(#op) + (backend.op ? " is set but listed unsupported" : " is null and not listed"));
  LT_BACKEND_OPS(LT_CHECK_OP)
#undef LT_CHECK_OP
  for (const char* const* name = backend.unsupported; name && *name; ++name)
    if (std::find(names.begin(), names.end(), *name) == names.end())
      wrong.push_back(std::string(*name) + " is listed unsupported but is no op");
  return wrong;
}

TEST(OpTable, EveryOpOfEveryBackendIsSetOrListedUnsupported) {
  EXPECT_EQ(incomplete_ops(cpu_backend()), std::vector<std::string>{});
  EXPECT_EQ(incomplete_ops(cuda_emu::backend()), std::vector<std::string>{});
  if (const Backend* cuda = cuda_backend()) {
    EXPECT_EQ(incomplete_ops(*cuda), std::vector<std::string>{});
  }
  // The check sees a hole: a copy of a whole table (the emulated CUDA one) with one slot cleared, listed or not.
  Backend holed = cuda_emu::backend();
  holed.rotated_nms = nullptr;
  EXPECT_EQ(incomplete_ops(holed), std::vector<std::string>{"rotated_nms is null and not listed"});
  static const char* const unsupported[] = {"rotated_nms", "rotated_nmz", nullptr};
  holed.unsupported = unsupported;
  EXPECT_FALSE(supports_op(holed, "rotated_nms"));
  EXPECT_TRUE(supports_op(holed, "gemm"));
  EXPECT_EQ(incomplete_ops(holed), std::vector<std::string>{"rotated_nmz is listed unsupported but is no op"});
}

struct DeviceCase {
  OpCase op;
  BackendKind backend;
};

void PrintTo(const DeviceCase& c, std::ostream* os) {
  *os << c.op.name << " on " << backend_label(c.backend);
}

std::vector<DeviceCase> device_table() {
  std::vector<DeviceCase> cases;
  for (const OpCase& c : every_case())
    for (BackendKind kind : {BackendKind::emulated, BackendKind::cuda}) cases.push_back({c, kind});
  return cases;
}

Tensors<float> to_float(const Tensors<double>& in) {
  Tensors<float> out;
  for (const Vec& v : in) out.emplace_back(v.begin(), v.end());
  return out;
}

void expect_close(const std::vector<float>& got, const std::vector<float>& want, const std::string& what) {
  ASSERT_EQ(got.size(), want.size()) << what;
  for (size_t i = 0; i < got.size(); ++i)
    EXPECT_NEAR(got[i], want[i], 2e-6 * (1 + std::abs(want[i]))) << what << " element " << i;
}

// Runs `statement`; an op the backend lists as unsupported skips the test instead.
#define SKIP_IF_UNSUPPORTED(statement)                                       \
  try {                                                                      \
    statement;                                                               \
  } catch (const testing::UnsupportedOp& e) {                                \
    GTEST_SKIP() << backend->name << " lists " << e.op << " as unsupported"; \
  }

class DeviceOpTable : public ::testing::TestWithParam<DeviceCase> {};

TEST_P(DeviceOpTable, ForwardAndBackwardMatchTheCpu) {
  const DeviceCase& d = GetParam();
  const Backend* backend = backend_for(d.backend);
  if (!backend) GTEST_SKIP() << "no CUDA device: " << cuda_summary();
  const OpCase& c = d.op;
  const Tensors<float> inputs = to_float(c.inputs);
  const int64_t launches_before = emu::launch_count();
  const std::vector<float> want = c.forward_float(inputs);
  std::vector<float> got;
  SKIP_IF_UNSUPPORTED(got = c.forward_on(testing::Staged{*backend}, inputs));
  expect_close(got, want, "forward");
  // The emulated backend really ran kernels (an op that fell back to the CPU would launch none); an
  // all-zero result, as an empty frame's, may come from a memset alone.
  if (d.backend == BackendKind::emulated && std::any_of(want.begin(), want.end(), [](float v) { return v != 0.f; })) {
    EXPECT_GT(emu::launch_count(), launches_before);
  }
  if (!c.backward_on) return;  // an inference op
  const Vec r = random_vector(want.size(), 97);
  const std::vector<float> dout(r.begin(), r.end());
  const Tensors<float> grad_want = c.backward_float(inputs, dout);
  const Tensors<float> grad_got = c.backward_on(testing::Staged{*backend}, inputs, dout);
  ASSERT_EQ(grad_got.size(), grad_want.size());
  for (size_t t = 0; t < grad_want.size(); ++t)
    expect_close(grad_got[t], grad_want[t], "gradient " + std::to_string(t));
}

TEST_P(DeviceOpTable, ResultsDoNotDependOnTheThreadSchedule) {
  const DeviceCase& d = GetParam();
  const Backend* backend = backend_for(d.backend);
  if (!backend) GTEST_SKIP() << "no CUDA device: " << cuda_summary();
  const OpCase& c = d.op;
  const Tensors<float> inputs = to_float(c.inputs);
  SKIP_IF_UNSUPPORTED(c.forward_on(testing::Staged{*backend}, inputs));
  const auto run = [&] {
    const std::vector<float> y = c.forward_on(testing::Staged{*backend}, inputs);
    Tensors<float> all;
    if (c.backward_on) {
      const Vec r = random_vector(y.size(), 96);
      all = c.backward_on(testing::Staged{*backend}, inputs, std::vector<float>(r.begin(), r.end()));
    }
    all.push_back(y);
    return all;
  };
  const Tensors<float> first = run();
  // Emulated: blocks and threads the other way round; on the GPU: whatever the hardware does next.
  if (d.backend == BackendKind::emulated) emu::set_thread_order(emu::Order::reverse);
  const Tensors<float> second = run();
  emu::set_thread_order(emu::Order::forward);
  ASSERT_EQ(first.size(), second.size());
  for (size_t t = 0; t < first.size(); ++t) {
    ASSERT_EQ(first[t].size(), second[t].size());
    if (!first[t].empty()) {
      EXPECT_EQ(0, std::memcmp(first[t].data(), second[t].data(), sizeof(float) * first[t].size())) << "tensor " << t;
    }
  }
}

std::string device_case_name(const ::testing::TestParamInfo<DeviceCase>& info) {
  return gtest_name(info.index, info.param.op.name + "_" + backend_label(info.param.backend));
}

INSTANTIATE_TEST_SUITE_P(Backends, DeviceOpTable, ::testing::ValuesIn(device_table()), device_case_name);

// ---- the backend ops without gradients (decode, NMS, optimizer, data) -------------------------------

// An op the backend lists as unsupported skips the test.
#define SKIP_UNLESS_SUPPORTED(op) \
  if (!supports_op(*backend_, op)) GTEST_SKIP() << backend_->name << " lists " << op << " as unsupported"

class BackendOps : public ::testing::TestWithParam<BackendKind> {
 protected:
  void SetUp() override {
    backend_ = backend_for(GetParam());
    if (!backend_) GTEST_SKIP() << "no CUDA device: " << cuda_summary();
  }
  testing::Staged staged() const { return {*backend_}; }
  const Backend* backend_ = nullptr;
};

TEST_P(BackendOps, GemmMatchesTheCpuInEveryTransposition) {
  SKIP_UNLESS_SUPPORTED("gemm");
  const int64_t m = 37, n = 21, k = 50;  // not multiples of the GPU kernel's tiles
  const Vec a = random_vector(size_t(m * k), 51), b = random_vector(size_t(k * n), 52),
            c = random_vector(size_t(m * n), 53);
  const std::vector<float> af(a.begin(), a.end()), bf(b.begin(), b.end()), cf(c.begin(), c.end());
  for (bool trans_a : {false, true})
    for (bool trans_b : {false, true})
      for (float beta : {0.f, 1.f, 0.5f}) {
        std::vector<float> want = cf, got = cf;
        cpu_backend().gemm(trans_a, trans_b, m, n, k, 0.75f, af.data(), bf.data(), beta, want.data());
        staged().gemm(trans_a, trans_b, m, n, k, 0.75f, ro(af), ro(bf), beta, rw(got));
        expect_close(got, want, "gemm trans_a " + std::to_string(trans_a) + " trans_b " + std::to_string(trans_b));
      }
}

TEST_P(BackendOps, MaxPool3x3MatchesTheCpu) {
  SKIP_UNLESS_SUPPORTED("max_pool3x3");
  const Vec x = random_vector(3 * 7 * 9, 31);
  const std::vector<float> xf(x.begin(), x.end());
  std::vector<float> want(xf.size()), got(xf.size());
  max_pool3x3(xf.data(), want.data(), 3, 7, 9);
  staged().max_pool3x3(ro(xf), wr(got), 3, 7, 9);
  EXPECT_EQ(got, want);  // a maximum is exact
}

TEST_P(BackendOps, BevIouMatrixMatchesTheCpu) {
  SKIP_UNLESS_SUPPORTED("bev_iou_matrix");
  Rng rng(13);
  std::vector<float> boxes;
  for (int i = 0; i < 24; ++i)
    boxes.insert(boxes.end(), {float(rng.uniform(-3, 3)), float(rng.uniform(-3, 3)), 0.f, float(rng.uniform(0.5, 5)),
                               float(rng.uniform(0.5, 2)), 1.5f, float(rng.uniform(-3.2, 3.2))});
  std::vector<double> want(24 * 24), got(24 * 24);
  cpu_backend().bev_iou_matrix(boxes.data(), 24, boxes.data(), 24, want.data());
  staged().bev_iou_matrix(ro(boxes), 24, ro(boxes), 24, wr(got));
  int overlapping = 0;
  for (size_t i = 0; i < want.size(); ++i) {
    EXPECT_NEAR(got[i], want[i], 1e-12) << i;
    overlapping += want[i] > 0;
  }
  EXPECT_GT(overlapping, 24);  // more pairs overlap than the diagonal
}

// The decode's top-K: logits on a coarse grid of values, so scores tie (ties go by cell index), a plateau
// (every cell of it a peak), NaN logits, and more peaks than K; several K and thresholds.
TEST_P(BackendOps, HeatmapTopKMatchesTheCpuCellForCell) {
  SKIP_UNLESS_SUPPORTED("heatmap_top_k");
  const int maps = 3, height = 37, width = 41;  // 4,551 cells: two GPU chunks of 4096
  const int64_t n = int64_t(maps) * height * width;
  Rng rng(71);
  std::vector<float> logits(static_cast<size_t>(n));
  for (auto& v : logits) v = float(int(rng.uniform(-8, 8))) * 0.5f;
  for (int i = 0; i < 5; ++i)
    for (int j = 0; j < 6; ++j) logits[size_t(2 * height * width + (10 + i) * width + 20 + j)] = 9.f;  // plateau
  logits[17] = std::numeric_limits<float>::quiet_NaN();
  logits[size_t(height * width + 5 * width + 5)] = std::numeric_limits<float>::quiet_NaN();
  for (const auto& [top_k, threshold] :
       std::vector<std::pair<int, float>>{{500, 0.1f}, {7, 0.1f}, {100000, 0.f}, {0, 0.1f}, {50, 0.999f}}) {
    const std::string what = "top_k " + std::to_string(top_k) + " threshold " + std::to_string(threshold);
    const size_t slots = size_t(std::max(top_k, 1));
    std::vector<int64_t> want_cells(slots, -1), got_cells(slots, -1), work(size_t(heatmap_top_k_work(n))), got_count(1);
    std::vector<float> want_scores(slots), got_scores(slots);
    int64_t want_count = -1;
    cpu_backend().heatmap_top_k(logits.data(), maps, height, width, threshold, top_k, work.data(), want_cells.data(),
                                want_scores.data(), &want_count);
    // The scratch as the CPU left it: the op must not count on a zeroed one.
    staged().heatmap_top_k(ro(logits), maps, height, width, threshold, top_k, rw(work), wr(got_cells), wr(got_scores),
                           wr(got_count));
    ASSERT_EQ(got_count[0], want_count) << what;
    got_cells.resize(size_t(want_count));
    want_cells.resize(size_t(want_count));
    EXPECT_EQ(got_cells, want_cells) << what;
    for (int64_t r = 0; r < want_count; ++r)
      EXPECT_NEAR(got_scores[size_t(r)], want_scores[size_t(r)], 1e-6f) << what << " rank " << r;
  }
  // The CPU reference itself: the plateau's 30 cells are the best, in cell order; a NaN is never a peak.
  std::vector<int64_t> cells(40), cpu_work(size_t(heatmap_top_k_work(n)));
  std::vector<float> scores(40);
  int64_t count = 0;
  cpu_backend().heatmap_top_k(logits.data(), maps, height, width, 0.1f, 40, cpu_work.data(), cells.data(),
                              scores.data(), &count);
  ASSERT_EQ(count, 40);
  for (int r = 0; r < 30; ++r) EXPECT_EQ(cells[size_t(r)], 2 * height * width + (10 + r / 6) * width + 20 + r % 6) << r;
  for (int r = 0; r + 1 < 40; ++r) EXPECT_GE(scores[size_t(r)], scores[size_t(r + 1)]);
  for (int64_t c : cells) EXPECT_TRUE(c != 17 && c != height * width + 5 * width + 5);
}

// Greedy rotated NMS: clusters of overlapping boxes of two labels, sorted best first; the keep flags are
// the CPU's exactly (one IoU body, kernels/common/box_iou.hpp), at several thresholds and across the
// 64-box words of the GPU's mask.
TEST_P(BackendOps, RotatedNmsKeepsWhatTheCpuKeeps) {
  SKIP_UNLESS_SUPPORTED("rotated_nms");
  Rng rng(72);
  const int64_t n = 150;
  std::vector<float> boxes;
  std::vector<int32_t> labels;
  for (int64_t i = 0; i < n; ++i) {
    const int cluster = int(rng.uniform(0, 12));
    boxes.insert(boxes.end(), {float(cluster % 4) * 6.f + float(rng.uniform(-1, 1)),
                               float(cluster / 4) * 6.f + float(rng.uniform(-1, 1)), 0.f, float(rng.uniform(2, 5)),
                               float(rng.uniform(1, 2.5)), 1.5f, float(rng.uniform(-3.2, 3.2))});
    labels.push_back(1 + int32_t(rng.uniform(0, 2)));
  }
  std::vector<uint64_t> work(size_t(n * ((n + 63) / 64)));
  for (double iou : {0.01, 0.1, 0.5}) {
    std::vector<uint8_t> want(static_cast<size_t>(n)), got(static_cast<size_t>(n));
    cpu_backend().rotated_nms(boxes.data(), labels.data(), n, iou, nullptr, want.data());
    staged().rotated_nms(ro(boxes), ro(labels), n, iou, wr(work), wr(got));
    EXPECT_EQ(got, want) << "iou " << iou;
    const int kept = int(std::count(want.begin(), want.end(), 1));
    EXPECT_GT(kept, 2) << iou;
    EXPECT_LT(kept, n) << iou;  // something was suppressed
  }
}

TEST_P(BackendOps, OptimizerUpdatesMatchTheCpu) {
  SKIP_UNLESS_SUPPORTED("adamw_update");
  SKIP_UNLESS_SUPPORTED("sgd_update");
  const int64_t n = 10000;
  const Vec p = random_vector(n, 41), g = random_vector(n, 42), m = random_vector(n, 43),
            v = random_vector(n, 44, 0, 1);
  OptimizerStep step;
  step.lr = 1e-3f, step.weight_decay = 0.01f, step.bias1 = 0.1f, step.bias2 = 0.001f, step.momentum = 0.9f;
  for (bool adamw : {true, false}) {
    std::vector<float> params[2], exp_avg[2], exp_avg_sq[2];
    for (int side = 0; side < 2; ++side) {
      params[side].assign(p.begin(), p.end());
      exp_avg[side].assign(m.begin(), m.end());
      exp_avg_sq[side].assign(v.begin(), v.end());
    }
    const std::vector<float> grad(g.begin(), g.end());
    if (adamw)
      cpu_backend().adamw_update(params[0].data(), grad.data(), exp_avg[0].data(), exp_avg_sq[0].data(), n, step);
    else
      cpu_backend().sgd_update(params[0].data(), grad.data(), exp_avg[0].data(), n, step);
    if (adamw)
      staged().adamw_update(rw(params[1]), ro(grad), rw(exp_avg[1]), rw(exp_avg_sq[1]), n, step);
    else
      staged().sgd_update(rw(params[1]), ro(grad), rw(exp_avg[1]), n, step);
    // The same per-element body: on the emulated build (the host compiler's code) the same bits; on the GPU
    // to float rounding (the host compiler may fuse multiply-adds that nvcc, with --fmad=false, does not).
    if (GetParam() == BackendKind::emulated) {
      EXPECT_EQ(params[1], params[0]) << (adamw ? "adamw" : "sgd");
      EXPECT_EQ(exp_avg[1], exp_avg[0]);
      EXPECT_EQ(exp_avg_sq[1], exp_avg_sq[0]);
    } else {
      expect_close(params[1], params[0], adamw ? "adamw" : "sgd");
      expect_close(exp_avg[1], exp_avg[0], "first moment");
      expect_close(exp_avg_sq[1], exp_avg_sq[0], "second moment");
    }
  }
}

// The optimizer gated on the device (OptimizerStep::gate, gradient_gate): an open gate with a clip factor
// is the CPU's clip_to_norm then update, bit for bit on the emulated build; a closed one (a non-finite
// norm) leaves parameters and moments untouched.
TEST_P(BackendOps, GatedOptimizerUpdateIsClipThenUpdateOrNothing) {
  SKIP_UNLESS_SUPPORTED("gradient_gate");
  SKIP_UNLESS_SUPPORTED("adamw_update");
  SKIP_UNLESS_SUPPORTED("sum_squares");
  const int64_t n = 5000;
  const Vec p = random_vector(n, 51), g = random_vector(n, 52), m = random_vector(n, 53),
            v = random_vector(n, 54, 0, 1);
  const std::vector<float> grad(g.begin(), g.end());
  double norm_sq = 0;
  cpu_backend().sum_squares(grad.data(), n, &norm_sq);
  const double norm = std::sqrt(norm_sq);
  OptimizerStep step;
  step.lr = 1e-3f, step.weight_decay = 0.01f, step.bias1 = 0.1f, step.bias2 = 0.001f;
  for (double max_norm : {0.0, norm * 2, norm / 3}) {  // off, not reached, clipping
    std::vector<float> want_p(p.begin(), p.end()), want_m(m.begin(), m.end()), want_v(v.begin(), v.end());
    std::vector<float> clipped = grad;
    clip_to_norm(clipped, norm, max_norm);
    cpu_backend().adamw_update(want_p.data(), clipped.data(), want_m.data(), want_v.data(), n, step);
    std::vector<float> got_p(p.begin(), p.end()), got_m(m.begin(), m.end()), got_v(v.begin(), v.end()), gate(2);
    std::vector<double> sq = {norm_sq}, loss = {2.5};
    staged().gradient_gate(ro(sq), ro(loss), max_norm, wr(gate));
    EXPECT_EQ(gate[1], 1.f);
    EXPECT_EQ(gate[0], max_norm > 0 && norm > max_norm ? float(max_norm / (norm + 1e-6)) : 1.f) << max_norm;
    // The gate stays where gradient_gate put it: staged again (its values) for the update.
    OptimizerStep gated = step;
    staged().adamw_update(rw(got_p), ro(grad), rw(got_m), rw(got_v), n, testing::with_gate(gated, gate));
    if (GetParam() == BackendKind::emulated) {
      EXPECT_EQ(got_p, want_p) << max_norm;
      EXPECT_EQ(got_m, want_m) << max_norm;
    } else {
      expect_close(got_p, want_p, "gated adamw");
    }
  }
  // A norm or a global loss that is not finite closes the gate.
  const double inf = std::numeric_limits<double>::infinity(), nan = std::numeric_limits<double>::quiet_NaN();
  for (const auto& [bad_sq, bad_loss] :
       std::vector<std::pair<double, double>>{{inf, 1}, {nan, 1}, {4, inf}, {4, nan}}) {
    std::vector<float> gate(2), got_p(p.begin(), p.end()), got_m(m.begin(), m.end()), got_v(v.begin(), v.end());
    std::vector<double> sq = {bad_sq}, loss = {bad_loss};
    staged().gradient_gate(ro(sq), ro(loss), 10.0, wr(gate));
    EXPECT_EQ(gate[1], 0.f) << bad_sq << " " << bad_loss;
    OptimizerStep gated = step;
    staged().adamw_update(rw(got_p), ro(grad), rw(got_m), rw(got_v), n, testing::with_gate(gated, gate));
    EXPECT_EQ(got_p, std::vector<float>(p.begin(), p.end())) << "a closed gate changes nothing";
    EXPECT_EQ(got_v, std::vector<float>(v.begin(), v.end()));
  }
}

// The fp16 loss scaler's gate (scaled_gradient_gate) as GradScaler behaves: the norm and the clip are the
// unscaled gradients', the gate's factor carries 1/scale, open steps count up to growth_interval and then
// double the scale, an inf or NaN closes the gate and halves it; every backend the same bits.
TEST_P(BackendOps, LossScalerGrowsAfterGoodStepsAndBacksOffOnOverflow) {
  SKIP_UNLESS_SUPPORTED("scaled_gradient_gate");
  const double scale = 65536.0, true_norm = 3.0;
  std::vector<double> scaler = {scale, 0.0};
  std::vector<float> gate(2);
  // Two good steps of a growth interval of 3, the third doubles the scale; the clip (max 1) sees norm 3.
  for (int step = 1; step <= 3; ++step) {
    std::vector<double> sq = {true_norm * true_norm * scaler[0] * scaler[0]}, loss = {0.5};
    const double before = scaler[0];
    staged().scaled_gradient_gate(rw(sq), ro(loss), 1.0, 3, rw(scaler), wr(gate));
    EXPECT_EQ(sq[0], true_norm * true_norm) << "unscaled in place";
    EXPECT_EQ(gate[1], 1.f);
    EXPECT_EQ(gate[0], float(double(float(1.0 / (true_norm + 1e-6))) / before)) << step;
    EXPECT_EQ(scaler[0], step < 3 ? scale : 2 * scale) << step;
    EXPECT_EQ(scaler[1], step < 3 ? double(step) : 0.0) << step;
  }
  // An overflow (inf, or NaN from inf − inf) or a non-finite loss: closed, the scale halved, the count reset.
  const double inf = std::numeric_limits<double>::infinity(), nan = std::numeric_limits<double>::quiet_NaN();
  scaler = {scale, 2.0};
  for (const auto& [bad_sq, bad_loss] : std::vector<std::pair<double, double>>{{inf, 1}, {nan, 1}, {4, nan}}) {
    std::vector<double> sq = {bad_sq}, loss = {bad_loss};
    const double before = scaler[0];
    staged().scaled_gradient_gate(rw(sq), ro(loss), 1.0, 2000, rw(scaler), wr(gate));
    EXPECT_EQ(gate[1], 0.f);
    EXPECT_EQ(scaler[0], before / 2);
    EXPECT_EQ(scaler[1], 0.0);
  }
  // The CPU's op: the host formula (kernels/common/elementwise.hpp) in place.
  double sq = 16.0 * 4.0, cpu_scaler[2] = {2.0, 0.0};
  const double one = 1.0;
  float cpu_gate[2] = {};
  cpu_backend().scaled_gradient_gate(&sq, &one, 0.0, 2000, cpu_scaler, cpu_gate);
  EXPECT_EQ(sq, 16.0);
  EXPECT_EQ(cpu_gate[0], 0.5f);
  EXPECT_EQ(cpu_gate[1], 1.f);
  EXPECT_EQ(cpu_scaler[1], 1.0);
}

// A micro-batch's loss share on the backend = the host's formula bit for bit (Model::forward_loss: semseg's
// one weighted term, bevdet's two), accumulated over micro-batches; a normaliser of 0 adds nothing.
TEST_P(BackendOps, LossShareIsTheHostsFormula) {
  SKIP_UNLESS_SUPPORTED("add_loss_share");
  const std::vector<double> terms = {3.141592653589793, 0.7071067811865476};
  const double weight = 1234.5, normaliser = 98765.25, regression = 2.0;
  std::vector<double> total = {0.0};
  staged().add_loss_share(ro(terms), 1, weight, 0.0, normaliser, rw(total));
  EXPECT_EQ(total[0], terms[0] * weight / normaliser);
  staged().add_loss_share(ro(terms), 2, 1.0, regression, normaliser, rw(total));
  EXPECT_EQ(total[0], terms[0] * weight / normaliser + (terms[0] / normaliser + regression * terms[1] / normaliser));
  const double before = total[0];
  staged().add_loss_share(ro(terms), 2, 1.0, regression, 0.0, rw(total));
  EXPECT_EQ(total[0], before);
}

// One launch over a flat buffer of tensors with and without weight decay (OptimizerStep::decays), as
// resident training updates, = the CPU's update tensor by tensor: bit for bit on the emulated build.
TEST_P(BackendOps, OneOptimizerLaunchWithDecayFlagsIsTheUpdatePerTensor) {
  SKIP_UNLESS_SUPPORTED("adamw_update");
  SKIP_UNLESS_SUPPORTED("sgd_update");
  const std::vector<std::pair<int64_t, bool>> tensors = {{700, true}, {30, false}, {1200, true}, {64, false}};
  int64_t n = 0;
  std::vector<uint8_t> decays;
  for (const auto& [size, decay] : tensors) n += size, decays.insert(decays.end(), size_t(size), decay ? 1 : 0);
  const Vec p = random_vector(n, 61), g = random_vector(n, 62), m = random_vector(n, 63),
            v = random_vector(n, 64, 0, 1);
  const std::vector<float> grad(g.begin(), g.end());
  OptimizerStep step;
  step.lr = 1e-3f, step.weight_decay = 0.05f, step.bias1 = 0.1f, step.bias2 = 0.001f, step.momentum = 0.9f;
  for (bool adamw : {true, false}) {
    std::vector<float> want_p(p.begin(), p.end()), want_m(m.begin(), m.end()), want_v(v.begin(), v.end());
    int64_t at = 0;
    for (const auto& [size, decay] : tensors) {
      OptimizerStep per_tensor = step;
      per_tensor.weight_decay = decay ? step.weight_decay : 0.f;
      if (adamw)
        cpu_backend().adamw_update(&want_p[size_t(at)], &grad[size_t(at)], &want_m[size_t(at)], &want_v[size_t(at)],
                                   size, per_tensor);
      else
        cpu_backend().sgd_update(&want_p[size_t(at)], &grad[size_t(at)], &want_m[size_t(at)], size, per_tensor);
      at += size;
    }
    std::vector<float> got_p(p.begin(), p.end()), got_m(m.begin(), m.end()), got_v(v.begin(), v.end());
    if (adamw)
      staged().adamw_update(rw(got_p), ro(grad), rw(got_m), rw(got_v), n, testing::with_decays(step, decays));
    else
      staged().sgd_update(rw(got_p), ro(grad), rw(got_m), n, testing::with_decays(step, decays));
    if (GetParam() == BackendKind::emulated) {
      EXPECT_EQ(got_p, want_p) << (adamw ? "adamw" : "sgd");
      EXPECT_EQ(got_m, want_m);
    } else {
      expect_close(got_p, want_p, adamw ? "adamw" : "sgd");
    }
  }
}

TEST_P(BackendOps, SumOfSquaresAndScaleMatchTheCpu) {
  SKIP_UNLESS_SUPPORTED("sum_squares");
  SKIP_UNLESS_SUPPORTED("scale");
  const Vec x = random_vector(50000, 45);
  std::vector<float> xf(x.begin(), x.end());
  double want = 0;
  cpu_backend().sum_squares(xf.data(), int64_t(xf.size()), &want);
  std::vector<double> sum(1);
  staged().sum_squares(ro(xf), int64_t(xf.size()), wr(sum));
  EXPECT_NEAR(sum[0], want, 1e-12 * want);
  std::vector<float> scaled = xf;
  staged().scale(rw(scaled), int64_t(xf.size()), 0.5f);
  for (size_t i = 0; i < xf.size(); ++i) ASSERT_EQ(scaled[i], xf[i] * 0.5f);
}

TEST_P(BackendOps, CountInCostRangeMatchesTheCpu) {
  SKIP_UNLESS_SUPPORTED("count_in_cost_range");
  Rng rng(11);
  std::vector<float> points;
  for (int i = 0; i < 30000; ++i)
    points.insert(points.end(), {float(rng.uniform(-70, 70)), float(rng.uniform(-70, 70)), float(rng.uniform(-7, 5)),
                                 float(rng.uniform())});
  const int64_t n = int64_t(points.size() / 4);
  int64_t want = 0;
  cpu_backend().count_in_cost_range(points.data(), n, &want);
  std::vector<int64_t> count(1);
  staged().count_in_cost_range(ro(points), n, wr(count));
  EXPECT_EQ(count[0], want);
  EXPECT_GT(want, 0);
  EXPECT_LT(want, n);
}

TEST_P(BackendOps, BatchNormSumsOfAFullSizedFrameMatchTheCpu) {
  SKIP_UNLESS_SUPPORTED("batchnorm_sums");
  // More rows than one reduction chunk, and more chunks than one block of the final sum.
  const BatchNormShape s{120000, 16, 1};
  const Vec x = random_vector(size_t(s.count() * s.channels), 46, -2, 3);
  const std::vector<float> xf(x.begin(), x.end());
  std::vector<double> want(33), got(33);
  batchnorm_sums(xf.data(), s, want.data());
  staged().batchnorm_sums(ro(xf), s, wr(got));
  for (size_t c = 0; c < 32; ++c) EXPECT_NEAR(got[c], want[c], 1e-9 * (1 + std::abs(want[c]))) << c;
  EXPECT_EQ(got[32], 120000.0);  // the count
}

TEST_P(BackendOps, VoxelizeArgmaxIsTheFirstOfTiedPoints) {
  SKIP_UNLESS_SUPPORTED("voxelize_max_forward");
  // Ties are where max has no derivative, so they are not in the table: the CPU keeps the first point,
  // and so must every schedule of the atomics (emulated: forward and reverse).
  const CellIndex index = build_cell_index({2, 2, 2, -1, 0, 0}, 4);
  const std::vector<float> features = {1, 5, 3, 5, 3, 0, 9, 9, -2, -0.5f, -2, -0.5f};  // (6 points, 2 channels)
  std::vector<float> want_grid(8), got_grid(8);
  std::vector<int64_t> want_argmax(4), got_argmax(4);
  voxelize_max_forward(features.data(), index, 2, 4, want_grid.data(), want_argmax.data());
  EXPECT_EQ(want_argmax, (std::vector<int64_t>{4, 4, 1, 0}));
  for (emu::Order order : {emu::Order::forward, emu::Order::reverse}) {
    emu::set_thread_order(order);
    staged().voxelize_max_forward(ro(features), index, 2, 4, wr(got_grid), wr(got_argmax));
    EXPECT_EQ(got_argmax, want_argmax);
    EXPECT_EQ(got_grid, want_grid);
  }
  emu::set_thread_order(emu::Order::forward);
}

TEST_P(BackendOps, TheLedgerCountsWhatCrossesAndEveryWait) {
  const std::vector<float> x(1000, 1.f);
  std::vector<float> y(1000);
  void* device = backend_->alloc(4000);
  const TransferLedger before = backend_->transfers();
  backend_->upload(device, x.data(), 4000);
  backend_->copy(device, device, 0);
  backend_->download(y.data(), device, 4000);
  backend_->synchronize();
  const TransferLedger moved = backend_->transfers() - before;
  backend_->release(device);
  EXPECT_EQ(moved.h2d_bytes, 4000);
  EXPECT_EQ(moved.d2h_bytes, 4000);
  EXPECT_EQ(moved.syncs, 2);  // the download waits for the device, and so does synchronize
  EXPECT_EQ(y, x);
  // The CPU backend's memory is the host's: nothing crosses, nothing waits.
  const TransferLedger cpu_before = cpu_backend().transfers();
  cpu_backend().synchronize();
  EXPECT_EQ(cpu_backend().transfers().syncs, cpu_before.syncs);
}

INSTANTIATE_TEST_SUITE_P(Backends, BackendOps, ::testing::Values(BackendKind::emulated, BackendKind::cuda),
                         [](const ::testing::TestParamInfo<BackendKind>& info) { return backend_label(info.param); });

// cuBLAS cannot run here, so its call's setup is checked against a plain column-major GEMM: the mapping
// of a row-major product in every transposition gives the row-major result.
TEST(GemmLayout, ColumnMajorCallComputesTheRowMajorProduct) {
  const int64_t m = 3, n = 4, k = 5;
  const Vec a = random_vector(size_t(m * k), 54), b = random_vector(size_t(k * n), 55);
  // C (m_, n_) col-major = op(X) op(Y), X with leading dimension ldx, as BLAS defines it.
  const auto column_major = [](bool tx, bool ty, int64_t m_, int64_t n_, int64_t k_, const double* x, int64_t ldx,
                               const double* y, int64_t ldy, double* c, int64_t ldc) {
    for (int64_t i = 0; i < m_; ++i)
      for (int64_t j = 0; j < n_; ++j) {
        double sum = 0;
        for (int64_t l = 0; l < k_; ++l)
          sum += (tx ? x[i * ldx + l] : x[l * ldx + i]) * (ty ? y[l * ldy + j] : y[j * ldy + l]);
        c[j * ldc + i] = sum;
      }
  };
  for (bool trans_a : {false, true})
    for (bool trans_b : {false, true}) {
      Vec want(size_t(m * n), 0.0), got(size_t(m * n), 0.0);
      for (int64_t i = 0; i < m; ++i)
        for (int64_t j = 0; j < n; ++j)
          for (int64_t l = 0; l < k; ++l)
            want[size_t(i * n + j)] += (trans_a ? a[size_t(l * m + i)] : a[size_t(i * k + l)]) *
                                       (trans_b ? b[size_t(j * k + l)] : b[size_t(l * n + j)]);
      const ColumnMajorGemm g = column_major_gemm(trans_a, trans_b, m, n, k);
      column_major(g.transpose_first, g.transpose_second, g.m, g.n, g.k, b.data(), g.ld_first, a.data(), g.ld_second,
                   got.data(), g.ld_c);
      for (size_t i = 0; i < want.size(); ++i) EXPECT_NEAR(got[i], want[i], 1e-12) << trans_a << trans_b << i;
    }
}

// ---- properties the table does not show ----------------------------------------------------------

TEST(Voxelize, MaxKeepsArgmaxForBackwardAndFirstPointWinsTies) {
  const CellIndex index = build_cell_index({2, 2, 2, -1}, 4);
  const std::vector<float> features = {1, 5, 3, 5, 3, 0, 9, 9};  // (4 points, 2 channels)
  std::vector<float> grid(8);
  std::vector<int64_t> argmax(2);
  voxelize_max_forward(features.data(), index, 2, 4, grid.data(), argmax.data());
  EXPECT_EQ(argmax, (std::vector<int64_t>{1, 0}));                // channel 1: points 0 and 1 tie at 5, the first wins
  EXPECT_EQ(grid, (std::vector<float>{0, 0, 3, 0, 0, 0, 5, 0}));  // point 3 is outside the grid
}

TEST(CellIndex, GroupsPointsByCellInPointOrder) {
  const CellIndex index = build_cell_index({3, -1, 0, 3, 0}, 5);
  EXPECT_EQ(index.cells, (std::vector<int64_t>{0, 3}));
  EXPECT_EQ(index.cell_start, (std::vector<int64_t>{0, 2, 4}));
  EXPECT_EQ(index.sorted_points, (std::vector<int64_t>{2, 4, 0, 3}));
  EXPECT_EQ(index.point_slot, (std::vector<int64_t>{1, -1, 0, 1, 0}));
}

TEST(MaxPool3x3, KeepsEachPixelsNeighbourhoodMaximumAndItsPeaks) {
  // 3×4 plane: peaks where a pixel equals its 3×3 neighbourhood's maximum (borders padded by −∞).
  const std::vector<float> x = {1, 0, 0, 2,  //
                                0, 0, 0, 0,  //
                                0, 3, 0, 0};
  std::vector<float> y(x.size());
  max_pool3x3(x.data(), y.data(), 1, 3, 4);
  EXPECT_EQ(y, (std::vector<float>{1, 1, 2, 2, 3, 3, 3, 2, 3, 3, 3, 0}));
  std::vector<int> peaks;
  for (size_t i = 0; i < x.size(); ++i)
    if (x[i] == y[i] && x[i] > 0) peaks.push_back(int(i));
  EXPECT_EQ(peaks, (std::vector<int>{0, 3, 9}));
}

TEST(Determinism, ReductionsAreBitIdenticalAcrossRuns) {
  const Vec x = random_vector(50000 * 16, 3);
  std::vector<float> xf(x.begin(), x.end());
  double first[33], second[33];
  batchnorm_sums(xf.data(), BatchNormShape{50000, 16, 1}, first);
  batchnorm_sums(xf.data(), BatchNormShape{50000, 16, 1}, second);
  EXPECT_EQ(0, std::memcmp(first, second, sizeof first));
}

// ---- the cuDNN convolutions' plans (kernels/cuda/conv_plan.hpp), checked without a GPU ----
// Every convolution both models run, as cuDNN will be told it: shapes cuDNN accepts, whose output is the
// op's, so a descriptor mistake is a failure here rather than on the first GPU.
TEST(ConvPlan, Conv2dPlansAreWhatCudnnComputesForEveryModelShape) {
  for (const ops::Conv2dShape& s :
       {ops::Conv2dShape{2, 64, 128, 248, 216, 3, 2, 1}, ops::Conv2dShape{1, 32, 32, 128, 128, 3, 1, 1},
        ops::Conv2dShape{4, 384, 64, 124, 108, 3, 1, 1}, ops::Conv2dShape{1, 16, 8, 7, 9, 1, 1, 0},
        ops::Conv2dShape{1, 16, 8, 7, 9, 1, 2, 0}, ops::Conv2dShape{3, 5, 6, 11, 13, 3, 2, 1}}) {
    const conv_plan::Plan p = conv_plan::conv2d(s);
    EXPECT_TRUE(conv_plan::consistent(p));
    EXPECT_EQ(p.x, (conv_plan::Dims{s.batch, s.in_channels, s.height, s.width}));
    EXPECT_EQ(p.filter,
              (conv_plan::Dims{s.out_channels, s.in_channels, s.kernel, s.kernel}));  // PyTorch's (out, in, k, k)
    EXPECT_EQ(p.y, (conv_plan::Dims{s.batch, s.out_channels, s.out_height(), s.out_width()}));
    EXPECT_EQ(p.padding, s.padding);
    EXPECT_EQ(p.stride, s.stride);
  }
  ops::Conv2dShape empty{0, 4, 4, 8, 8, 3, 1, 1};
  EXPECT_FALSE(conv_plan::consistent(conv_plan::conv2d(empty)));  // falls back to im2col, which handles it
}

// The conv-transpose (in, out, k, k) weight, kernel = stride = k, as cuDNN's data gradient: the plan's
// convolution maps the transpose's output (B, out, kH, kW) back to its input (B, in, H, W).
TEST(ConvPlan, ConvTransposeIsTheDataGradientOfAConvolutionCudnnAccepts) {
  for (const ops::ConvTransposeShape& s :
       {ops::ConvTransposeShape{2, 64, 128, 124, 108, 1}, ops::ConvTransposeShape{2, 128, 128, 62, 54, 2},
        ops::ConvTransposeShape{2, 256, 128, 31, 27, 4}, ops::ConvTransposeShape{1, 3, 5, 7, 9, 2}}) {
    const conv_plan::Plan p = conv_plan::conv_transpose(s);
    EXPECT_TRUE(conv_plan::consistent(p));
    EXPECT_EQ(p.x, (conv_plan::Dims{s.batch, s.out_channels, s.stride * s.height, s.stride * s.width}));
    EXPECT_EQ(p.y, (conv_plan::Dims{s.batch, s.in_channels, s.height, s.width}));
    EXPECT_EQ(p.filter, (conv_plan::Dims{s.in_channels, s.out_channels, s.stride, s.stride}));
    EXPECT_EQ(p.padding, 0);
    EXPECT_EQ(p.stride, s.stride);
  }
}

TEST(ConvPlan, TheAlgorithmIsTheBestProposalThatFitsAndIsDeterministicWhenAsked) {
  const std::vector<conv_plan::Candidate> proposals = {{7, false, true, 0},        // failed
                                                       {6, true, false, 1 << 20},  // fastest, not deterministic
                                                       {5, true, true, 1 << 30},   // deterministic, too much workspace
                                                       {1, true, true, 1 << 10},
                                                       {0, true, true, 0}};
  EXPECT_EQ(conv_plan::choose(proposals, false, size_t(1) << 28), 6);
  EXPECT_EQ(conv_plan::choose(proposals, true, size_t(1) << 28), 1);
  EXPECT_EQ(conv_plan::choose(proposals, true, size_t(2) << 30), 5);
  EXPECT_EQ(conv_plan::choose(proposals, true, 0), 0);  // the pool could not give the workspace
  EXPECT_EQ(conv_plan::choose({{3, true, false, 0}}, true, 0), -1);
  EXPECT_EQ(conv_plan::choose({}, false, 0), -1);
}

}  // namespace
}  // namespace lt::ops
