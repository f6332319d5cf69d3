#include "src/models/semseg.hpp"

#include <algorithm>
#include <cmath>
#include <limits>
#include <utility>

#include "src/common/clock.hpp"
#include "src/common/rng.hpp"

namespace lt {
namespace {
constexpr int kPointFeatures = 8;
// Profile entries (`lidartrain profile`'s rows), in the order of the layers; kProfileNames their names.
enum Profile {
  kPointMlp0,
  kPointMlp1,
  kVoxelize,
  kEnc1,
  kEnc2,
  kEnc3,
  kUp2,
  kDec2,
  kUp1,
  kDec1,
  kDevoxelize,
  kHead,
  kProfileEntries
};
constexpr const char* kProfileNames[kProfileEntries] = {"point_mlp.0", "point_mlp.1", "voxelize",   "bev.enc1",
                                                        "bev.enc2",    "bev.enc3",    "bev.up2",    "bev.dec2",
                                                        "bev.up1",     "bev.dec1",    "devoxelize", "head"};
}  // namespace

Semseg::Semseg(const SemsegConfig& config, std::vector<float> class_weights)
    : config_(config), class_weights_(std::move(class_weights)) {
  const auto [c1, c2] = config.point_channels;
  const auto [a, b, c] = config.bev_channels;
  mlp1_.declare(params_, buffers_, "point_mlp.0", kPointFeatures, c1);
  mlp2_.declare(params_, buffers_, "point_mlp.1", c1, c2);
  enc1a_.declare(params_, buffers_, "bev.enc1.0", c2, a, 1);
  enc1b_.declare(params_, buffers_, "bev.enc1.1", a, a, 1);
  enc2a_.declare(params_, buffers_, "bev.enc2.0", a, b, 2);
  enc2b_.declare(params_, buffers_, "bev.enc2.1", b, b, 1);
  enc3a_.declare(params_, buffers_, "bev.enc3.0", b, c, 2);
  enc3b_.declare(params_, buffers_, "bev.enc3.1", c, c, 1);
  up2_.declare_transpose(params_, buffers_, "bev.up2", c, b);
  dec2_.declare(params_, buffers_, "bev.dec2", 2 * b, b, 1);
  up1_.declare_transpose(params_, buffers_, "bev.up1", b, a);
  dec1_.declare(params_, buffers_, "bev.dec1", 2 * a, a, 1);
  head1_.declare(params_, buffers_, "head.0", a + c2, config.head_channels);
  head2_.declare(params_, "head.1", config.head_channels, kNumSemanticClasses, true);
  params_.allocate(true);
  buffers_.allocate(false);
  for (const char* name : kProfileNames) profile_.push_back(LayerProfile{name});
}

void Semseg::init(uint64_t seed) {
  Rng rng(stream_key(seed, 0x5E95E6));
  mlp1_.init(params_, buffers_, rng);
  mlp2_.init(params_, buffers_, rng);
  for (ConvBnRelu* block : conv_blocks()) block->init(params_, buffers_, rng);
  head1_.init(params_, buffers_, rng);
  head2_.init(params_, rng);
}

void Semseg::set_sync_bn(const SumOverRanks& sum) {
  for (LinearBnRelu* block : {&mlp1_, &mlp2_, &head1_}) block->bn.sync = sum;
  for (ConvBnRelu* block : conv_blocks()) block->bn.sync = sum;
}

SemsegInput Semseg::prepare(const SemsegConfig& config, const PointBatch& batch) {
  const int grid = config.grid_size();
  const float range = float(config.range_m), voxel = float(config.voxel_size_m);
  SemsegInput input;
  input.frames = batch.frames;
  const int64_t points = input.points = batch.num_points();
  // A point's BEV column and row (the cell index and the cell-centre features both take them from here:
  // recomputed, not divided out of the cell number, whose three 64-bit divisions a point were a third of
  // this function's time).
  const auto column_row = [&](const float* q) {
    return std::pair<int, int>{int(std::floor((q[0] + range) / voxel)), int(std::floor((q[1] + range) / voxel))};
  };
  std::vector<int64_t> point_cell(static_cast<size_t>(points));
#pragma omp parallel for schedule(static)
  for (int64_t p = 0; p < points; ++p) {
    const auto [ix, iy] = column_row(&batch.points[4 * p]);
    point_cell[p] =
        (ix >= 0 && ix < grid && iy >= 0 && iy < grid) ? (int64_t(batch.frame_of[p]) * grid + iy) * grid + ix : -1;
  }
  input.cells = ops::build_cell_index(std::move(point_cell), int64_t(input.frames) * grid * grid);
  std::vector<float> z(static_cast<size_t>(points)), z_mean(static_cast<size_t>(input.cells.occupied()));
  for (int64_t p = 0; p < points; ++p) z[p] = batch.points[4 * p + 2];
  ops::scatter_mean_forward(z.data(), input.cells, 1, z_mean.data());
  input.features.resize(size_t(points) * kPointFeatures);
#pragma omp parallel for schedule(static)
  for (int64_t p = 0; p < points; ++p) {
    const float* q = &batch.points[4 * p];
    float* f = &input.features[size_t(p) * kPointFeatures];
    const int64_t m = input.cells.point_slot[p];
    const auto [ix, iy] = column_row(q);
    const float cx = -range + (float(ix) + 0.5f) * voxel, cy = -range + (float(iy) + 0.5f) * voxel;
    f[0] = q[0], f[1] = q[1], f[2] = q[2], f[3] = q[3];
    f[4] = m < 0 ? 0.f : q[0] - cx;
    f[5] = m < 0 ? 0.f : q[1] - cy;
    f[6] = m < 0 ? 0.f : q[2] - z_mean[m];
    f[7] = std::sqrt(q[0] * q[0] + q[1] * q[1]);
  }
  return input;
}

std::unique_ptr<ModelInput> Semseg::prepare(const PointBatch& batch, bool with_targets) const {
  auto input = std::make_unique<SemsegInput>(prepare(config_, batch));
  if (with_targets) {
    input->labels = batch.labels;
    for (uint8_t label : input->labels)
      if (label != 0) input->loss_weight += class_weights_.empty() ? 1.0 : double(class_weights_[label]);
  }
  return input;
}

void Semseg::forward_loss_on(std::unique_ptr<ModelInput> input, double normaliser, double* total) {
  auto& in = dynamic_cast<SemsegInput&>(*input);
  const int64_t points = in.points;
  const double weight = in.loss_weight;
  upload_input(in);  // with its labels, before they move
  const std::vector<uint8_t> labels = std::move(in.labels);
  forward(std::move(in), true);
  const Backend& b = be();
  dlogits_.resize(b, logits_.size());
  loss_.resize(b, 1);
  const float* logits = b.host_memory ? logits_.data() : logits_on_.data();
  b.cross_entropy(logits, input_array(labels, SemsegInput::kLabels), points, kNumSemanticClasses,
                  class_weights_.empty() ? nullptr : on_backend(b, class_weights_, class_weights_staging_), 0,
                  dlogits_.data(), loss_.data());
  // The mean over this micro-batch's labelled points, scaled to its share of the global batch's weight (and
  // by the loss scale).
  const float scale = normaliser > 0 ? float(weight * loss_scale_ / normaliser) : 0.f;
  b.scale(dlogits_.data(), int64_t(dlogits_.size()), scale);
  b.add_loss_share(loss_.data(), 1, weight, 0.0, normaliser, total);
}

// Where the head writes the logits: the host vector itself when the backend's memory is the host's.
float* Semseg::logits_output(size_t count) {
  logits_.resize(count);
  if (be().host_memory) return logits_.data();
  logits_on_.resize(be(), count);
  return logits_on_.data();
}

const std::vector<float>& Semseg::forward(SemsegInput input, bool training) {
  const DeviceParams& p = begin_forward();
  const Backend& b = be();
  take_input(input);  // on a device: uploaded ahead, or now
  frames_ = input.frames;
  points_ = input.points;
  cells_ = std::move(input.cells);
  features_ = std::move(input.features);
  cells_view_ = input_cell_index(cells_, 0);
  features_on_ = input_array(features_, SemsegInput::kFeatures);
  const int grid = config_.grid_size(), c2 = mlp2_.channels();
  const int a = config_.bev_channels[0], bc = config_.bev_channels[1], c = config_.bev_channels[2];
  const int64_t cells_per_map = int64_t(grid) * grid;
  const bool fused = fused_inference(training);
  if (fused && !folded()) {
    for (LinearBnRelu* block : {&mlp1_, &mlp2_, &head1_}) block->fold(b, params_, buffers_);
    for (ConvBnRelu* block : conv_blocks()) block->fold(b, params_, buffers_);
    folded_now();
  }
  // Each block exact (training, or eval of a model that is not frozen) or with its BN folded.
  const auto point_block = [&](LinearBnRelu& block, const float* x) {
    return fused ? block.forward_folded(b, x, points_) : block.forward(p, x, points_, training);
  };
  // x narrow: another layer's narrow output, or a concatenation of them (never in folded inference).
  const auto map_block = [&](ConvBnRelu& block, const float* x, int height, int width, bool x_narrow) {
    return fused ? block.forward_folded(b, x, frames_, height, width)
                 : block.forward(p, x, frames_, height, width, training, x_narrow);
  };
  // A layer after another: its input is that one's output, as stored.
  const auto after = [&](ConvBnRelu& block, const ConvBnRelu& before) {
    map_block(block, before.out.data(), before.out_height(), before.out_width(), before.out_narrow);
  };
  {
    const PhaseTimer t = timer(kPointMlp0, false);
    point_block(mlp1_, features_on_);
  }
  if (fused) {
    // point_mlp.1 and voxelize in one pass (the voxelize row of the profile stays empty).
    const PhaseTimer t = timer(kPointMlp1, false);
    mlp2_.forward_folded_voxelize(b, mlp1_.out.data(), points_, cells_view_, cells_per_map, grid0_, true);
  } else {
    {
      const PhaseTimer t = timer(kPointMlp1, false);
      point_block(mlp2_, mlp1_.out.data());
    }
    const PhaseTimer t = timer(kVoxelize, false);
    grid0_.resize(b, size_t(frames_) * c2 * cells_per_map);
    argmax_.resize(b, size_t(cells_.occupied()) * c2);
    b.voxelize_max_forward(mlp2_.out.data(), cells_view_, c2, cells_per_map, grid0_.data(), argmax_.data());
  }
  // The dense part: its shapes depend on the batch size only (a graphed section in training).
  const int hidden = head1_.channels();
  const auto dense = [&] {
    {
      const PhaseTimer t = timer(kEnc1, false);
      map_block(enc1a_, grid0_.data(), grid, grid, false);
      after(enc1b_, enc1a_);
    }
    {
      const PhaseTimer t = timer(kEnc2, false);
      after(enc2a_, enc1b_);
      after(enc2b_, enc2a_);
    }
    {
      const PhaseTimer t = timer(kEnc3, false);
      after(enc3a_, enc2b_);
      after(enc3b_, enc3a_);
    }
    const int h2 = enc2b_.out_height(), w2 = enc2b_.out_width();
    {
      const PhaseTimer t = timer(kUp2, false);
      after(up2_, enc3b_);
    }
    {
      const PhaseTimer t = timer(kDec2, false);
      const bool narrow = up2_.out_narrow;  // and enc2b_'s: the same layers' kind
      cat2_.resize(b, activation_floats(size_t(frames_) * 2 * bc * h2 * w2, narrow));
      concat_activations(b, up2_.out.data(), bc, enc2b_.out.data(), bc, frames_, int64_t(h2) * w2, cat2_.data(),
                         narrow);
      map_block(dec2_, cat2_.data(), h2, w2, narrow);
    }
    {
      const PhaseTimer t = timer(kUp1, false);
      after(up1_, dec2_);
    }
    {
      const PhaseTimer t = timer(kDec1, false);
      const bool narrow = up1_.out_narrow;
      cat1_.resize(b, activation_floats(size_t(frames_) * 2 * a * cells_per_map, narrow));
      concat_activations(b, up1_.out.data(), a, enc1b_.out.data(), a, frames_, cells_per_map, cat1_.data(), narrow);
      if (fused) {
        // Only the points read dec1's output: it is computed at the occupied cells alone.
        dec1_rows_.resize(b, size_t(cells_.occupied()) * a);
        b.conv2d_relu_at_cells(cat1_.data(), dec1_.folded.weight.data(), dec1_.folded.bias.data(),
                               ops::Conv2dShape{frames_, 2 * a, a, grid, grid, 3, 1, 1}, cells_view_,
                               dec1_rows_.data());
      } else {
        map_block(dec1_, cat1_.data(), grid, grid, narrow);
      }
    }
    if (!fused) {  // head.0's BEV half over dec1's map (see below)
      const PhaseTimer t = timer(kDevoxelize, false);
      head_weight_bev_.resize(b, size_t(hidden) * a);
      head_weight_point_.resize(b, size_t(hidden) * c2);
      b.split_channels(p.value(head1_.linear.weight), a, c2, hidden, 1, head_weight_bev_.data(),
                       head_weight_point_.data());
      head_bev_map_.resize(b, size_t(frames_) * hidden * cells_per_map);
      b.conv2d_forward(dec1_.out.data(), head_weight_bev_.data(), nullptr, head_bev_map_.data(), head_bev_shape());
    }
  };
  if (training)
    run_graphed(dense_forward_, {uintptr_t(frames_)}, dense);
  else
    dense();
  if (fused) {
    // devoxelize + concat + head in one op: the per-point features are read once.
    const PhaseTimer t = timer(kHead, false);
    float* logits = logits_output(size_t(points_) * kNumSemanticClasses);
    const ops::PointHeadShape shape{a, c2, head1_.channels(), kNumSemanticClasses};
    b.devoxelize_head_forward(dec1_rows_.data(), cells_view_, mlp2_.out.data(), head1_.folded.weight.data(),
                              head1_.folded.bias.data(), p.value(head2_.weight), p.value(head2_.bias), shape, logits);
    if (!b.host_memory && !training) logits_on_.download(logits_.data());  // training: the device's loss
  } else {
    // head.0 is a Linear over [the point's BEV feature, its point feature] (PyTorch's layout, one weight
    // (h, a + c2)); its BEV half is applied as a 1×1 convolution over dec1's map (cells ≪ points) whose
    // result is gathered to the points, its point half per point: the same sum, half the MACs, and no
    // (N, a + c2) concatenation.
    {
      const PhaseTimer t = timer(kDevoxelize, false);
      point_bev_.resize(b, size_t(points_) * hidden);
      b.devoxelize_forward(head_bev_map_.data(), cells_view_, hidden, cells_per_map, point_bev_.data());
    }
    {
      const PhaseTimer t = timer(kHead, false);
      head1_.pre.resize(b, size_t(points_) * hidden);
      b.linear_forward(mlp2_.out.data(), head_weight_point_.data(), nullptr, head1_.pre.data(), points_, c2, hidden);
      b.add(head1_.pre.data(), point_bev_.data(), points_ * hidden);
      head1_.forward_after_linear(p, points_, training);
      float* logits = logits_output(size_t(points_) * kNumSemanticClasses);
      head2_.forward(p, head1_.out.data(), points_, logits);
      if (!b.host_memory && !training) logits_on_.download(logits_.data());  // training: the device's loss
    }
  }
  end_forward(training);
  // MACs of this forward, per layer (profile).
  const int64_t n = points_;
  profile_[kPointMlp0].macs = mlp1_.linear.macs(n);
  profile_[kPointMlp1].macs = mlp2_.linear.macs(n);
  profile_[kEnc1].macs = enc1a_.macs() + enc1b_.macs();
  profile_[kEnc2].macs = enc2a_.macs() + enc2b_.macs();
  profile_[kEnc3].macs = enc3a_.macs() + enc3b_.macs();
  profile_[kUp2].macs = up2_.macs();
  profile_[kDec2].macs = dec2_.macs();
  profile_[kUp1].macs = up1_.macs();
  profile_[kDec1].macs = fused ? cells_.occupied() * a * 2 * a * 9 : dec1_.macs();
  profile_[kDevoxelize].macs = fused ? 0 : int64_t(frames_) * cells_per_map * a * head1_.channels();
  profile_[kHead].macs = fused ? (cells_.occupied() * a + n * c2) * head1_.channels() + head2_.macs(n)
                               : n * c2 * head1_.channels() + head2_.macs(n);
  count_profile_params();
  (void)c;
  return logits_;
}

void Semseg::list_dense_buffers(std::vector<uintptr_t>& addresses) const {
  for (const ConvBnRelu* block : conv_blocks()) block->list_buffers(addresses);
  const auto add = [&](const void* pointer) { addresses.push_back(reinterpret_cast<uintptr_t>(pointer)); };
  add(device_params_.values);
  add(device_params_.grads);
  add(device_params_.buffers);
  for (const Buffer<float>* buffer : {&grid0_, &cat2_, &cat1_, &head_weight_bev_, &head_weight_point_, &head_bev_map_})
    add(buffer->data());
  for (const Buffer<float>& d : d_dense_) add(d.data());
}

void Semseg::backward(const std::vector<float>& dlogits) {
  dlogits_.upload(be(), dlogits);
  backward(dlogits_.data());
}

void Semseg::backward(const float* dlogits) {
  const DeviceParams& p = device_params_;
  const Backend& b = be();
  const int grid = config_.grid_size(), c2 = mlp2_.channels();
  const int a = config_.bev_channels[0], bc = config_.bev_channels[1], c = config_.bev_channels[2];
  const int64_t cells_per_map = int64_t(grid) * grid;
  const int h2 = enc2b_.out_height(), w2 = enc2b_.out_width();
  const int hidden = head1_.channels();
  Buffer<float> d_point, d_weight_point;
  Buffer<float>& d_dec1 = d_dense_[kDDec1];
  d_point.resize(b, mlp2_.out.size());          // linear_backward writes it, voxelize's backward adds to it
  d_dec1.resize(b, size_t(dec1_.out_count()));  // written by the 1×1 convolution's backward
  const float* dpre = nullptr;
  {
    const PhaseTimer t = timer(kHead, true);
    Buffer<float> d_head1;
    d_head1.resize(b, head1_.out.size());
    head2_.backward(p, head1_.out.data(), dlogits, points_, d_head1.data());
    dpre = head1_.backward_to_linear(p, d_head1.data(), points_);
    d_weight_point.zeros(b, size_t(hidden) * c2);
    b.linear_backward(mlp2_.out.data(), head_weight_point_.data(), dpre, d_point.data(), d_weight_point.data(), nullptr,
                      points_, c2, hidden);
  }
  {
    const PhaseTimer t = timer(kDevoxelize, true);
    Buffer<float> d_bev_map, d_weight_bev, d_weight;
    d_bev_map.zeros(b, head_bev_map_.size());
    b.devoxelize_backward(dpre, cells_view_, hidden, cells_per_map, d_bev_map.data());
    d_weight_bev.zeros(b, size_t(hidden) * a);
    b.conv2d_backward(dec1_.out.data(), head_weight_bev_.data(), d_bev_map.data(), d_dec1.data(), d_weight_bev.data(),
                      nullptr, head_bev_shape());
    // head.0's weight gradient: its two column blocks back into the (h, a + c2) layout.
    d_weight.resize(b, size_t(hidden) * (a + c2));
    b.concat_channels(d_weight_bev.data(), a, d_weight_point.data(), c2, hidden, 1, d_weight.data());
    b.add(p.grad(head1_.linear.weight), d_weight.data(), int64_t(d_weight.size()));
  }
  grads_ready(head1_.first_param());
  // The dense part, from dec1's output gradient to the BEV grid's (a graphed section; its gradients are
  // member buffers, so their addresses stay put from step to step). Input gradients are written, not
  // added to (kernels/backend.hpp): no buffer below needs zeros first.
  const auto dense = [&] {
    const auto sized = [&](int which, size_t count) -> Buffer<float>& {
      d_dense_[which].resize(b, count);
      return d_dense_[which];
    };
    Buffer<float>& d_up1 = sized(kDUp1, size_t(up1_.out_count()));
    Buffer<float>& d_enc1 = sized(kDEnc1, size_t(enc1b_.out_count()));
    Buffer<float>& d_dec2 = sized(kDDec2, size_t(dec2_.out_count()));
    {
      const PhaseTimer t = timer(kDec1, true);
      Buffer<float>& d_cat1 = sized(kDCat1, size_t(frames_) * 2 * a * cells_per_map);
      dec1_.backward(p, cat1_.data(), d_dec1.data(), d_cat1.data());
      b.split_channels(d_cat1.data(), a, a, frames_, cells_per_map, d_up1.data(), d_enc1.data());
    }
    grads_ready(dec1_.first_param());
    {
      const PhaseTimer t = timer(kUp1, true);
      up1_.backward(p, dec2_.out.data(), d_up1.data(), d_dec2.data());
    }
    grads_ready(up1_.first_param());
    Buffer<float>& d_up2 = sized(kDUp2, size_t(up2_.out_count()));
    Buffer<float>& d_enc2 = sized(kDEnc2, size_t(enc2b_.out_count()));
    Buffer<float>& d_enc3 = sized(kDEnc3, size_t(enc3b_.out_count()));
    {
      const PhaseTimer t = timer(kDec2, true);
      Buffer<float>& d_cat2 = sized(kDCat2, size_t(frames_) * 2 * bc * h2 * w2);
      dec2_.backward(p, cat2_.data(), d_dec2.data(), d_cat2.data());
      b.split_channels(d_cat2.data(), bc, bc, frames_, int64_t(h2) * w2, d_up2.data(), d_enc2.data());
    }
    grads_ready(dec2_.first_param());
    {
      const PhaseTimer t = timer(kUp2, true);
      up2_.backward(p, enc3b_.out.data(), d_up2.data(), d_enc3.data());
    }
    grads_ready(up2_.first_param());
    {
      const PhaseTimer t = timer(kEnc3, true);
      Buffer<float>& d_enc3a = sized(kDEnc3a, size_t(enc3a_.out_count()));
      Buffer<float>& d_from3 = sized(kDFrom3, size_t(enc2b_.out_count()));
      enc3b_.backward(p, enc3a_.out.data(), d_enc3.data(), d_enc3a.data());
      enc3a_.backward(p, enc2b_.out.data(), d_enc3a.data(), d_from3.data());
      b.add(d_enc2.data(), d_from3.data(), int64_t(d_enc2.size()));
    }
    grads_ready(enc3a_.first_param());
    {
      const PhaseTimer t = timer(kEnc2, true);
      Buffer<float>& d_enc2a = sized(kDEnc2a, size_t(enc2a_.out_count()));
      Buffer<float>& d_from2 = sized(kDFrom2, size_t(enc1b_.out_count()));
      enc2b_.backward(p, enc2a_.out.data(), d_enc2.data(), d_enc2a.data());
      enc2a_.backward(p, enc1b_.out.data(), d_enc2a.data(), d_from2.data());
      b.add(d_enc1.data(), d_from2.data(), int64_t(d_enc1.size()));
    }
    grads_ready(enc2a_.first_param());
    Buffer<float>& d_grid0 = sized(kDGrid0, grid0_.size());
    {
      const PhaseTimer t = timer(kEnc1, true);
      Buffer<float>& d_enc1a = sized(kDEnc1a, size_t(enc1a_.out_count()));
      enc1b_.backward(p, enc1a_.out.data(), d_enc1.data(), d_enc1a.data());
      enc1a_.backward(p, grid0_.data(), d_enc1a.data(), d_grid0.data());
    }
    grads_ready(enc1a_.first_param());
  };
  run_graphed(dense_backward_, {uintptr_t(frames_)}, dense);
  const Buffer<float>& d_grid0 = d_dense_[kDGrid0];
  {
    const PhaseTimer t = timer(kVoxelize, true);
    b.voxelize_max_backward(d_grid0.data(), cells_view_, argmax_.data(), c2, cells_per_map, d_point.data());
  }
  Buffer<float> d_mlp1;
  d_mlp1.resize(b, mlp1_.out.size());
  {
    const PhaseTimer t = timer(kPointMlp1, true);
    mlp2_.backward(p, mlp1_.out.data(), d_point.data(), points_, d_mlp1.data());
  }
  grads_ready(mlp2_.first_param());
  {
    const PhaseTimer t = timer(kPointMlp0, true);
    mlp1_.backward(p, features_on_, d_mlp1.data(), points_, nullptr);
  }
  grads_ready(0);
  end_backward();
  (void)c;
}

namespace {

constexpr int64_t kArgmaxBlock = 16;

// labels[i] for the 16 points of z (16 · K logits): 16 independent select chains, one per point, over a
// constant trip count, so the loop over the points vectorizes.
void block_argmax(const float* z, uint8_t* labels) {
  constexpr int K = kNumSemanticClasses;
  float best[kArgmaxBlock];
  uint8_t id[kArgmaxBlock];
  for (int64_t i = 0; i < kArgmaxBlock; ++i) best[i] = z[i * K + 1], id[i] = 1;
  for (int k = 2; k < K; ++k)
    for (int64_t i = 0; i < kArgmaxBlock; ++i) {
      const float v = z[i * K + k];
      const bool greater = v > best[i];
      best[i] = greater ? v : best[i];
      id[i] = greater ? uint8_t(k) : id[i];
    }
  std::copy(id, id + kArgmaxBlock, labels);
}

}  // namespace

std::vector<uint8_t> predict_labels(const std::vector<float>& logits, int64_t points) {
  constexpr int K = kNumSemanticClasses;
  std::vector<uint8_t> labels(static_cast<size_t>(points));
  // Branch-free (a select per point and id: the branchy scan mispredicted about once a point and took
  // 3.5 ms of a 120k-point frame's 80). Strictly greater: the first id wins ties, and a NaN never wins.
  const int64_t full = points / kArgmaxBlock, rest = points - full * kArgmaxBlock;
#pragma omp parallel for schedule(static)
  for (int64_t block = 0; block < full; ++block)
    block_argmax(&logits[size_t(block * kArgmaxBlock * K)], &labels[size_t(block * kArgmaxBlock)]);
  if (rest > 0) {  // the last points through a padded copy
    std::vector<float> z(size_t(kArgmaxBlock * K), 0.f);
    std::copy(logits.begin() + full * kArgmaxBlock * K, logits.begin() + points * K, z.begin());
    uint8_t id[kArgmaxBlock];
    block_argmax(z.data(), id);
    std::copy(id, id + rest, &labels[size_t(full * kArgmaxBlock)]);
  }
  return labels;
}

std::vector<Prediction> Semseg::predict(const PointBatch& batch) {
  std::vector<uint8_t> labels = predict_labels(forward(batch, false), batch.num_points());
  std::vector<Prediction> predictions(size_t(batch.frames));
  if (batch.frames == 1) {
    predictions[0].labels = std::move(labels);
    return predictions;
  }
  // A batch is its frames' points one frame after another (make_batch).
  for (size_t p = 0; p < labels.size();) {
    const int32_t frame = batch.frame_of[p];
    const size_t end = size_t(std::find_if(batch.frame_of.begin() + std::ptrdiff_t(p), batch.frame_of.end(),
                                           [&](int32_t f) { return f != frame; }) -
                              batch.frame_of.begin());
    predictions[size_t(frame)].labels.assign(labels.begin() + std::ptrdiff_t(p), labels.begin() + std::ptrdiff_t(end));
    p = end;
  }
  return predictions;
}

std::array<double, 6> Semseg::point_range() const {
  const double r = config_.range_m, inf = std::numeric_limits<double>::infinity();
  return {-r, -r, -inf, r, r, inf};
}

}  // namespace lt
