#include "src/models/semseg.hpp"

#include <cmath>

#include "src/common/clock.hpp"
#include "src/common/rng.hpp"

namespace lt {
namespace {
constexpr int kPointFeatures = 8;
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
  for (const char* name : {"point_mlp.0", "point_mlp.1", "voxelize", "bev.enc1", "bev.enc2", "bev.enc3", "bev.up2",
                           "bev.dec2", "bev.up1", "bev.dec1", "devoxelize", "head"})
    profile_.push_back(LayerProfile{name});
}

void Semseg::init(uint64_t seed) {
  Rng rng(stream_key(seed, 0x5E95E6));
  mlp1_.init(params_, buffers_, rng);
  mlp2_.init(params_, buffers_, rng);
  for (ConvBnRelu* block : {&enc1a_, &enc1b_, &enc2a_, &enc2b_, &enc3a_, &enc3b_, &up2_, &dec2_, &up1_, &dec1_})
    block->init(params_, buffers_, rng);
  head1_.init(params_, buffers_, rng);
  head2_.init(params_, rng);
}

void Semseg::set_sync_bn(const SumOverRanks& sum) {
  for (LinearBnRelu* block : {&mlp1_, &mlp2_, &head1_}) block->bn.sync = sum;
  for (ConvBnRelu* block : {&enc1a_, &enc1b_, &enc2a_, &enc2b_, &enc3a_, &enc3b_, &up2_, &dec2_, &up1_, &dec1_})
    block->bn.sync = sum;
}

SemsegInput Semseg::prepare(const SemsegConfig& config, const PointBatch& batch) {
  const int grid = config.grid_size();
  const float range = float(config.range_m), voxel = float(config.voxel_size_m);
  SemsegInput input;
  input.frames = batch.frames;
  const int64_t points = input.points = batch.num_points();
  std::vector<int64_t> point_cell(static_cast<size_t>(points));
#pragma omp parallel for schedule(static)
  for (int64_t p = 0; p < points; ++p) {
    const float* q = &batch.points[4 * p];
    const int ix = int(std::floor((q[0] + range) / voxel)), iy = int(std::floor((q[1] + range) / voxel));
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
    const int64_t cell = input.cells.point_cell[p], m = input.cells.point_slot[p];
    const int64_t hw = cell % (int64_t(grid) * grid);
    const float cx = -range + (float(hw % grid) + 0.5f) * voxel, cy = -range + (float(hw / grid) + 0.5f) * voxel;
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

double Semseg::forward_loss(std::unique_ptr<ModelInput> input, double normaliser) {
  auto& in = dynamic_cast<SemsegInput&>(*input);
  const int64_t points = in.points;
  const double weight = in.loss_weight;
  const std::vector<uint8_t> labels = std::move(in.labels);
  const std::vector<float>& logits = forward(std::move(in), true);
  dlogits_.resize(logits.size());
  const double loss =
      ops::cross_entropy<float>(logits.data(), labels.data(), points, kNumSemanticClasses,
                                class_weights_.empty() ? nullptr : class_weights_.data(), 0, dlogits_.data());
  // The mean over this micro-batch's labelled points, scaled to its share of the global batch's weight.
  const float scale = normaliser > 0 ? float(weight / normaliser) : 0.f;
  for (float& d : dlogits_) d *= scale;
  return normaliser > 0 ? loss * weight / normaliser : 0.0;
}

const std::vector<float>& Semseg::forward(SemsegInput input, bool training) {
  frames_ = input.frames;
  points_ = input.points;
  cells_ = std::move(input.cells);
  features_ = std::move(input.features);
  const int grid = config_.grid_size(), c2 = mlp2_.channels();
  const auto [a, b, c] = config_.bev_channels;
  const int64_t cells_per_map = int64_t(grid) * grid;
  {
    PhaseTimer t{profile_, 0, false};
    mlp1_.forward(params_, buffers_, features_.data(), points_, training);
  }
  {
    PhaseTimer t{profile_, 1, false};
    mlp2_.forward(params_, buffers_, mlp1_.out.data(), points_, training);
  }
  {
    PhaseTimer t{profile_, 2, false};
    grid0_.resize(size_t(frames_) * c2 * cells_per_map);
    argmax_.resize(size_t(cells_.occupied()) * c2);
    ops::voxelize_max_forward(mlp2_.out.data(), cells_, c2, cells_per_map, grid0_.data(), argmax_.data());
  }
  {
    PhaseTimer t{profile_, 3, false};
    enc1a_.forward(params_, buffers_, grid0_.data(), frames_, grid, grid, training);
    enc1b_.forward(params_, buffers_, enc1a_.out.data(), frames_, grid, grid, training);
  }
  {
    PhaseTimer t{profile_, 4, false};
    enc2a_.forward(params_, buffers_, enc1b_.out.data(), frames_, grid, grid, training);
    enc2b_.forward(params_, buffers_, enc2a_.out.data(), frames_, enc2a_.out_height(), enc2a_.out_width(), training);
  }
  {
    PhaseTimer t{profile_, 5, false};
    enc3a_.forward(params_, buffers_, enc2b_.out.data(), frames_, enc2b_.out_height(), enc2b_.out_width(), training);
    enc3b_.forward(params_, buffers_, enc3a_.out.data(), frames_, enc3a_.out_height(), enc3a_.out_width(), training);
  }
  const int h2 = enc2b_.out_height(), w2 = enc2b_.out_width();
  {
    PhaseTimer t{profile_, 6, false};
    up2_.forward(params_, buffers_, enc3b_.out.data(), frames_, enc3b_.out_height(), enc3b_.out_width(), training);
  }
  {
    PhaseTimer t{profile_, 7, false};
    cat2_.resize(size_t(frames_) * 2 * b * h2 * w2);
    ops::concat_channels(up2_.out.data(), b, enc2b_.out.data(), b, frames_, int64_t(h2) * w2, cat2_.data());
    dec2_.forward(params_, buffers_, cat2_.data(), frames_, h2, w2, training);
  }
  {
    PhaseTimer t{profile_, 8, false};
    up1_.forward(params_, buffers_, dec2_.out.data(), frames_, h2, w2, training);
  }
  {
    PhaseTimer t{profile_, 9, false};
    cat1_.resize(size_t(frames_) * 2 * a * cells_per_map);
    ops::concat_channels(up1_.out.data(), a, enc1b_.out.data(), a, frames_, cells_per_map, cat1_.data());
    dec1_.forward(params_, buffers_, cat1_.data(), frames_, grid, grid, training);
  }
  {
    PhaseTimer t{profile_, 10, false};
    point_bev_.resize(size_t(points_) * a);
    ops::devoxelize_forward(dec1_.out.data(), cells_, a, cells_per_map, point_bev_.data());
    point_cat_.resize(size_t(points_) * (a + c2));
    ops::concat_channels(point_bev_.data(), a, mlp2_.out.data(), c2, points_, 1, point_cat_.data());
  }
  {
    PhaseTimer t{profile_, 11, false};
    head1_.forward(params_, buffers_, point_cat_.data(), points_, training);
    logits_.resize(size_t(points_) * kNumSemanticClasses);
    head2_.forward(params_, head1_.out.data(), points_, logits_.data());
  }
  // MACs of this forward, per layer (profile).
  const int64_t n = points_;
  profile_[0].macs = mlp1_.linear.macs(n);
  profile_[1].macs = mlp2_.linear.macs(n);
  profile_[3].macs = enc1a_.macs() + enc1b_.macs();
  profile_[4].macs = enc2a_.macs() + enc2b_.macs();
  profile_[5].macs = enc3a_.macs() + enc3b_.macs();
  profile_[6].macs = up2_.macs();
  profile_[7].macs = dec2_.macs();
  profile_[8].macs = up1_.macs();
  profile_[9].macs = dec1_.macs();
  profile_[11].macs = head1_.linear.macs(n) + head2_.macs(n);
  count_profile_params();
  (void)c;
  return logits_;
}

void Semseg::backward(const std::vector<float>& dlogits) {
  const int grid = config_.grid_size(), c2 = mlp2_.channels();
  const auto [a, b, c] = config_.bev_channels;
  const int64_t cells_per_map = int64_t(grid) * grid;
  const int h2 = enc2b_.out_height(), w2 = enc2b_.out_width();
  std::vector<float> d_point_cat(point_cat_.size()), d_point_bev(point_bev_.size()), d_point(mlp2_.out.size());
  {
    PhaseTimer t{profile_, 11, true};
    std::vector<float> d_head1(head1_.out.size());
    head2_.backward(params_, head1_.out.data(), dlogits.data(), points_, d_head1.data());
    head1_.backward(params_, point_cat_.data(), d_head1, points_, d_point_cat.data());
  }
  grads_ready(head1_.first_param());
  std::vector<float> d_dec1(dec1_.out.size(), 0.f);
  {
    PhaseTimer t{profile_, 10, true};
    ops::split_channels(d_point_cat.data(), a, c2, points_, 1, d_point_bev.data(), d_point.data());
    ops::devoxelize_backward(d_point_bev.data(), cells_, a, cells_per_map, d_dec1.data());
  }
  std::vector<float> d_up1(up1_.out.size()), d_enc1(enc1b_.out.size()), d_dec2(dec2_.out.size());
  {
    PhaseTimer t{profile_, 9, true};
    std::vector<float> d_cat1(cat1_.size());
    dec1_.backward(params_, cat1_.data(), d_dec1, d_cat1.data());
    ops::split_channels(d_cat1.data(), a, a, frames_, cells_per_map, d_up1.data(), d_enc1.data());
  }
  grads_ready(dec1_.first_param());
  {
    PhaseTimer t{profile_, 8, true};
    up1_.backward(params_, dec2_.out.data(), d_up1, d_dec2.data());
  }
  grads_ready(up1_.first_param());
  std::vector<float> d_up2(up2_.out.size()), d_enc2(enc2b_.out.size()), d_enc3(enc3b_.out.size());
  {
    PhaseTimer t{profile_, 7, true};
    std::vector<float> d_cat2(cat2_.size());
    dec2_.backward(params_, cat2_.data(), d_dec2, d_cat2.data());
    ops::split_channels(d_cat2.data(), b, b, frames_, int64_t(h2) * w2, d_up2.data(), d_enc2.data());
  }
  grads_ready(dec2_.first_param());
  {
    PhaseTimer t{profile_, 6, true};
    up2_.backward(params_, enc3b_.out.data(), d_up2, d_enc3.data());
  }
  grads_ready(up2_.first_param());
  {
    PhaseTimer t{profile_, 5, true};
    std::vector<float> d_enc3a(enc3a_.out.size()), d_from3(enc2b_.out.size());
    enc3b_.backward(params_, enc3a_.out.data(), d_enc3, d_enc3a.data());
    enc3a_.backward(params_, enc2b_.out.data(), d_enc3a, d_from3.data());
    for (size_t i = 0; i < d_enc2.size(); ++i) d_enc2[i] += d_from3[i];
  }
  grads_ready(enc3a_.first_param());
  {
    PhaseTimer t{profile_, 4, true};
    std::vector<float> d_enc2a(enc2a_.out.size()), d_from2(enc1b_.out.size());
    enc2b_.backward(params_, enc2a_.out.data(), d_enc2, d_enc2a.data());
    enc2a_.backward(params_, enc1b_.out.data(), d_enc2a, d_from2.data());
    for (size_t i = 0; i < d_enc1.size(); ++i) d_enc1[i] += d_from2[i];
  }
  grads_ready(enc2a_.first_param());
  std::vector<float> d_grid0(grid0_.size());
  {
    PhaseTimer t{profile_, 3, true};
    std::vector<float> d_enc1a(enc1a_.out.size());
    enc1b_.backward(params_, enc1a_.out.data(), d_enc1, d_enc1a.data());
    enc1a_.backward(params_, grid0_.data(), d_enc1a, d_grid0.data());
  }
  grads_ready(enc1a_.first_param());
  {
    PhaseTimer t{profile_, 2, true};
    ops::voxelize_max_backward(d_grid0.data(), cells_, argmax_.data(), c2, cells_per_map, d_point.data());
  }
  std::vector<float> d_mlp1(mlp1_.out.size());
  {
    PhaseTimer t{profile_, 1, true};
    mlp2_.backward(params_, mlp1_.out.data(), d_point, points_, d_mlp1.data());
  }
  grads_ready(mlp2_.first_param());
  {
    PhaseTimer t{profile_, 0, true};
    mlp1_.backward(params_, features_.data(), d_mlp1, points_, nullptr);
  }
  grads_ready(0);
  (void)c;
}

}  // namespace lt
