#pragma once
// Layers with explicit forward and backward (no autograd tape; llm.c style). A layer keeps what its
// backward needs (its input pointer is passed again to backward; its own outputs it owns, in Buffers of
// the backend that runs it). Every op goes through that backend (kernels/backend.hpp), so the same layer
// code runs on the CPU and on a GPU. All parameter gradients accumulate (+=) into the flat gradient
// buffer.
//
// Tensor shapes: points (N, C); maps (B, C, H, W).
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "kernels/backend.hpp"
#include "kernels/buffer.hpp"
#include "kernels/cpu/ops.hpp"
#include "src/common/params.hpp"

namespace lt {

class Rng;

// The flat buffers where the backend that runs the layers reads them: on the CPU the ParamStores'
// own arrays; on a GPU their copies in device memory (Model keeps those).
struct DeviceParams {
  const Backend* backend = nullptr;
  float* values = nullptr;   // parameters
  float* grads = nullptr;    // their gradients (+=)
  float* buffers = nullptr;  // BN running statistics
  const Backend& be() const { return *backend; }
  float* value(int64_t offset) const { return values + offset; }
  float* grad(int64_t offset) const { return grads + offset; }
  float* buffer(int64_t offset) const { return buffers + offset; }
};
// The CPU backend over host stores (buffers may have no gradients: then grads is null).
DeviceParams host_params(ParamStore& params, ParamStore& buffers);

// PyTorch's default initialisation: weights and biases U(-1/√fan_in, 1/√fan_in).
void init_uniform(ParamStore& params, int64_t offset, int64_t size, int64_t fan_in, Rng& rng);

struct Linear {
  int in = 0, out = 0;
  int64_t weight = -1, bias = -1;  // (out, in), (out) — bias -1 when absent
  void declare(ParamStore& params, const std::string& name, int in_features, int out_features, bool with_bias);
  void init(ParamStore& params, Rng& rng) const;
  void forward(const DeviceParams& p, const float* x, int64_t rows, float* y) const;
  void backward(const DeviceParams& p, const float* x, const float* dy, int64_t rows, float* dx) const;
  int64_t macs(int64_t rows) const { return rows * in * out; }
};

// Sums `count` doubles over ranks in place, in the memory of the model's backend (the GPU's, on a GPU):
// how SyncBN reaches the other ranks without knowing MPI or NCCL. The ops queued after it see the sums.
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
  Buffer<float> mean, invstd;                   // (C) saved by forward for backward
  Buffer<double> sums;  // (2C + 1): the last forward's or backward's sums, then the forward's count
  void declare(ParamStore& params, ParamStore& buffers, const std::string& name, int num_channels);
  void init(ParamStore& params, ParamStore& buffers) const;
  // with_relu: a ReLU after the BN, fused in (forward writes max(bn(x), 0); backward takes dy at that output
  // and masks it with bn(x) > 0 itself).
  void forward(const DeviceParams& p, const float* x, const ops::BatchNormShape& shape, bool training, float* y,
               bool with_relu = false);
  void backward(const DeviceParams& p, const float* x, const float* dy, const ops::BatchNormShape& shape, float* dx,
                bool with_relu = false);
};

// A layer's weights with its eval-mode BatchNorm folded in (inference on a frozen model): with
// s = γ / √(running_var + ε), W'[o, …] = s[o] · W[o, …] and b'[o] = β[o] − s[o] · running_mean[o], computed
// in double from the host stores and kept in the backend's memory.
struct FoldedWeights {
  Buffer<float> weight, bias;
  // `count` weights at params offset `weight`, output channel of element i = (i / inner) % channels.
  void fold(const Backend& backend, const ParamStore& params, const ParamStore& buffers, int64_t weight, int64_t count,
            int64_t inner, const BatchNorm& bn);
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
  Buffer<float> pre, out, dpre;  // (N, out) before BN, after ReLU; the gradient before BN
  void declare(ParamStore& params, ParamStore& buffers, const std::string& name, int in, int out_features);
  void init(ParamStore& params, ParamStore& buffers, Rng& rng) const;
  const float* forward(const DeviceParams& p, const float* x, int64_t rows, bool training);
  // dx may be null.
  void backward(const DeviceParams& p, const float* x, float* dout, int64_t rows, float* dx);
  // The two halves of forward and backward around the linear layer, for a caller that computes the linear
  // part its own way (semseg's head): BN and ReLU of `pre` (rows × channels, filled by the caller); and
  // backward down to the gradient before BN (dpre, returned), the linear layer's gradients left to the caller.
  const float* forward_after_linear(const DeviceParams& p, int64_t rows, bool training);
  const float* backward_to_linear(const DeviceParams& p, float* dout, int64_t rows);
  // Inference with BN folded (fold() first, after the parameters last changed): out = relu(x W'ᵀ + b').
  FoldedWeights folded;
  void fold(const Backend& backend, const ParamStore& params, const ParamStore& buffers);
  const float* forward_folded(const Backend& backend, const float* x, int64_t rows);
  // The same voxelized in the same pass: grid (B, out, H, W) = the per-cell max of out's rows (0 in empty
  // cells); `out` itself is kept only with keep_points (semseg's head reads it, bevdet's does not).
  void forward_folded_voxelize(const Backend& backend, const float* x, int64_t rows, const ops::CellIndexView& cells,
                               int64_t cells_per_map, Buffer<float>& grid, bool keep_points);
  int channels() const { return linear.out; }
  int64_t first_param() const { return linear.weight; }
};

