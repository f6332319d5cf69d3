#include "src/nn/layers.hpp"

#include <cmath>

#include "src/common/rng.hpp"

namespace lt {

void init_uniform(ParamStore& params, int64_t offset, int64_t size, int64_t fan_in, Rng& rng) {
  const double bound = 1.0 / std::sqrt(double(std::max<int64_t>(1, fan_in)));
  float* p = params.value(offset);
  for (int64_t i = 0; i < size; ++i) p[i] = float(rng.uniform(-bound, bound));
}

// ---- Linear -----------------------------------------------------------------------------------

void Linear::declare(ParamStore& params, const std::string& name, int in_features, int out_features, bool with_bias) {
  in = in_features;
  out = out_features;
  weight = params.add(name + ".weight", {out, in});
  bias = with_bias ? params.add(name + ".bias", {out}, false) : -1;
}

void Linear::init(ParamStore& params, Rng& rng) const {
  init_uniform(params, weight, int64_t(out) * in, in, rng);
  if (bias >= 0) init_uniform(params, bias, out, in, rng);
}

void Linear::forward(const ParamStore& params, const float* x, int64_t rows, float* y) const {
  ops::linear_forward(x, params.value(weight), bias >= 0 ? params.value(bias) : nullptr, y, rows, in, out);
}

void Linear::backward(ParamStore& params, const float* x, const float* dy, int64_t rows, float* dx) const {
  ops::linear_backward(x, params.value(weight), dy, dx, params.grad(weight), bias >= 0 ? params.grad(bias) : nullptr,
                       rows, in, out);
}

// ---- BatchNorm --------------------------------------------------------------------------------

void BatchNorm::declare(ParamStore& params, ParamStore& buffers, const std::string& name, int num_channels) {
  channels = num_channels;
  weight = params.add(name + ".weight", {channels}, false);
  bias = params.add(name + ".bias", {channels}, false);
  running_mean = buffers.add(name + ".running_mean", {channels});
  running_var = buffers.add(name + ".running_var", {channels});
}

void BatchNorm::init(ParamStore& params, ParamStore& buffers) const {
  std::fill(params.value(weight), params.value(weight) + channels, 1.f);
  std::fill(params.value(bias), params.value(bias) + channels, 0.f);
  std::fill(buffers.value(running_mean), buffers.value(running_mean) + channels, 0.f);
  std::fill(buffers.value(running_var), buffers.value(running_var) + channels, 1.f);
}

void BatchNorm::forward(const ParamStore& params, ParamStore& buffers, const float* x, const ops::BatchNormShape& shape,
                        bool training, float* y) {
  constexpr double kEps = 1e-5, kMomentum = 0.1;
  mean.resize(channels);
  invstd.resize(channels);
  float* run_mean = buffers.value(running_mean);
  float* run_var = buffers.value(running_var);
  count = double(shape.count());
  std::vector<double> sums;
  if (training) {
    sums.resize(2 * size_t(channels) + 1);
    ops::batchnorm_sums(x, shape, sums.data());
    sums.back() = count;
    if (sync) sync(sums.data(), int64_t(sums.size()));
    count = sums.back();
  }
  if (training && count > 0) {
    for (int c = 0; c < channels; ++c) {
      const double m = sums[c] / count, var = std::max(0.0, sums[channels + c] / count - m * m);
      mean[c] = float(m);
      invstd[c] = float(1.0 / std::sqrt(var + kEps));
      const double unbiased = count > 1 ? var * count / (count - 1) : var;
      run_mean[c] = float((1 - kMomentum) * run_mean[c] + kMomentum * m);
      run_var[c] = float((1 - kMomentum) * run_var[c] + kMomentum * unbiased);
    }
  } else {
    for (int c = 0; c < channels; ++c) {
      mean[c] = run_mean[c];
      invstd[c] = float(1.0 / std::sqrt(double(run_var[c]) + kEps));
    }
  }
  ops::batchnorm_apply(x, mean.data(), invstd.data(), params.value(weight), params.value(bias), y, shape);
}

void BatchNorm::backward(ParamStore& params, const float* x, const float* dy, const ops::BatchNormShape& shape,
                         float* dx) const {
  std::vector<double> sums(2 * size_t(channels));
  ops::batchnorm_backward_sums(x, dy, mean.data(), invstd.data(), shape, sums.data());
  if (!sync) {
    ops::batchnorm_backward_apply(x, dy, mean.data(), invstd.data(), params.value(weight), sums.data(), count, dx,
                                  params.grad(weight), params.grad(bias), shape);
    return;
  }
  ops::batchnorm_backward_apply<float>(x, dy, mean.data(), invstd.data(), params.value(weight), sums.data(), count,
                                       nullptr, params.grad(weight), params.grad(bias), shape);
  sync(sums.data(), int64_t(sums.size()));
  ops::batchnorm_backward_apply<float>(x, dy, mean.data(), invstd.data(), params.value(weight), sums.data(), count, dx,
                                       nullptr, nullptr, shape);
}

// ---- convolutions -------------------------------------------------------------------------------

void Conv2d::declare(ParamStore& params, const std::string& name, int in, int out, int kernel, int stride,
                     bool with_bias) {
  shape = ops::Conv2dShape{0, in, out, 0, 0, kernel, stride, kernel / 2};
  weight = params.add(name + ".weight", {out, in, kernel, kernel});
  bias = with_bias ? params.add(name + ".bias", {out}, false) : -1;
}

void Conv2d::init(ParamStore& params, Rng& rng) const {
  const int64_t fan_in = int64_t(shape.in_channels) * shape.kernel * shape.kernel;
  init_uniform(params, weight, int64_t(shape.out_channels) * fan_in, fan_in, rng);
  if (bias >= 0) init_uniform(params, bias, shape.out_channels, fan_in, rng);
}

void ConvTranspose::declare(ParamStore& params, const std::string& name, int in, int out, int stride, bool with_bias) {
  shape = ops::ConvTransposeShape{0, in, out, 0, 0, stride};
  weight = params.add(name + ".weight", {in, out, stride, stride});
  bias = with_bias ? params.add(name + ".bias", {out}, false) : -1;
}

void ConvTranspose::init(ParamStore& params, Rng& rng) const {
  // PyTorch computes fan_in of a transposed conv's weight (in, out, k, k) as out·k·k.
  const int64_t fan_in = int64_t(shape.out_channels) * shape.stride * shape.stride;
  init_uniform(params, weight, int64_t(shape.in_channels) * fan_in, fan_in, rng);
  if (bias >= 0) init_uniform(params, bias, shape.out_channels, fan_in, rng);
}

// ---- blocks ------------------------------------------------------------------------------------

void LinearBnRelu::declare(ParamStore& params, ParamStore& buffers, const std::string& name, int in, int out_features) {
  linear.declare(params, name + ".0", in, out_features, false);  // BN follows: a bias would be redundant
  bn.declare(params, buffers, name + ".1", out_features);
}

void LinearBnRelu::init(ParamStore& params, ParamStore& buffers, Rng& rng) const {
  linear.init(params, rng);
  bn.init(params, buffers);
}

const float* LinearBnRelu::forward(const ParamStore& params, ParamStore& buffers, const float* x, int64_t rows,
                                   bool training) {
  pre.resize(size_t(rows) * linear.out);
  out.resize(pre.size());
  linear.forward(params, x, rows, pre.data());
  bn.forward(params, buffers, pre.data(), {rows, linear.out, 1}, training, out.data());
  ops::relu_forward(out.data(), out.data(), int64_t(out.size()));
  return out.data();
}

void LinearBnRelu::backward(ParamStore& params, const float* x, std::vector<float>& dout, int64_t rows, float* dx) {
  ops::relu_backward(out.data(), dout.data(), dout.data(), int64_t(out.size()));
  std::vector<float> dpre(pre.size());
  bn.backward(params, pre.data(), dout.data(), {rows, linear.out, 1}, dpre.data());
  linear.backward(params, x, dpre.data(), rows, dx);
}

void ConvBnRelu::declare(ParamStore& params, ParamStore& buffers, const std::string& name, int in, int out_channels,
                         int stride) {
  transpose = false;
  conv.declare(params, name + ".0", in, out_channels, 3, stride, false);
  bn.declare(params, buffers, name + ".1", out_channels);
}

void ConvBnRelu::declare_transpose(ParamStore& params, ParamStore& buffers, const std::string& name, int in,
                                   int out_channels, int stride) {
  transpose = true;
  deconv.declare(params, name + ".0", in, out_channels, stride, false);
  bn.declare(params, buffers, name + ".1", out_channels);
}

void ConvBnRelu::init(ParamStore& params, ParamStore& buffers, Rng& rng) const {
  if (transpose)
    deconv.init(params, rng);
  else
    conv.init(params, rng);
  bn.init(params, buffers);
}

int ConvBnRelu::out_channels() const {
  return transpose ? deconv.shape.out_channels : conv.shape.out_channels;
}
int ConvBnRelu::out_height() const {
  return transpose ? deconv.shape.stride * in_height : (in_height + 2 - 3) / conv.shape.stride + 1;
}
int ConvBnRelu::out_width() const {
  return transpose ? deconv.shape.stride * in_width : (in_width + 2 - 3) / conv.shape.stride + 1;
}

int64_t ConvBnRelu::macs() const {
  if (transpose) {
    auto s = deconv.shape;
    s.batch = batch, s.height = in_height, s.width = in_width;
    return s.macs();
  }
  auto s = conv.shape;
  s.batch = batch, s.height = in_height, s.width = in_width;
  return s.macs();
}

const float* ConvBnRelu::forward(const ParamStore& params, ParamStore& buffers, const float* x, int batch_size,
                                 int height, int width, bool training) {
  batch = batch_size, in_height = height, in_width = width;
  const int64_t plane = int64_t(out_height()) * out_width();
  pre.resize(size_t(batch) * out_channels() * plane);
  out.resize(pre.size());
  if (transpose) {
    auto s = deconv.shape;
    s.batch = batch, s.height = height, s.width = width;
    ops::conv_transpose_forward<float>(x, params.value(deconv.weight), nullptr, pre.data(), s, workspace);
  } else {
    auto s = conv.shape;
    s.batch = batch, s.height = height, s.width = width;
    ops::conv2d_forward<float>(x, params.value(conv.weight), nullptr, pre.data(), s, workspace);
  }
  bn.forward(params, buffers, pre.data(), {batch, out_channels(), plane}, training, out.data());
  ops::relu_forward(out.data(), out.data(), int64_t(out.size()));
  return out.data();
}

void ConvBnRelu::backward(ParamStore& params, const float* x, std::vector<float>& dout, float* dx) {
  const int64_t plane = int64_t(out_height()) * out_width();
  ops::relu_backward(out.data(), dout.data(), dout.data(), int64_t(out.size()));
  std::vector<float> dpre(pre.size());
  bn.backward(params, pre.data(), dout.data(), {batch, out_channels(), plane}, dpre.data());
  if (transpose) {
    auto s = deconv.shape;
    s.batch = batch, s.height = in_height, s.width = in_width;
    ops::conv_transpose_backward<float>(x, params.value(deconv.weight), dpre.data(), dx, params.grad(deconv.weight),
                                        nullptr, s, workspace);
  } else {
    auto s = conv.shape;
    s.batch = batch, s.height = in_height, s.width = in_width;
    ops::conv2d_backward<float>(x, params.value(conv.weight), dpre.data(), dx, params.grad(conv.weight), nullptr, s,
                                workspace);
  }
}

}  // namespace lt
