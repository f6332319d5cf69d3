#pragma once
// Layers with explicit forward and backward (no autograd tape; llm.c style). A layer keeps what its
// backward needs (its input pointer is passed again to backward; its own outputs it owns). All
// parameter gradients accumulate (+=) into the ParamStore's flat gradient buffer.
//
// Tensor shapes: points (N, C); maps (B, C, H, W).
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "kernels/cpu/ops.hpp"
#include "src/nn/params.hpp"

namespace lt {

class Rng;

// PyTorch's default initialisation: weights and biases U(-1/√fan_in, 1/√fan_in).
void init_uniform(ParamStore& params, int64_t offset, int64_t size, int64_t fan_in, Rng& rng);

struct Linear {
  int in = 0, out = 0;
  int64_t weight = -1, bias = -1;  // (out, in), (out) — bias -1 when absent
  void declare(ParamStore& params, const std::string& name, int in_features, int out_features, bool with_bias);
  void init(ParamStore& params, Rng& rng) const;
  void forward(const ParamStore& params, const float* x, int64_t rows, float* y) const;
  void backward(ParamStore& params, const float* x, const float* dy, int64_t rows, float* dx) const;
  int64_t macs(int64_t rows) const { return rows * in * out; }
};

// Sums `count` doubles over ranks in place: how SyncBN reaches the other ranks without knowing MPI.
using SumOverRanks = std::function<void(double* values, int64_t count)>;

// BatchNorm over (outer, C, inner) with running statistics (momentum 0.1, eps 1e-5, unbiased running
// variance, as torch.nn.BatchNorm1d/2d). In training mode it normalises with the batch statistics; with
// `sync` set (SyncBN, torch.nn.SyncBatchNorm) the batch is that of all ranks: forward sums the
// per-channel Σx, Σx² and the count over ranks, backward sums Σdy, Σdy·x̂ for dx (the parameter
// gradients keep this rank's share: the gradient all-reduce adds the rest). A rank with no points
// still takes part with zeros.
struct BatchNorm {
  SumOverRanks sync;  // empty: statistics of this rank's batch only
  int channels = 0;
  int64_t weight = -1, bias = -1;               // params
  int64_t running_mean = -1, running_var = -1;  // buffers
  std::vector<float> mean, invstd;              // saved by forward for backward
  double count = 0;
  void declare(ParamStore& params, ParamStore& buffers, const std::string& name, int num_channels);
  void init(ParamStore& params, ParamStore& buffers) const;
  void forward(const ParamStore& params, ParamStore& buffers, const float* x, const ops::BatchNormShape& shape,
               bool training, float* y);
  void backward(ParamStore& params, const float* x, const float* dy, const ops::BatchNormShape& shape, float* dx) const;
};

struct Conv2d {
  ops::Conv2dShape shape{};  // batch, height, width set per call
  int64_t weight = -1, bias = -1;
  void declare(ParamStore& params, const std::string& name, int in, int out, int kernel, int stride, bool with_bias);
  void init(ParamStore& params, Rng& rng) const;
};

// Kernel = stride (1, 2, 4, …): each input pixel owns a stride×stride block of the output.
struct ConvTranspose {
  ops::ConvTransposeShape shape{};
  int64_t weight = -1, bias = -1;  // (in, out, k, k), (out)
  void declare(ParamStore& params, const std::string& name, int in, int out, int stride, bool with_bias);
  void init(ParamStore& params, Rng& rng) const;
};

// Linear + BN + ReLU over points: the point MLPs' unit. PyTorch names: <name>.0 (linear), <name>.1 (bn).
struct LinearBnRelu {
  Linear linear;
  BatchNorm bn;
  std::vector<float> pre, out;  // (N, out) before BN, after ReLU
  void declare(ParamStore& params, ParamStore& buffers, const std::string& name, int in, int out_features);
  void init(ParamStore& params, ParamStore& buffers, Rng& rng) const;
  const float* forward(const ParamStore& params, ParamStore& buffers, const float* x, int64_t rows, bool training);
  // dx may be null. `dout` is overwritten (used as scratch).
  void backward(ParamStore& params, const float* x, std::vector<float>& dout, int64_t rows, float* dx);
  int channels() const { return linear.out; }
  int64_t first_param() const { return linear.weight; }
};

// Conv (3x3 or 1x1; stride 1 or 2) + BN + ReLU over maps, or ConvTranspose (k = stride) + BN + ReLU.
struct ConvBnRelu {
  bool transpose = false;
  Conv2d conv;
  ConvTranspose deconv;
  BatchNorm bn;
  int batch = 0, in_height = 0, in_width = 0;
  std::vector<float> pre, out, workspace;
  void declare(ParamStore& params, ParamStore& buffers, const std::string& name, int in, int out_channels, int stride);
  void declare_transpose(ParamStore& params, ParamStore& buffers, const std::string& name, int in, int out_channels,
                         int stride = 2);
  void init(ParamStore& params, ParamStore& buffers, Rng& rng) const;
  const float* forward(const ParamStore& params, ParamStore& buffers, const float* x, int batch_size, int height,
                       int width, bool training);
  void backward(ParamStore& params, const float* x, std::vector<float>& dout, float* dx);
  int out_channels() const;
  int64_t first_param() const { return transpose ? deconv.weight : conv.weight; }
  int out_height() const;
  int out_width() const;
  int64_t macs() const;
};

}  // namespace lt
