#include "src/models/bevdet.hpp"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <numeric>

#include "kernels/common/box_iou.hpp"
#include "kernels/common/elementwise.hpp"
#include "src/common/error.hpp"
#include "src/common/rng.hpp"

namespace lt {
namespace {

constexpr int kPillarFeatures = 10;
constexpr float kHeatmapBias = -2.19f;  // sigmoid(−2.19) ≈ 0.1: CenterPoint's prior
constexpr double kRegressionWeight = 0.25;
constexpr float kMaxLogSize = 5.f;  // decoded sizes at most e⁵ ≈ 148 m

enum Profile { kPfn, kScatter, kBlock0, kBlock1, kBlock2, kDeblocks, kHead };

bool finite_box(const float* box) {
  for (int i = 0; i < 7; ++i)
    if (!std::isfinite(box[i])) return false;
  return true;
}

}  // namespace

int BevdetConfig::grid_x() const {
  return int(std::lround((point_range[3] - point_range[0]) / pillar_m));
}
int BevdetConfig::grid_y() const {
  return int(std::lround((point_range[4] - point_range[1]) / pillar_m));
}

double gaussian_radius(double height, double width, double min_overlap) {
  const double b1 = height + width, c1 = width * height * (1 - min_overlap) / (1 + min_overlap);
  const double r1 = (b1 + std::sqrt(b1 * b1 - 4 * c1)) / 2;
  const double a2 = 4, b2 = 2 * (height + width), c2 = (1 - min_overlap) * width * height;
  const double r2 = (b2 + std::sqrt(b2 * b2 - 4 * a2 * c2)) / 2;
  const double a3 = 4 * min_overlap, b3 = -2 * min_overlap * (height + width), c3 = (min_overlap - 1) * width * height;
  const double r3 = (b3 + std::sqrt(b3 * b3 - 4 * a3 * c3)) / 2;
  return std::min({r1, r2, r3});
}

void draw_gaussian(float* plane, int height, int width, int cx, int cy, int radius) {
  const double sigma = (2 * radius + 1) / 6.0;
  const int left = std::min(cx, radius), right = std::min(width - cx, radius + 1);
  const int top = std::min(cy, radius), bottom = std::min(height - cy, radius + 1);
  for (int dy = -top; dy < bottom; ++dy)
    for (int dx = -left; dx < right; ++dx) {
      const float g = float(std::exp(-(dx * dx + dy * dy) / (2 * sigma * sigma)));
      float& cell = plane[int64_t(cy + dy) * width + (cx + dx)];
      cell = std::max(cell, g);
    }
}

BevdetTargets make_bevdet_targets(const BevdetConfig& c, const PointBatch& batch) {
  const int ho = c.out_y(), wo = c.out_x();
  const int64_t plane = int64_t(ho) * wo;
  const double cell = c.cell_m();
  BevdetTargets t;
  t.heatmap.assign(size_t(batch.frames) * kDetectionClasses * plane, 0.f);
  for (int64_t k = 0; k < batch.num_boxes(); ++k) {
    const float* box = &batch.boxes[size_t(7 * k)];
    const int label = batch.box_labels[size_t(k)], frame = batch.box_frame[size_t(k)];
    if (!finite_box(box) || !(box[3] > 0 && box[4] > 0 && box[5] > 0) || label < 1 || label > kDetectionClasses ||
        frame < 0 || frame >= batch.frames) {
      t.skipped += 1;
      continue;
    }
    const double cx = (box[0] - c.point_range[0]) / cell, cy = (box[1] - c.point_range[1]) / cell;
    if (!(cx >= 0 && cx < wo && cy >= 0 && cy < ho)) continue;  // outside the range: not an object here
    const int ix = int(cx), iy = int(cy);
    const int radius = std::max(c.min_radius, int(gaussian_radius(box[3] / cell, box[4] / cell, c.min_overlap)));
    draw_gaussian(&t.heatmap[size_t((int64_t(frame) * kDetectionClasses + label - 1) * plane)], ho, wo, ix, iy, radius);
    t.positions.push_back(int64_t(frame) * plane + int64_t(iy) * wo + ix);
    const float code[kBoxCodeSize] = {float(cx - ix),   float(cy - iy),   box[2],           std::log(box[3]),
                                      std::log(box[4]), std::log(box[5]), std::sin(box[6]), std::cos(box[6])};
    t.regression.insert(t.regression.end(), code, code + kBoxCodeSize);
  }
  return t;
}

std::vector<Detection> rotated_nms(std::vector<Detection> detections, double iou) {
  std::stable_sort(detections.begin(), detections.end(),
                   [](const Detection& a, const Detection& b) { return a.score > b.score; });
  std::vector<float> boxes;
  std::vector<int32_t> labels;
  for (const Detection& d : detections) {
    boxes.insert(boxes.end(), d.box.begin(), d.box.end());
    labels.push_back(d.label);
  }
  std::vector<uint8_t> keep(detections.size());
  cpu_backend().rotated_nms(boxes.data(), labels.data(), int64_t(detections.size()), iou, nullptr, keep.data());
  std::vector<Detection> kept;
  for (size_t i = 0; i < detections.size(); ++i)
    if (keep[i]) kept.push_back(detections[i]);
  return kept;
}

Bevdet::Bevdet(const BevdetConfig& config) : config_(config) {
  require(config.grid_x() % 8 == 0 && config.grid_y() % 8 == 0 && config.grid_x() > 0 && config.grid_y() > 0,
          "--model.point_range/--model.pillar_size: the pillar grid (" + std::to_string(config.grid_x()) + " × " +
              std::to_string(config.grid_y()) + ") must be a positive multiple of 8 along x and y");
  pfn_.declare(params_, buffers_, "pfn", kPillarFeatures, config.pfn_channels);
  int in = config.pfn_channels;
  for (int b = 0; b < 3; ++b) {
    blocks_[b].resize(size_t(config.layers[b]) + 1);
    for (size_t l = 0; l < blocks_[b].size(); ++l) {
      blocks_[b][l].declare(params_, buffers_, "backbone.blocks." + std::to_string(b) + "." + std::to_string(l), in,
                            config.channels[b], l == 0 ? 2 : 1);
      in = config.channels[b];
    }
  }
  for (int b = 0; b < 3; ++b)
    deblocks_[b].declare_transpose(params_, buffers_, "backbone.deblocks." + std::to_string(b), config.channels[b],
                                   config.upsample_channels, 1 << b);
  shared_.declare(params_, buffers_, "head.shared", 3 * config.upsample_channels, config.head_channels, 1);
  heatmap_hidden_.declare(params_, buffers_, "head.heatmap.0", config.head_channels, config.head_channels, 1);
  heatmap_conv_.declare(params_, "head.heatmap.1", config.head_channels, kDetectionClasses, 3, 1, true);
  reg_hidden_.declare(params_, buffers_, "head.reg.0", config.head_channels, config.head_channels, 1);
  reg_conv_.declare(params_, "head.reg.1", config.head_channels, kBoxCodeSize, 3, 1, true);
  params_.allocate(true);
  buffers_.allocate(false);
  for (const char* name :
       {"pfn", "scatter", "backbone.blocks.0", "backbone.blocks.1", "backbone.blocks.2", "backbone.deblocks", "head"})
    profile_.push_back(LayerProfile{name});
  count_profile_params();
}

void Bevdet::init(uint64_t seed) {
  Rng rng(stream_key(seed, 0xBE0DE7));
  pfn_.init(params_, buffers_, rng);
  for (auto& block : blocks_)
    for (ConvBnRelu& layer : block) layer.init(params_, buffers_, rng);
  for (ConvBnRelu& deblock : deblocks_) deblock.init(params_, buffers_, rng);
  shared_.init(params_, buffers_, rng);
  heatmap_hidden_.init(params_, buffers_, rng);
  heatmap_conv_.init(params_, rng);
  reg_hidden_.init(params_, buffers_, rng);
  reg_conv_.init(params_, rng);
  std::fill(params_.value(heatmap_conv_.bias), params_.value(heatmap_conv_.bias) + kDetectionClasses, kHeatmapBias);
}

void Bevdet::set_sync_bn(const SumOverRanks& sum) {
  pfn_.bn.sync = sum;
  for (auto& block : blocks_)
    for (ConvBnRelu& layer : block) layer.bn.sync = sum;
  for (ConvBnRelu& deblock : deblocks_) deblock.bn.sync = sum;
  shared_.bn.sync = sum;
  heatmap_hidden_.bn.sync = sum;
  reg_hidden_.bn.sync = sum;
}

BevdetInput Bevdet::prepare(const BevdetConfig& c, const PointBatch& batch, bool with_targets) {
  const int nx = c.grid_x(), ny = c.grid_y();
  const float x0 = float(c.point_range[0]), y0 = float(c.point_range[1]), z0 = float(c.point_range[2]);
  const float x1 = float(c.point_range[3]), y1 = float(c.point_range[4]), z1 = float(c.point_range[5]);
  const float pillar = float(c.pillar_m), inv_pillar = 1.f / pillar;
  BevdetInput input;
  input.frames = batch.frames;
  // The points in range, their pillar (column ix, row iy) and flat pillar index.
  std::vector<int32_t> kept, column, row;
  std::vector<int64_t> point_cell;
  kept.reserve(size_t(batch.num_points()));
  column.reserve(kept.capacity()), row.reserve(kept.capacity()), point_cell.reserve(kept.capacity());
  for (int64_t p = 0; p < batch.num_points(); ++p) {
    const float* q = &batch.points[size_t(4 * p)];
    if (!(q[0] >= x0 && q[0] < x1 && q[1] >= y0 && q[1] < y1 && q[2] >= z0 && q[2] < z1)) continue;
    const int ix = std::min(nx - 1, int((q[0] - x0) * inv_pillar)),
              iy = std::min(ny - 1, int((q[1] - y0) * inv_pillar));
    kept.push_back(int32_t(p));
    column.push_back(ix), row.push_back(iy);
    point_cell.push_back((int64_t(batch.frame_of[size_t(p)]) * ny + iy) * nx + ix);
  }
  const int64_t n = input.points = int64_t(kept.size());
  input.cells = ops::build_cell_index(std::move(point_cell), int64_t(batch.frames) * ny * nx);
  // Each pillar's point mean, summed in point order.
  const int64_t pillars = input.cells.occupied();
  std::vector<float> mean(size_t(3 * pillars), 0.f);
  for (int64_t i = 0; i < n; ++i) {
    const float* q = &batch.points[size_t(4 * kept[size_t(i)])];
    float* m = &mean[size_t(3 * input.cells.point_slot[size_t(i)])];
    m[0] += q[0], m[1] += q[1], m[2] += q[2];
  }
  for (int64_t m = 0; m < pillars; ++m) {
    const float count = float(input.cells.cell_start[size_t(m + 1)] - input.cells.cell_start[size_t(m)]);
    for (int k = 0; k < 3; ++k) mean[size_t(3 * m + k)] /= count;
  }
  input.features.resize(size_t(n) * kPillarFeatures);
  for (int64_t i = 0; i < n; ++i) {
    const float* q = &batch.points[size_t(4 * kept[size_t(i)])];
    const float* m = &mean[size_t(3 * input.cells.point_slot[size_t(i)])];
    const float cx = x0 + (float(column[size_t(i)]) + 0.5f) * pillar, cy = y0 + (float(row[size_t(i)]) + 0.5f) * pillar;
    float* f = &input.features[size_t(i) * kPillarFeatures];
    f[0] = q[0], f[1] = q[1], f[2] = q[2], f[3] = q[3];
    f[4] = q[0] - m[0], f[5] = q[1] - m[1], f[6] = q[2] - m[2];
    f[7] = q[0] - cx, f[8] = q[1] - cy;
    f[9] = std::sqrt(q[0] * q[0] + q[1] * q[1] + q[2] * q[2]);
  }
  if (with_targets) {
    input.targets = make_bevdet_targets(c, batch);
    input.loss_weight = double(input.targets.objects());
  }
  return input;
}

void Bevdet::conv_forward(const DeviceParams& p, const Conv2d& conv, const ConvBnRelu& input, float* y) {
  ops::Conv2dShape s = conv.shape;
  s.batch = frames_, s.height = config_.out_y(), s.width = config_.out_x(), s.x_narrow = input.out_narrow;
  p.be().conv2d_forward(input.out.data(), p.value(conv.weight), p.value(conv.bias), y, s);
}

void Bevdet::conv_backward(const DeviceParams& p, const Conv2d& conv, const ConvBnRelu& input, const float* dy,
                           float* dx) {
  ops::Conv2dShape s = conv.shape;
  s.batch = frames_, s.height = config_.out_y(), s.width = config_.out_x(), s.x_narrow = input.out_narrow;
  p.be().conv2d_backward(input.out.data(), p.value(conv.weight), dy, dx, p.grad(conv.weight), p.grad(conv.bias), s);
}

void Bevdet::list_dense_buffers(std::vector<uintptr_t>& addresses) const {
  for (const auto& block : blocks_)
    for (const ConvBnRelu& layer : block) layer.list_buffers(addresses);
  for (const ConvBnRelu* layer :
       {&deblocks_[0], &deblocks_[1], &deblocks_[2], &shared_, &heatmap_hidden_, &reg_hidden_})
    layer->list_buffers(addresses);
  const auto add = [&](const void* pointer) { addresses.push_back(reinterpret_cast<uintptr_t>(pointer)); };
  for (const void* pointer :
       {static_cast<const void*>(device_params_.values), static_cast<const void*>(device_params_.grads),
        static_cast<const void*>(device_params_.buffers), static_cast<const void*>(pseudo_image_.data()),
        static_cast<const void*>(cat_.data()), static_cast<const void*>(heatmap_on_.data()),
        static_cast<const void*>(reg_on_.data()), static_cast<const void*>(dheatmap_.data()),
        static_cast<const void*>(dreg_.data()), static_cast<const void*>(d_cat_.data()),
        static_cast<const void*>(d_shared_.data()), static_cast<const void*>(d_from_reg_.data()),
        static_cast<const void*>(d_hidden_.data())})
    add(pointer);
  for (int b = 0; b < 3; ++b) {
    add(d_up_[b].data());
    add(d_block_out_[b].data());
    for (const Buffer<float>& d : d_layer_in_[b]) add(d.data());
  }
}

float* Bevdet::output(std::vector<float>& host, Buffer<float>& on_backend, size_t count) {
  host.resize(count);
  if (be().host_memory) return host.data();
  on_backend.resize(be(), count);
  return on_backend.data();
}

void Bevdet::forward(BevdetInput input, bool training) {
  const DeviceParams& p = begin_forward();
  const Backend& be = this->be();
  take_input(input);  // on a device: uploaded ahead, or now
  frames_ = input.frames;
  points_ = input.points;
  cells_ = std::move(input.cells);
  features_ = std::move(input.features);
  cells_view_ = input_cell_index(cells_, 0);
  features_on_ = input_array(features_, BevdetInput::kFeatures);
  const int nx = config_.grid_x(), ny = config_.grid_y(), c = config_.pfn_channels, u = config_.upsample_channels;
  const int64_t pillars_per_map = int64_t(nx) * ny, plane = int64_t(config_.out_x()) * config_.out_y();
  const bool fused = fused_inference(training);
  if (fused && !folded()) {
    pfn_.fold(be, params_, buffers_);
    for (auto& block : blocks_)
      for (ConvBnRelu& layer : block) layer.fold(be, params_, buffers_);
    for (ConvBnRelu* layer : {&deblocks_[0], &deblocks_[1], &deblocks_[2], &shared_, &heatmap_hidden_, &reg_hidden_})
      layer->fold(be, params_, buffers_);
    folded_now();
  }
  // Each block exact (training, or eval of a model that is not frozen) or with its BN folded.
  // x narrow: another layer's narrow output (never in folded inference).
  const auto map_block = [&](ConvBnRelu& block, const float* x, int height, int width, bool x_narrow) {
    return fused ? block.forward_folded(be, x, frames_, height, width)
                 : block.forward(p, x, frames_, height, width, training, x_narrow);
  };
  if (fused) {
    // The PFN and its scatter to the pseudo-image in one pass; the per-point output is never kept (the
    // scatter row of the profile stays empty).
    const PhaseTimer t = timer(kPfn, false);
    pfn_.forward_folded_voxelize(be, features_on_, points_, cells_view_, pillars_per_map, pseudo_image_, false);
  } else {
    {
      const PhaseTimer t = timer(kPfn, false);
      pfn_.forward(p, features_on_, points_, training);
    }
    const PhaseTimer t = timer(kScatter, false);
    pseudo_image_.resize(be, size_t(frames_) * c * pillars_per_map);
    argmax_.resize(be, size_t(cells_.occupied()) * c);
    be.voxelize_max_forward(pfn_.out.data(), cells_view_, c, pillars_per_map, pseudo_image_.data(), argmax_.data());
  }
  // The dense part: its shapes depend on the batch size only (a graphed section in training).
  const auto dense = [&] {
    const float* x = pseudo_image_.data();
    bool x_narrow = false;
    int h = ny, w = nx;
    for (int b = 0; b < 3; ++b) {
      const PhaseTimer t = timer(size_t(kBlock0 + b), false);
      for (ConvBnRelu& layer : blocks_[b]) {
        x = map_block(layer, x, h, w, x_narrow);
        h = layer.out_height(), w = layer.out_width(), x_narrow = layer.out_narrow;
      }
    }
    {
      // cat_ holds the deblocks' outputs as they store them (narrow or not): shared_ reads it as theirs.
      const PhaseTimer t = timer(kDeblocks, false);
      for (int b = 0; b < 3; ++b) {
        const ConvBnRelu& last = blocks_[b].back();
        map_block(deblocks_[b], last.out.data(), last.out_height(), last.out_width(), last.out_narrow);
        const bool narrow = deblocks_[b].out_narrow;
        const size_t bytes = narrow ? 2 : sizeof(float), block = size_t(u * plane);
        cat_.resize(be, activation_floats(size_t(frames_) * 3 * block, narrow));
        auto* cat = reinterpret_cast<char*>(cat_.data());
        const auto* up = reinterpret_cast<const char*>(deblocks_[b].out.data());
        for (int f = 0; f < frames_; ++f)
          be.copy(cat + bytes * ((size_t(f) * 3 + b) * block), up + bytes * (size_t(f) * block), bytes * block);
      }
    }
    const PhaseTimer t = timer(kHead, false);
    map_block(shared_, cat_.data(), config_.out_y(), config_.out_x(), deblocks_[0].out_narrow);
    const int ho = config_.out_y(), wo = config_.out_x();
    map_block(heatmap_hidden_, shared_.out.data(), ho, wo, shared_.out_narrow);
    conv_forward(p, heatmap_conv_, heatmap_hidden_,
                 output(heatmap_, heatmap_on_, size_t(frames_) * kDetectionClasses * plane));
    map_block(reg_hidden_, shared_.out.data(), ho, wo, shared_.out_narrow);
    conv_forward(p, reg_conv_, reg_hidden_, output(reg_, reg_on_, size_t(frames_) * kBoxCodeSize * plane));
  };
  if (training)
    run_graphed(dense_forward_, {uintptr_t(frames_)}, dense);
  else
    dense();
  if (!be.host_memory && !training) {  // training: the losses are the device's
    const PhaseTimer t = timer(kHead, false);
    heatmap_on_.download(heatmap_.data());
    reg_on_.download(reg_.data());
  }
  end_forward(training);
  profile_[kPfn].macs = pfn_.linear.macs(points_);
  for (int b = 0; b < 3; ++b) {
    profile_[size_t(kBlock0 + b)].macs = 0;
    for (const ConvBnRelu& layer : blocks_[b]) profile_[size_t(kBlock0 + b)].macs += layer.macs();
  }
  profile_[kDeblocks].macs = deblocks_[0].macs() + deblocks_[1].macs() + deblocks_[2].macs();
  profile_[kHead].macs = shared_.macs() + heatmap_hidden_.macs() + reg_hidden_.macs() +
                         frames_ * plane * int64_t(config_.head_channels) * 9 * (kDetectionClasses + kBoxCodeSize);
}

void Bevdet::forward_loss_on(std::unique_ptr<ModelInput> input, double normaliser, double* total) {
  auto& in = dynamic_cast<BevdetInput&>(*input);
  upload_input(in);  // with its targets, before they move
  const BevdetTargets targets = std::move(in.targets);
  forward(std::move(in), true);
  require(targets.heatmap.size() == heatmap_.size(),
          "bevdet: a training batch needs its targets (prepare with_targets)");
  const Backend& be = this->be();
  const int64_t plane = int64_t(config_.out_x()) * config_.out_y();
  const float inv = float(loss_scale_ / normaliser);
  Buffer<float> rows, drows;
  Buffer<double>& losses = losses_;
  losses.resize(be, 2);
  loss_normaliser_ = normaliser;
  dheatmap_.resize(be, heatmap_.size());
  be.focal_loss(heatmap_on_backend(), input_array(targets.heatmap, BevdetInput::kHeatmap), int64_t(heatmap_.size()),
                dheatmap_.data(), losses.data());
  be.scale(dheatmap_.data(), int64_t(dheatmap_.size()), inv);
  const int64_t k = targets.objects();
  const int64_t* positions_on = input_array(targets.positions, BevdetInput::kPositions);
  rows.resize(be, size_t(k * kBoxCodeSize));
  drows.resize(be, rows.size());
  be.gather_positions_forward(reg_on_backend(), positions_on, k, kBoxCodeSize, plane, rows.data());
  be.l1_loss(rows.data(), input_array(targets.regression, BevdetInput::kRegression), k, kBoxCodeSize, drows.data(),
             losses.data() + 1);
  be.scale(drows.data(), int64_t(drows.size()), float(kRegressionWeight * loss_scale_ / normaliser));
  dreg_.zeros(be, reg_.size());
  be.gather_positions_backward(drows.data(), positions_on, k, kBoxCodeSize, plane, dreg_.data());
  be.add_loss_share(losses.data(), 2, 1.0, kRegressionWeight, normaliser, total);
}

double Bevdet::last_heatmap_loss() const {
  return losses_.to_host()[0] / loss_normaliser_;
}
double Bevdet::last_regression_loss() const {
  return kRegressionWeight * losses_.to_host()[1] / loss_normaliser_;
}

void Bevdet::backward() {
  const DeviceParams& p = device_params_;
  const Backend& be = this->be();
  const int nx = config_.grid_x(), ny = config_.grid_y(), c = config_.pfn_channels, u = config_.upsample_channels;
  const int64_t pillars_per_map = int64_t(nx) * ny, plane = int64_t(config_.out_x()) * config_.out_y();
  // The dense part, from the head's output gradients to the pseudo-image's (a graphed section; every
  // gradient it writes is a member buffer, so its addresses stay put from step to step).
  const auto dense = [&] {
    d_cat_.resize(be, size_t(frames_) * 3 * u * plane);
    {
      const PhaseTimer t = timer(kHead, true);
      const size_t shared_count = size_t(shared_.out_count());
      d_shared_.resize(be, shared_count);
      d_from_reg_.resize(be, shared_count);
      d_hidden_.resize(be, shared_count);
      conv_backward(p, reg_conv_, reg_hidden_, dreg_.data(), d_hidden_.data());
      reg_hidden_.backward(p, shared_.out.data(), d_hidden_.data(), d_from_reg_.data());
      grads_ready(reg_hidden_.first_param());
      conv_backward(p, heatmap_conv_, heatmap_hidden_, dheatmap_.data(), d_hidden_.data());
      heatmap_hidden_.backward(p, shared_.out.data(), d_hidden_.data(), d_shared_.data());
      grads_ready(heatmap_hidden_.first_param());
      be.add(d_shared_.data(), d_from_reg_.data(), int64_t(d_shared_.size()));
      shared_.backward(p, cat_.data(), d_shared_.data(), d_cat_.data());
    }
    grads_ready(shared_.first_param());
    // Every deblock first (their parameters come after the blocks'), then the blocks from the deepest.
    {
      const PhaseTimer t = timer(kDeblocks, true);
      for (int b = 2; b >= 0; --b) {
        d_up_[b].resize(be, size_t(deblocks_[b].out_count()));
        for (int f = 0; f < frames_; ++f)
          be.copy(d_up_[b].data() + int64_t(f) * u * plane, d_cat_.data() + (int64_t(f) * 3 + b) * u * plane,
                  sizeof(float) * size_t(u * plane));
        d_block_out_[b].resize(be, size_t(blocks_[b].back().out_count()));
        deblocks_[b].backward(p, blocks_[b].back().out.data(), d_up_[b].data(), d_block_out_[b].data());
        grads_ready(deblocks_[b].first_param());
      }
    }
    for (int b = 2; b >= 0; --b) {
      const PhaseTimer t = timer(size_t(kBlock0 + b), true);
      d_layer_in_[b].resize(blocks_[b].size());
      float* d = d_block_out_[b].data();  // the gradient at the block's output, then at each layer's input
      for (size_t l = blocks_[b].size(); l-- > 0;) {
        const ConvBnRelu* before = l > 0 ? &blocks_[b][l - 1] : (b > 0 ? &blocks_[b - 1].back() : nullptr);
        const Buffer<float>& input = before ? before->out : pseudo_image_;
        Buffer<float>& dx = d_layer_in_[b][l];
        dx.resize(be, before ? size_t(before->out_count()) : pseudo_image_.size());
        blocks_[b][l].backward(p, input.data(), d, dx.data());
        grads_ready(blocks_[b][l].first_param());
        d = dx.data();
      }
      if (b > 0) be.add(d_block_out_[b - 1].data(), d, int64_t(d_layer_in_[b][0].size()));
    }
  };
  run_graphed(dense_backward_, {uintptr_t(frames_)}, dense);
  const Buffer<float>& d_pseudo = d_layer_in_[0][0];
  Buffer<float> d_point;
  d_point.zeros(be, pfn_.out.size());  // voxelize's backward adds to it
  {
    const PhaseTimer t = timer(kScatter, true);
    be.voxelize_max_backward(d_pseudo.data(), cells_view_, argmax_.data(), c, pillars_per_map, d_point.data());
  }
  {
    const PhaseTimer t = timer(kPfn, true);
    pfn_.backward(p, features_on_, d_point.data(), points_, nullptr);
  }
  grads_ready(0);
  end_backward();
}

std::vector<std::vector<Detection>> Bevdet::decode() const {
  return decode_outputs(config_, be(), heatmap_on_backend(), reg_on_backend(), frames_);
}

std::vector<std::vector<Detection>> Bevdet::decode_outputs(const BevdetConfig& config, const float* heatmap_logits,
                                                           const float* regression, int num_frames) {
  return decode_outputs(config, cpu_backend(), heatmap_logits, regression, num_frames);
}

std::vector<std::vector<Detection>> Bevdet::decode_outputs(const BevdetConfig& config, const Backend& be,
                                                           const float* heatmap_logits, const float* regression,
                                                           int num_frames) {
  const int ho = config.out_y(), wo = config.out_x();
  const int64_t plane = int64_t(ho) * wo, maps_size = kDetectionClasses * plane;
  const double cell = config.cell_m();
  const int top_k = std::max(config.top_k, 0);
  std::vector<std::vector<Detection>> frames(static_cast<size_t>(num_frames));
  // On the backend: the top-K peaks, the regression at them, the NMS; on the host: the box arithmetic
  // (the same code for every backend) and the small copies between.
  Buffer<int64_t> work, top_cells, count, positions;
  Buffer<float> top_scores, rows, boxes;
  Buffer<int32_t> labels;
  Buffer<uint64_t> mask;
  Buffer<uint8_t> keep;
  work.resize(be, size_t(heatmap_top_k_work(maps_size)));
  top_cells.resize(be, size_t(std::max(top_k, 1)));
  top_scores.resize(be, size_t(std::max(top_k, 1)));
  count.resize(be, 1);
  for (int f = 0; f < num_frames; ++f) {
    be.heatmap_top_k(heatmap_logits + int64_t(f) * maps_size, kDetectionClasses, ho, wo, float(config.score_threshold),
                     top_k, work.data(), top_cells.data(), top_scores.data(), count.data());
    int64_t k = 0;
    be.download(&k, count.data(), sizeof(k));
    if (k == 0) continue;
    std::vector<int64_t> cells(static_cast<size_t>(k)), at(static_cast<size_t>(k));
    std::vector<float> scores(static_cast<size_t>(k)), codes(static_cast<size_t>(k * kBoxCodeSize));
    be.download(cells.data(), top_cells.data(), sizeof(int64_t) * size_t(k));
    be.download(scores.data(), top_scores.data(), sizeof(float) * size_t(k));
    for (int64_t r = 0; r < k; ++r) at[size_t(r)] = int64_t(f) * plane + cells[size_t(r)] % plane;
    positions.upload(be, at);
    rows.resize(be, codes.size());
    be.gather_positions_forward(regression, positions.data(), k, kBoxCodeSize, plane, rows.data());
    rows.download(codes.data());
    std::vector<Detection> found;
    std::vector<float> box_values;
    std::vector<int32_t> box_labels;
    for (int64_t r = 0; r < k; ++r) {
      const int64_t hw = cells[size_t(r)] % plane;
      const int iy = int(hw / wo), ix = int(hw % wo);
      const float* code = &codes[size_t(r * kBoxCodeSize)];
      Detection d;
      d.label = int(cells[size_t(r)] / plane) + 1;
      d.score = scores[size_t(r)];
      d.box = {float((ix + code[0]) * cell + config.point_range[0]),
               float((iy + code[1]) * cell + config.point_range[1]),
               code[2],
               std::exp(std::min(code[3], kMaxLogSize)),
               std::exp(std::min(code[4], kMaxLogSize)),
               std::exp(std::min(code[5], kMaxLogSize)),
               std::atan2(code[6], code[7])};
      found.push_back(d);
      box_values.insert(box_values.end(), d.box.begin(), d.box.end());
      box_labels.push_back(d.label);
    }
    if (config.nms_iou > 0) {
      // Best first already (score, then cell): the order rotated_nms keeps.
      boxes.upload(be, box_values);
      labels.upload(be, box_labels);
      mask.resize(be, size_t(k * ((k + 63) / 64)));
      keep.resize(be, size_t(k));
      be.rotated_nms(boxes.data(), labels.data(), k, config.nms_iou, mask.data(), keep.data());
      const std::vector<uint8_t> kept = keep.to_host();
      for (int64_t r = 0; r < k; ++r)
        if (kept[size_t(r)]) frames[size_t(f)].push_back(found[size_t(r)]);
    } else {
      frames[size_t(f)] = std::move(found);
    }
  }
  return frames;
}

std::vector<std::vector<Detection>> Bevdet::detect(const PointBatch& batch) {
  forward(prepare(config_, batch, false), false);
  return decode();
}

std::vector<Prediction> Bevdet::predict(const PointBatch& batch) {
  std::vector<Prediction> predictions;
  for (std::vector<Detection>& frame : detect(batch)) predictions.push_back(Prediction{{}, std::move(frame)});
  return predictions;
}

}  // namespace lt
