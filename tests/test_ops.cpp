// One table of ops (kernels/cpu/ops.hpp). For every op and case:
//   - its forward (T = double) equals a plain-loop reference;
//   - its backward equals central finite differences of L = Σ forward(inputs) · R for random R
//     (T = double, h = 1e-6; relative error ≤ 1e-5 with a floor of 1e-3 on the scale, far inside the
//     issue's 1e-3: the finite differences themselves carry ~1e-9 of rounding);
//   - its float instantiation (what training runs) agrees with the double one to float precision.
// Edge cases sit in the table as cases of their own: empty cells, empty frames, all points in one cell,
// points outside the grid, all labels ignored.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <functional>
#include <numeric>

#include "kernels/cpu/ops.hpp"
#include "src/common/rng.hpp"

namespace lt::ops {
namespace {

template <class T>
using Tensors = std::vector<std::vector<T>>;
using Vec = std::vector<double>;

struct OpCase {
  std::string name;
  Tensors<double> inputs;  // the differentiable inputs
  std::function<Vec(const Tensors<double>&)> forward;
  std::function<std::vector<float>(const Tensors<float>&)> forward_float;
  std::function<Vec(const Tensors<double>&)> reference;  // plain loops; null: forward is its own spec
  std::function<Tensors<double>(const Tensors<double>&, const Vec&)> backward;
  std::function<Tensors<float>(const Tensors<float>&, const std::vector<float>&)> backward_float;
};

void PrintTo(const OpCase& c, std::ostream* os) {
  *os << c.name;
}

// Builds a case from generic lambdas forward(inputs) and backward(inputs, dout), instantiated for
// double and float.
template <class Forward, class Backward>
OpCase make_case(std::string name, Tensors<double> inputs, Forward forward, Backward backward,
                 std::function<Vec(const Tensors<double>&)> reference) {
  OpCase c;
  c.name = std::move(name);
  c.inputs = std::move(inputs);
  c.forward = [forward](const Tensors<double>& in) { return forward(in); };
  c.forward_float = [forward](const Tensors<float>& in) { return forward(in); };
  c.backward = [backward](const Tensors<double>& in, const Vec& d) { return backward(in, d); };
  c.backward_float = [backward](const Tensors<float>& in, const std::vector<float>& d) { return backward(in, d); };
  c.reference = std::move(reference);
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
  auto forward = [=](const auto& x) {
    using T = typename std::decay_t<decltype(x[0])>::value_type;
    std::vector<T> y(size_t(rows * out));
    linear_forward(x[0].data(), x[1].data(), x[2].data(), y.data(), rows, in, out);
    return y;
  };
  auto backward = [=](const auto& x, const auto& dy) {
    using T = typename std::decay_t<decltype(dy)>::value_type;
    Tensors<T> d = {zeros_like(x[0]), zeros_like(x[1]), zeros_like(x[2])};
    linear_backward(x[0].data(), x[1].data(), dy.data(), d[0].data(), d[1].data(), d[2].data(), rows, in, out);
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
  return make_case("linear " + std::to_string(rows) + "x" + std::to_string(in) + "->" + std::to_string(out),
                   {random_vector(rows * in, 1), random_vector(size_t(out * in), 2), random_vector(out, 3)}, forward,
                   backward, reference);
}

OpCase conv_case(Conv2dShape s) {
  const size_t x_size = size_t(s.batch) * s.in_channels * s.height * s.width;
  const size_t w_size = size_t(s.out_channels) * s.in_channels * s.kernel * s.kernel;
  const size_t y_size = size_t(s.batch) * s.out_channels * s.out_height() * s.out_width();
  auto forward = [=](const auto& x) {
    using T = typename std::decay_t<decltype(x[0])>::value_type;
    std::vector<T> y(y_size), workspace;
    conv2d_forward(x[0].data(), x[1].data(), x[2].data(), y.data(), s, workspace);
    return y;
  };
  auto backward = [=](const auto& x, const auto& dy) {
    using T = typename std::decay_t<decltype(dy)>::value_type;
    Tensors<T> d = {zeros_like(x[0]), zeros_like(x[1]), zeros_like(x[2])};
    std::vector<T> workspace;
    conv2d_backward(x[0].data(), x[1].data(), dy.data(), d[0].data(), d[1].data(), d[2].data(), s, workspace);
    return d;
  };
  auto reference = [=](const Tensors<double>& x) {
    Vec y(y_size);
    const int ho = s.out_height(), wo = s.out_width(), k = s.kernel;
    for (int b = 0; b < s.batch; ++b)
      for (int o = 0; o < s.out_channels; ++o)
        for (int oy = 0; oy < ho; ++oy)
          for (int ox = 0; ox < wo; ++ox) {
            double sum = x[2][o];
            for (int c = 0; c < s.in_channels; ++c)
              for (int ky = 0; ky < k; ++ky)
                for (int kx = 0; kx < k; ++kx) {
                  const int iy = oy * s.stride - s.padding + ky, ix = ox * s.stride - s.padding + kx;
                  if (iy < 0 || iy >= s.height || ix < 0 || ix >= s.width) continue;
                  sum += x[0][((size_t(b) * s.in_channels + c) * s.height + iy) * s.width + ix] *
                         x[1][((size_t(o) * s.in_channels + c) * k + ky) * k + kx];
                }
            y[((size_t(b) * s.out_channels + o) * ho + oy) * wo + ox] = sum;
          }
    return y;
  };
  return make_case(
      "conv2d k" + std::to_string(s.kernel) + " s" + std::to_string(s.stride) + " p" + std::to_string(s.padding),
      {random_vector(x_size, 4), random_vector(w_size, 5), random_vector(s.out_channels, 6)}, forward, backward,
      reference);
}

OpCase conv_transpose_case(ConvTransposeShape s) {
  const int k = s.stride;
  const size_t x_size = size_t(s.batch) * s.in_channels * s.height * s.width;
  const size_t w_size = size_t(s.in_channels) * s.out_channels * k * k;
  const size_t y_size = size_t(s.batch) * s.out_channels * k * k * s.height * s.width;
  auto forward = [=](const auto& x) {
    using T = typename std::decay_t<decltype(x[0])>::value_type;
    std::vector<T> y(y_size), workspace;
    conv_transpose_forward(x[0].data(), x[1].data(), x[2].data(), y.data(), s, workspace);
    return y;
  };
  auto backward = [=](const auto& x, const auto& dy) {
    using T = typename std::decay_t<decltype(dy)>::value_type;
    Tensors<T> d = {zeros_like(x[0]), zeros_like(x[1]), zeros_like(x[2])};
    std::vector<T> workspace;
    conv_transpose_backward(x[0].data(), x[1].data(), dy.data(), d[0].data(), d[1].data(), d[2].data(), s, workspace);
    return d;
  };
  auto reference = [=](const Tensors<double>& x) {
    // PyTorch's definition: every input pixel scatters weight[c, o, :, :] into the k×k block it owns.
    Vec y(y_size, 0.0);
    const int H = k * s.height, W = k * s.width;
    for (int b = 0; b < s.batch; ++b)
      for (int o = 0; o < s.out_channels; ++o)
        for (int oy = 0; oy < H; ++oy)
          for (int ox = 0; ox < W; ++ox) {
            double sum = x[2][o];
            for (int c = 0; c < s.in_channels; ++c)
              sum += x[0][((size_t(b) * s.in_channels + c) * s.height + oy / k) * s.width + ox / k] *
                     x[1][((size_t(c) * s.out_channels + o) * k + oy % k) * k + ox % k];
            y[((size_t(b) * s.out_channels + o) * H + oy) * W + ox] = sum;
          }
    return y;
  };
  return make_case("conv_transpose k" + std::to_string(k),
                   {random_vector(x_size, 7), random_vector(w_size, 8), random_vector(s.out_channels, 9)}, forward,
                   backward, reference);
}

// Training-mode batch norm as a layer does it: sums, mean/invstd, apply; backward: sums, apply.
OpCase batchnorm_case(BatchNormShape s, const std::string& what) {
  const size_t n = size_t(s.outer * s.channels * s.inner);
  constexpr double kEps = 1e-5;
  auto statistics = [=](const auto& x) {
    using T = typename std::decay_t<decltype(x)>::value_type;
    std::vector<double> sums(2 * s.channels);
    batchnorm_sums(x.data(), s, sums.data());
    std::vector<T> mean(s.channels), invstd(s.channels);
    for (int c = 0; c < s.channels; ++c) {
      const double m = sums[c] / double(s.count()), var = sums[s.channels + c] / double(s.count()) - m * m;
      mean[c] = T(m);
      invstd[c] = T(1.0 / std::sqrt(var + kEps));
    }
    return std::make_pair(mean, invstd);
  };
  auto forward = [=](const auto& x) {
    using T = typename std::decay_t<decltype(x[0])>::value_type;
    const auto [mean, invstd] = statistics(x[0]);
    std::vector<T> y(n);
    batchnorm_apply(x[0].data(), mean.data(), invstd.data(), x[1].data(), x[2].data(), y.data(), s);
    return y;
  };
  auto backward = [=](const auto& x, const auto& dy) {
    using T = typename std::decay_t<decltype(dy)>::value_type;
    const auto [mean, invstd] = statistics(x[0]);
    std::vector<double> sums(2 * s.channels);
    batchnorm_backward_sums(x[0].data(), dy.data(), mean.data(), invstd.data(), s, sums.data());
    Tensors<T> d = {zeros_like(x[0]), zeros_like(x[1]), zeros_like(x[2])};
    batchnorm_backward_apply(x[0].data(), dy.data(), mean.data(), invstd.data(), x[1].data(), sums.data(),
                             double(s.count()), d[0].data(), d[1].data(), d[2].data(), s);
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
        }
    }
    return y;
  };
  return make_case(
      "batchnorm " + what,
      {random_vector(n, 10, -2, 3), random_vector(s.channels, 11, 0.5, 1.5), random_vector(s.channels, 12)}, forward,
      backward, reference);
}

OpCase relu_case() {
  // Values kept away from 0, where ReLU has no derivative.
  Vec x = random_vector(40, 13);
  for (double& v : x) v += v > 0 ? 0.05 : -0.05;
  auto forward = [](const auto& in) {
    auto y = in[0];
    relu_forward(in[0].data(), y.data(), int64_t(y.size()));
    return y;
  };
  auto backward = [](const auto& in, const auto& dy) {
    auto y = in[0];
    relu_forward(in[0].data(), y.data(), int64_t(y.size()));
    auto d = Tensors<typename std::decay_t<decltype(dy)>::value_type>{zeros_like(in[0])};
    relu_backward(y.data(), dy.data(), d[0].data(), int64_t(y.size()));
    return d;
  };
  auto reference = [](const Tensors<double>& in) {
    Vec y = in[0];
    for (double& v : y) v = std::max(v, 0.0);
    return y;
  };
  return make_case("relu", {x}, forward, backward, reference);
}

OpCase concat_case() {
  const int ca = 2, cb = 3, outer = 2, inner = 4;
  auto forward = [=](const auto& in) {
    std::vector<typename std::decay_t<decltype(in[0])>::value_type> out(size_t(outer * (ca + cb) * inner));
    concat_channels(in[0].data(), ca, in[1].data(), cb, outer, inner, out.data());
    return out;
  };
  auto backward = [=](const auto& in, const auto& dout) {
    auto d = Tensors<typename std::decay_t<decltype(dout)>::value_type>{zeros_like(in[0]), zeros_like(in[1])};
    split_channels(dout.data(), ca, cb, outer, inner, d[0].data(), d[1].data());
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
  return make_case("concat", {random_vector(outer * ca * inner, 14), random_vector(outer * cb * inner, 15)}, forward,
                   backward, reference);
}

// Grid of 2 maps of 2x3 cells; `point_cell` says where each point falls (-1: outside the grid).
constexpr int kMaps = 2, kCellsPerMap = 6;

OpCase voxelize_case(const std::string& what, std::vector<int64_t> point_cell, int channels) {
  const auto index = std::make_shared<CellIndex>(build_cell_index(point_cell, kMaps * kCellsPerMap));
  const int64_t n = int64_t(point_cell.size());
  const size_t grid_size = size_t(kMaps) * channels * kCellsPerMap;
  auto forward = [=](const auto& in) {
    std::vector<typename std::decay_t<decltype(in[0])>::value_type> grid(grid_size);
    std::vector<int64_t> argmax(size_t(index->occupied() * channels));
    voxelize_max_forward(in[0].data(), *index, channels, kCellsPerMap, grid.data(), argmax.data());
    return grid;
  };
  auto backward = [=](const auto& in, const auto& dgrid) {
    using T = typename std::decay_t<decltype(dgrid)>::value_type;
    std::vector<T> grid(grid_size);
    std::vector<int64_t> argmax(size_t(index->occupied() * channels));
    voxelize_max_forward(in[0].data(), *index, channels, kCellsPerMap, grid.data(), argmax.data());
    Tensors<T> d = {zeros_like(in[0])};
    voxelize_max_backward(dgrid.data(), *index, argmax.data(), channels, kCellsPerMap, d[0].data());
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
  return make_case("voxelize_max " + what, {random_vector(size_t(n * channels), 16)}, forward, backward, reference);
}

OpCase scatter_mean_case(const std::string& what, std::vector<int64_t> point_cell, int channels) {
  const auto index = std::make_shared<CellIndex>(build_cell_index(point_cell, kMaps * kCellsPerMap));
  const int64_t n = int64_t(point_cell.size());
  auto forward = [=](const auto& in) {
    std::vector<typename std::decay_t<decltype(in[0])>::value_type> mean(size_t(index->occupied() * channels));
    scatter_mean_forward(in[0].data(), *index, channels, mean.data());
    return mean;
  };
  auto backward = [=](const auto& in, const auto& dmean) {
    auto d = Tensors<typename std::decay_t<decltype(dmean)>::value_type>{zeros_like(in[0])};
    scatter_mean_backward(dmean.data(), *index, channels, d[0].data());
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
  return make_case("scatter_mean " + what, {random_vector(size_t(n * channels), 17)}, forward, backward, reference);
}

OpCase devoxelize_case(const std::string& what, std::vector<int64_t> point_cell, int channels) {
  const auto index = std::make_shared<CellIndex>(build_cell_index(point_cell, kMaps * kCellsPerMap));
  const int64_t n = int64_t(point_cell.size());
  const size_t grid_size = size_t(kMaps) * channels * kCellsPerMap;
  auto forward = [=](const auto& in) {
    std::vector<typename std::decay_t<decltype(in[0])>::value_type> features(size_t(n * channels));
    devoxelize_forward(in[0].data(), *index, channels, kCellsPerMap, features.data());
    return features;
  };
  auto backward = [=](const auto& in, const auto& dfeatures) {
    auto d = Tensors<typename std::decay_t<decltype(dfeatures)>::value_type>{zeros_like(in[0])};
    devoxelize_backward(dfeatures.data(), *index, channels, kCellsPerMap, d[0].data());
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
  return make_case("devoxelize " + what, {random_vector(grid_size, 18)}, forward, backward, reference);
}

OpCase cross_entropy_case(const std::string& what, std::vector<uint8_t> labels, bool weighted) {
  const int classes = 5;
  const int64_t rows = int64_t(labels.size());
  const Vec weights = {0.0, 1.0, 2.5, 0.5, 1.5};
  auto forward = [=](const auto& in) {
    using T = typename std::decay_t<decltype(in[0])>::value_type;
    const std::vector<T> w(weights.begin(), weights.end());
    return std::vector<T>{
        T(cross_entropy<T>(in[0].data(), labels.data(), rows, classes, weighted ? w.data() : nullptr, 0, nullptr))};
  };
  auto backward = [=](const auto& in, const auto& dloss) {
    using T = typename std::decay_t<decltype(dloss)>::value_type;
    const std::vector<T> w(weights.begin(), weights.end());
    Tensors<T> d = {zeros_like(in[0])};
    cross_entropy(in[0].data(), labels.data(), rows, classes, weighted ? w.data() : nullptr, 0, d[0].data());
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
  return make_case("cross_entropy " + what, {random_vector(size_t(rows * classes), 19, -3, 3)}, forward, backward,
                   reference);
}

// Heatmap logits against targets: object centres (1), Gaussian shoulders, background (0), and two
// logits whose sigmoid the clamp holds (no gradient through it).
OpCase focal_loss_case() {
  const Vec targets = {1, 0, 0.5, 0, 0.9, 1, 0, 0.2, 0, 0.01, 1, 0};
  Vec logits = random_vector(targets.size(), 20, -3, 3);
  logits[3] = 12;    // p > 1 − 1e-4: clamped
  logits[10] = -12;  // p < 1e-4 at a centre: clamped
  const int64_t n = int64_t(targets.size());
  auto forward = [=](const auto& in) {
    using T = typename std::decay_t<decltype(in[0])>::value_type;
    const std::vector<T> g(targets.begin(), targets.end());
    return std::vector<T>{T(focal_loss<T>(in[0].data(), g.data(), n, nullptr))};
  };
  auto backward = [=](const auto& in, const auto& dloss) {
    using T = typename std::decay_t<decltype(dloss)>::value_type;
    const std::vector<T> g(targets.begin(), targets.end());
    Tensors<T> d = {zeros_like(in[0])};
    focal_loss<T>(in[0].data(), g.data(), n, d[0].data());
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
  return make_case("focal_loss", {logits}, forward, backward, reference);
}

// Regression outputs gathered at object centres, a position repeated (two objects in one cell).
OpCase gather_positions_case() {
  const int channels = 3;
  const int64_t plane = 6, batch = 2;
  const std::vector<int64_t> positions = {0, 7, 7, 11, 3};
  const int64_t k = int64_t(positions.size());
  auto forward = [=](const auto& in) {
    using T = typename std::decay_t<decltype(in[0])>::value_type;
    std::vector<T> rows(size_t(k * channels));
    gather_positions_forward(in[0].data(), positions.data(), k, channels, plane, rows.data());
    return rows;
  };
  auto backward = [=](const auto& in, const auto& drows) {
    using T = typename std::decay_t<decltype(drows)>::value_type;
    Tensors<T> d = {zeros_like(in[0])};
    gather_positions_backward(drows.data(), positions.data(), k, channels, plane, d[0].data());
    return d;
  };
  auto reference = [=](const Tensors<double>& in) {
    Vec rows;
    for (int64_t position : positions)
      for (int c = 0; c < channels; ++c)
        rows.push_back(in[0][size_t((position / plane * channels + c) * plane + position % plane)]);
    return rows;
  };
  return make_case("gather_positions", {random_vector(size_t(batch * channels * plane), 21)}, forward, backward,
                   reference);
}

OpCase l1_loss_case() {
  const int64_t rows = 4;
  const int channels = 3;
  const Vec target = random_vector(size_t(rows * channels), 22);
  auto forward = [=](const auto& in) {
    using T = typename std::decay_t<decltype(in[0])>::value_type;
    const std::vector<T> t(target.begin(), target.end());
    return std::vector<T>{T(l1_loss<T>(in[0].data(), t.data(), rows, channels, nullptr))};
  };
  auto backward = [=](const auto& in, const auto& dloss) {
    using T = typename std::decay_t<decltype(dloss)>::value_type;
    const std::vector<T> t(target.begin(), target.end());
    Tensors<T> d = {zeros_like(in[0])};
    l1_loss<T>(in[0].data(), t.data(), rows, channels, d[0].data());
    for (T& v : d[0]) v *= dloss[0];
    return d;
  };
  auto reference = [=](const Tensors<double>& in) {
    double loss = 0;
    for (size_t i = 0; i < target.size(); ++i) loss += std::abs(in[0][i] - target[i]);
    return Vec{loss};
  };
  return make_case("l1_loss", {random_vector(size_t(rows * channels), 23)}, forward, backward, reference);
}

std::vector<OpCase> op_table() {
  // Points in cells: several per cell, an empty cell (3), points outside the grid, both maps used.
  const std::vector<int64_t> scattered = {0, 0, 1, 4, 4, 4, -1, 7, 11, 11, 6, -1, 2};
  const std::vector<int64_t> one_cell(9, 5);
  const std::vector<int64_t> empty_frame = {};
  return {
      linear_case(7, 4, 3),
      linear_case(0, 4, 3),  // an empty frame
      conv_case({2, 3, 4, 5, 6, 3, 1, 1}),
      conv_case({2, 3, 4, 7, 6, 3, 2, 1}),
      conv_case({2, 3, 4, 4, 5, 1, 1, 0}),
      conv_case({1, 3, 2, 5, 4, 1, 2, 0}),
      conv_transpose_case({2, 3, 5, 3, 4, 2}),
      conv_transpose_case({2, 3, 4, 3, 2, 1}),
      conv_transpose_case({1, 2, 3, 2, 3, 4}),
      batchnorm_case({9, 3, 1}, "over points (N, C)"),
      batchnorm_case({2, 3, 20}, "over maps (B, C, H·W)"),
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
  for (size_t i = 0; i < got.size(); ++i) EXPECT_NEAR(got[i], want[i], 1e-4 * (1 + std::abs(want[i])));
  const Vec r = random_vector(want.size(), 98);
  const Tensors<double> grad = c.backward(c.inputs, r);
  const Tensors<float> grad_float = c.backward_float(inputs, std::vector<float>(r.begin(), r.end()));
  for (size_t t = 0; t < grad.size(); ++t)
    for (size_t i = 0; i < grad[t].size(); ++i)
      EXPECT_NEAR(grad_float[t][i], grad[t][i], 1e-3 * (1 + std::abs(grad[t][i])));
}

std::string case_name(const ::testing::TestParamInfo<OpCase>& info) {
  std::string name = std::to_string(info.index) + "_" + info.param.name;
  for (char& ch : name)
    if (!std::isalnum(static_cast<unsigned char>(ch))) ch = '_';
  return name;
}

INSTANTIATE_TEST_SUITE_P(Ops, OpTable, ::testing::ValuesIn(op_table()), case_name);

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
  double first[32], second[32];
  batchnorm_sums(xf.data(), BatchNormShape{50000, 16, 1}, first);
  batchnorm_sums(xf.data(), BatchNormShape{50000, 16, 1}, second);
  EXPECT_EQ(0, std::memcmp(first, second, sizeof first));
}

}  // namespace
}  // namespace lt::ops
