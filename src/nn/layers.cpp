#include "src/nn/layers.hpp"

#include <cmath>

#include "src/common/rng.hpp"

namespace lt {

DeviceParams host_params(ParamStore& params, ParamStore& buffers) {
  return {&cpu_backend(), params.values().data(), params.grads().empty() ? nullptr : params.grads().data(),
          buffers.values().data()};
}

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

void Linear::forward(const DeviceParams& p, const float* x, int64_t rows, float* y) const {
  p.be().linear_forward(x, p.value(weight), bias >= 0 ? p.value(bias) : nullptr, y, rows, in, out);
}

void Linear::backward(const DeviceParams& p, const float* x, const float* dy, int64_t rows, float* dx) const {
  p.be().linear_backward(x, p.value(weight), dy, dx, p.grad(weight), bias >= 0 ? p.grad(bias) : nullptr, rows, in, out);
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

void BatchNorm::forward(const DeviceParams& p, const float* x, const ops::BatchNormShape& shape, bool training,
                        float* y, bool with_relu) {
  const Backend& be = p.be();
  mean.resize(be, size_t(channels));
  invstd.resize(be, size_t(channels));
  sums.resize(be, 2 * size_t(channels) + 1);
  if (training) {
    be.batchnorm_sums(x, shape, sums.data());
    if (sync) sync(sums.data(), 2 * int64_t(channels) + 1);  // the sums and the count of every rank
  }
  be.batchnorm_stats(sums.data(), channels, training, mean.data(), invstd.data(), p.buffer(running_mean),
                     p.buffer(running_var));
  if (with_relu)
    be.batchnorm_relu_apply(x, mean.data(), invstd.data(), p.value(weight), p.value(bias), y, shape);
  else
    be.batchnorm_apply(x, mean.data(), invstd.data(), p.value(weight), p.value(bias), y, shape);
}

void BatchNorm::backward(const DeviceParams& p, const float* x, const float* dy, const ops::BatchNormShape& shape,
                         float* dx, bool with_relu) {
  const Backend& be = p.be();
  const float *gamma = p.value(weight), *beta = p.value(bias);
  const auto apply = [&](float* input_grad, float* dgamma, float* dbeta) {
    if (with_relu)
      be.batchnorm_relu_backward_apply(x, dy, mean.data(), invstd.data(), gamma, beta, sums.data(), input_grad, dgamma,
                                       dbeta, shape);
    else
      be.batchnorm_backward_apply(x, dy, mean.data(), invstd.data(), gamma, sums.data(), input_grad, dgamma, dbeta,
                                  shape);
  };
  if (with_relu)
    be.batchnorm_relu_backward_sums(x, dy, mean.data(), invstd.data(), gamma, beta, shape, sums.data());
  else
    be.batchnorm_backward_sums(x, dy, mean.data(), invstd.data(), shape, sums.data());
  if (!sync) {
    apply(dx, p.grad(weight), p.grad(bias));
    return;
  }
  // The parameter gradients keep this rank's sums (the gradient all-reduce adds the others'); dx takes
  // the sums over all ranks.
  apply(nullptr, p.grad(weight), p.grad(bias));
  sync(sums.data(), 2 * int64_t(channels));  // sums[2C], the forward's count, is already every rank's
  apply(dx, nullptr, nullptr);
}

void FoldedWeights::fold(const Backend& backend, const ParamStore& params, const ParamStore& buffers, int64_t offset,
                         int64_t count, int64_t inner, const BatchNorm& bn) {
  const int channels = bn.channels;
  std::vector<double> scale(static_cast<size_t>(channels));
  std::vector<float> b(static_cast<size_t>(channels)), w(static_cast<size_t>(count));
  for (int c = 0; c < channels; ++c) {
    const double var = double(buffers.value(bn.running_var)[c]), mean = double(buffers.value(bn.running_mean)[c]);
    scale[size_t(c)] = double(params.value(bn.weight)[c]) / std::sqrt(var + 1e-5);
    b[size_t(c)] = float(double(params.value(bn.bias)[c]) - scale[size_t(c)] * mean);
  }
  const float* source = params.value(offset);
  for (int64_t i = 0; i < count; ++i) w[size_t(i)] = float(double(source[i]) * scale[size_t((i / inner) % channels)]);
  weight.upload(backend, w);
  bias.upload(backend, b);
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

const float* LinearBnRelu::forward(const DeviceParams& p, const float* x, int64_t rows, bool training) {
  pre.resize(p.be(), size_t(rows) * linear.out);
  linear.forward(p, x, rows, pre.data());
  return forward_after_linear(p, rows, training);
}

const float* LinearBnRelu::forward_after_linear(const DeviceParams& p, int64_t rows, bool training) {
  out.resize(p.be(), pre.size());
  bn.forward(p, pre.data(), {rows, linear.out, 1}, training, out.data(), true);
  return out.data();
}

void LinearBnRelu::backward(const DeviceParams& p, const float* x, float* dout, int64_t rows, float* dx) {
  linear.backward(p, x, backward_to_linear(p, dout, rows), rows, dx);
}

const float* LinearBnRelu::backward_to_linear(const DeviceParams& p, float* dout, int64_t rows) {
  dpre.resize(p.be(), pre.size());
  bn.backward(p, pre.data(), dout, {rows, linear.out, 1}, dpre.data(), true);
  return dpre.data();
}

void LinearBnRelu::fold(const Backend& backend, const ParamStore& params, const ParamStore& buffers) {
  folded.fold(backend, params, buffers, linear.weight, int64_t(linear.out) * linear.in, linear.in, bn);
}

const float* LinearBnRelu::forward_folded(const Backend& backend, const float* x, int64_t rows) {
  out.resize(backend, size_t(rows) * linear.out);
  backend.linear_relu_forward(x, folded.weight.data(), folded.bias.data(), out.data(), rows, linear.in, linear.out);
  return out.data();
}

void LinearBnRelu::forward_folded_voxelize(const Backend& backend, const float* x, int64_t rows,
                                           const ops::CellIndexView& cells, int64_t cells_per_map, Buffer<float>& grid,
                                           bool keep_points) {
  if (keep_points) out.resize(backend, size_t(rows) * linear.out);
  grid.resize(backend, size_t(cells.num_cells) * linear.out);
  backend.linear_relu_voxelize_max_forward(x, folded.weight.data(), folded.bias.data(),
                                           keep_points ? out.data() : nullptr, rows, linear.in, linear.out, cells,
                                           cells_per_map, grid.data());
}

void concat_activations(const Backend& backend, const float* x, int ca, const float* y, int cb, int64_t outer,
                        int64_t inner, float* out, bool narrow) {
  if (!narrow) return backend.concat_channels(x, ca, y, cb, outer, inner, out);
  const size_t bytes = 2, first = size_t(ca * inner), second = size_t(cb * inner);
  auto* to = reinterpret_cast<char*>(out);
  const auto *from_x = reinterpret_cast<const char*>(x), *from_y = reinterpret_cast<const char*>(y);
  for (int64_t o = 0; o < outer; ++o) {
    backend.copy(to + bytes * size_t(o) * (first + second), from_x + bytes * size_t(o) * first, bytes * first);
    backend.copy(to + bytes * (size_t(o) * (first + second) + first), from_y + bytes * size_t(o) * second,
                 bytes * second);
  }
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

const float* ConvBnRelu::forward(const DeviceParams& p, const float* x, int batch_size, int height, int width,
                                 bool training, bool x_is_narrow) {
  batch = batch_size, in_height = height, in_width = width;
  x_narrow = x_is_narrow;
  out_narrow = narrow_activations(p.be());
  const int64_t plane = int64_t(out_height()) * out_width();
  pre.resize(p.be(), size_t(out_count()));
  out.resize(p.be(), activation_floats(pre.size(), out_narrow));
  if (transpose) {
    auto s = deconv.shape;
    s.batch = batch, s.height = height, s.width = width, s.x_narrow = x_narrow;
    p.be().conv_transpose_forward(x, p.value(deconv.weight), nullptr, pre.data(), s);
  } else {
    auto s = conv.shape;
    s.batch = batch, s.height = height, s.width = width, s.x_narrow = x_narrow;
    p.be().conv2d_forward(x, p.value(conv.weight), nullptr, pre.data(), s);
  }
  bn.forward(p, pre.data(), {batch, out_channels(), plane, out_narrow}, training, out.data(), true);
  return out.data();
}

void ConvBnRelu::backward(const DeviceParams& p, const float* x, float* dout, float* dx) {
  const int64_t plane = int64_t(out_height()) * out_width();
  dpre.resize(p.be(), pre.size());
  bn.backward(p, pre.data(), dout, {batch, out_channels(), plane}, dpre.data(), true);
  if (transpose) {
    auto s = deconv.shape;
    s.batch = batch, s.height = in_height, s.width = in_width, s.x_narrow = x_narrow;
    p.be().conv_transpose_backward(x, p.value(deconv.weight), dpre.data(), dx, p.grad(deconv.weight), nullptr, s);
  } else {
    auto s = conv.shape;
    s.batch = batch, s.height = in_height, s.width = in_width, s.x_narrow = x_narrow;
    p.be().conv2d_backward(x, p.value(conv.weight), dpre.data(), dx, p.grad(conv.weight), nullptr, s);
  }
}

void ConvBnRelu::fold(const Backend& backend, const ParamStore& params, const ParamStore& buffers) {
  if (transpose) {  // (in, out, k, k): the output channel is the second index
    const int64_t kk = int64_t(deconv.shape.stride) * deconv.shape.stride;
    folded.fold(backend, params, buffers, deconv.weight,
                int64_t(deconv.shape.in_channels) * deconv.shape.out_channels * kk, kk, bn);
  } else {
    const int64_t per_output = int64_t(conv.shape.in_channels) * conv.shape.kernel * conv.shape.kernel;
    folded.fold(backend, params, buffers, conv.weight, conv.shape.out_channels * per_output, per_output, bn);
  }
}

const float* ConvBnRelu::forward_folded(const Backend& backend, const float* x, int batch_size, int height, int width) {
  batch = batch_size, in_height = height, in_width = width;
  x_narrow = out_narrow = false;
  out.resize(backend, size_t(batch) * out_channels() * out_height() * out_width());
  if (transpose) {
    auto s = deconv.shape;
    s.batch = batch, s.height = height, s.width = width;
    backend.conv_transpose_relu_forward(x, folded.weight.data(), folded.bias.data(), out.data(), s);
  } else {
    auto s = conv.shape;
    s.batch = batch, s.height = height, s.width = width;
    backend.conv2d_relu_forward(x, folded.weight.data(), folded.bias.data(), out.data(), s);
  }
  return out.data();
}

}  // namespace lt