// Whether the layers keep their convolutions' inputs narrow — in the 16-bit type of a bf16/fp16 matmul
// precision (a GPU's) — on `backend`: a convolution reads its input rounded to that type anyway, so a
// layer whose output only convolutions read may store it so (the same bits, half the bytes).
inline bool narrow_activations(const Backend& backend) {
  return backend.matmul_precision() != Precision::fp32;
}
// Floats of a Buffer<float> that holds `count` activations, narrow (two per float) or not.
inline size_t activation_floats(size_t count, bool narrow) {
  return narrow ? (count + 1) / 2 : count;
}

// out (outer, ca + cb, inner) = x (outer, ca, inner) and y (outer, cb, inner) side by side, as stored:
// the backend's concat_channels in fp32, copies of each block when narrow (the bytes only move).
void concat_activations(const Backend& backend, const float* x, int ca, const float* y, int cb, int64_t outer,
                        int64_t inner, float* out, bool narrow);

// Conv (3x3 or 1x1; stride 1 or 2) + BN + ReLU over maps, or ConvTranspose (k = stride) + BN + ReLU.
// Every reader of `out` is a convolution (the next layer, a head, a deblock; the models' concatenations of
// it only move it), so with narrow activations (training or eval forward on a GPU under bf16/fp16) `out`
// holds the 16-bit type (out_narrow; half the floats); folded inference writes fp32.
struct ConvBnRelu {
  bool transpose = false;
  Conv2d conv;
  ConvTranspose deconv;
  BatchNorm bn;
  int batch = 0, in_height = 0, in_width = 0;
  bool x_narrow = false, out_narrow = false;  // of the last forward: its input, its output
  Buffer<float> pre, out, dpre;
  void declare(ParamStore& params, ParamStore& buffers, const std::string& name, int in, int out_channels, int stride);
  void declare_transpose(ParamStore& params, ParamStore& buffers, const std::string& name, int in, int out_channels,
                         int stride = 2);
  void init(ParamStore& params, ParamStore& buffers, Rng& rng) const;
  // x_is_narrow: x holds the 16-bit type (another ConvBnRelu's narrow out).
  const float* forward(const DeviceParams& p, const float* x, int batch_size, int height, int width, bool training,
                       bool x_is_narrow = false);
  void backward(const DeviceParams& p, const float* x, float* dout, float* dx);
  // Inference with BN folded, as LinearBnRelu's.
  FoldedWeights folded;
  void fold(const Backend& backend, const ParamStore& params, const ParamStore& buffers);
  const float* forward_folded(const Backend& backend, const float* x, int batch_size, int height, int width);
  int out_channels() const;
  int64_t out_count() const { return int64_t(batch) * out_channels() * out_height() * out_width(); }  // of out
  // The addresses of its buffers (a graphed section's check that they have not moved).
  void list_buffers(std::vector<uintptr_t>& addresses) const {
    for (const void* b : {static_cast<const void*>(pre.data()), static_cast<const void*>(out.data()),
                          static_cast<const void*>(dpre.data()), static_cast<const void*>(bn.mean.data()),
                          static_cast<const void*>(bn.invstd.data()), static_cast<const void*>(bn.sums.data())})
      addresses.push_back(reinterpret_cast<uintptr_t>(b));
  }
  int64_t first_param() const { return transpose ? deconv.weight : conv.weight; }
  int out_height() const;
  int out_width() const;
  int64_t macs() const;
};

}  // namespace lt
