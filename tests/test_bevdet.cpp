// bevdet (CenterPoint on PointPillars): rotated IoU, NMS, Gaussian targets, pillar features, decode,
// the whole model's gradient against finite differences, frames without objects, learning, and the
// detection metrics on hand-computed cases.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <numeric>

#include "kernels/common/box_iou.hpp"
#include "src/models/bevdet.hpp"
#include "src/synth/scene.hpp"
#include "src/train/data.hpp"
#include "src/train/detection_eval.hpp"
#include "src/train/optimizer.hpp"

namespace lt {
namespace {

constexpr double kPi = 3.14159265358979323846;

std::array<float, 7> box(float x, float y, float dx, float dy, float heading) {
  return {x, y, 0.f, dx, dy, 1.5f, heading};
}
double iou(const std::array<float, 7>& a, const std::array<float, 7>& b) {
  return bev_iou(a.data(), b.data());
}

// ---- rotated IoU and NMS ---------------------------------------------------------------------------

TEST(BevIou, IdenticalBoxesAreOneWhateverTheHeading) {
  EXPECT_NEAR(iou(box(3, 4, 4.5f, 1.8f, 0.3f), box(3, 4, 4.5f, 1.8f, 0.3f)), 1.0, 1e-12);
  EXPECT_NEAR(iou(box(0, 0, 2, 2, 0), box(0, 0, 2, 2, float(kPi / 2))), 1.0, 1e-7);  // a square turned 90°
}

TEST(BevIou, DisjointBoxesAreZero) {
  EXPECT_EQ(iou(box(0, 0, 2, 2, 0), box(5, 0, 2, 2, 0.7f)), 0.0);
  EXPECT_EQ(iou(box(0, 0, 2, 2, 0), box(2.001f, 0, 2, 2, 0)), 0.0);  // edges almost touching
}

TEST(BevIou, RotatedNinetyDegreesOverlapInTheirCentralSquare) {
  // 2 × 1 and the same turned 90°: they share a 1 × 1 square; union 2 + 2 − 1.
  EXPECT_NEAR(iou(box(0, 0, 2, 1, 0), box(0, 0, 2, 1, float(kPi / 2))), 1.0 / 3.0, 1e-7);
}

TEST(BevIou, FortyFiveDegreesMakeARegularOctagon) {
  // Unit squares, one turned 45°: the intersection is a regular octagon of area 2(√2 − 1).
  const double inter = 2 * (std::sqrt(2.0) - 1);
  EXPECT_NEAR(iou(box(0, 0, 1, 1, 0), box(0, 0, 1, 1, float(kPi / 4))), inter / (2 - inter), 1e-6);
}

TEST(BevIou, ContainmentAndHalfOverlap) {
  EXPECT_NEAR(iou(box(0.5f, 0.2f, 1, 1, 0.4f), box(0, 0, 4, 2, 0)), 1.0 / 8.0, 1e-7);  // inside
  EXPECT_NEAR(iou(box(0, 0, 2, 2, 0), box(1, 0, 2, 2, 0)), 2.0 / 6.0, 1e-7);           // shifted by half
  EXPECT_EQ(iou(box(0, 0, 0, 2, 0), box(0, 0, 2, 2, 0)), 0.0);                         // no area
}

TEST(RotatedNms, KeepsTheBestOfOverlappingBoxesOfOneClass) {
  std::vector<Detection> d(4);
  d[0] = {box(0, 0, 4, 2, 0), 1, 0.6f};
  d[1] = {box(0.3f, 0, 4, 2, 0.05f), 1, 0.9f};  // overlaps d[0], better
  d[2] = {box(0.2f, 0, 4, 2, 0), 2, 0.5f};      // overlaps, but another class
  d[3] = {box(10, 0, 4, 2, 0), 1, 0.4f};        // far away
  const std::vector<Detection> kept = rotated_nms(d, 0.1);
  ASSERT_EQ(kept.size(), 3u);
  EXPECT_FLOAT_EQ(kept[0].score, 0.9f);
  EXPECT_FLOAT_EQ(kept[1].score, 0.5f);
  EXPECT_FLOAT_EQ(kept[2].score, 0.4f);
  EXPECT_EQ(rotated_nms(d, 0.99).size(), 4u);  // nothing overlaps that much
}

// ---- targets -------------------------------------------------------------------------------------

// A small grid: x 0 … 20.48, y −10.24 … 10.24, pillars 0.32 m → 64 × 64 pillars, 32 × 32 head cells of 0.64 m.
BevdetConfig tiny_config() {
  BevdetConfig c;
  c.point_range = {0, -10.24, -3, 20.48, 10.24, 1};
  c.pillar_m = 0.32;
  c.pfn_channels = 8;
  c.layers = {1, 1, 1};
  c.channels = {8, 8, 8};
  c.upsample_channels = 4;
  c.head_channels = 8;
  return c;
}

TEST(GaussianRadius, MatchesOpenPCDetsFormula) {
  // OpenPCDet's gaussian_radius(dx, dy, 0.1) in head cells of 0.64 m, evaluated in Python: a car
  // 4.5 × 1.8 m → min(7.758…, 14.914…, 1.8596…); a pedestrian 0.6 × 0.6 m → 0.40543.
  EXPECT_NEAR(gaussian_radius(4.5 / 0.64, 1.8 / 0.64, 0.1), 1.859589621022034, 1e-9);
  EXPECT_NEAR(gaussian_radius(0.6 / 0.64, 0.6 / 0.64, 0.1), 0.40542706128157113, 1e-9);
}

TEST(DrawGaussian, PeaksAtOneAndKeepsTheMaximumInsideThePlane) {
  std::vector<float> plane(6 * 6, 0.f);
  plane[0] = 0.9f;
  draw_gaussian(plane.data(), 6, 6, 1, 1, 2);  // σ = 5/6; clipped at the top-left border
  const double sigma = 5.0 / 6.0;
  EXPECT_FLOAT_EQ(plane[1 * 6 + 1], 1.f);
  EXPECT_FLOAT_EQ(plane[1 * 6 + 2], float(std::exp(-1 / (2 * sigma * sigma))));
  EXPECT_FLOAT_EQ(plane[2 * 6 + 1], plane[1 * 6 + 2]);  // symmetric
  EXPECT_FLOAT_EQ(plane[3 * 6 + 3], float(std::exp(-8 / (2 * sigma * sigma))));
  EXPECT_FLOAT_EQ(plane[0], std::max(0.9f, float(std::exp(-2 / (2 * sigma * sigma)))));  // max with what was there
  EXPECT_EQ(plane[4 * 6 + 1], 0.f);                                                      // beyond the radius
}

PointBatch boxes_batch(int frames, const std::vector<std::array<float, 7>>& boxes, const std::vector<uint8_t>& labels,
                       const std::vector<int32_t>& box_frame) {
  PointBatch batch;
  batch.frames = frames;
  for (const auto& b : boxes) batch.boxes.insert(batch.boxes.end(), b.begin(), b.end());
  batch.box_labels = labels;
  batch.box_frame = box_frame;
  return batch;
}

TEST(BevdetTargets, HeatmapPeakAndRegressionAtTheObjectsCell) {
  const BevdetConfig c = tiny_config();
  const float nan = std::numeric_limits<float>::quiet_NaN();
  const PointBatch batch = boxes_batch(2,
                                       {{5.3f, -3.1f, -0.9f, 4.2f, 1.7f, 1.5f, 0.4f},   // car, frame 1
                                        {2.0f, 1.0f, -1.0f, 0.6f, 0.6f, 1.7f, 0.0f},    // pedestrian, frame 0
                                        {nan, 1.0f, -1.0f, 0.6f, 0.6f, 1.7f, 0.0f},     // NaN: skipped
                                        {3.0f, 1.0f, -1.0f, 0.0f, 0.6f, 1.7f, 0.0f},    // zero size: skipped
                                        {3.0f, 1.0f, -1.0f, 1.0f, 0.6f, 1.7f, 0.0f},    // class 7: skipped
                                        {30.0f, 1.0f, -1.0f, 1.0f, 0.6f, 1.7f, 0.0f}},  // out of range
                                       {1, 2, 2, 2, 7, 1}, {1, 0, 0, 0, 0, 0});
  const BevdetTargets t = make_bevdet_targets(c, batch);
  EXPECT_EQ(t.skipped, 3);
  ASSERT_EQ(t.objects(), 2);
  const int wo = c.out_x(), ho = c.out_y();
  ASSERT_EQ(wo, 32);
  const int64_t plane = int64_t(wo) * ho;
  // The car: head cell ((5.3 − 0) / 0.64, (−3.1 + 10.24) / 0.64) = (8.28…, 11.15…) → (8, 11).
  const double cx = 5.3 / 0.64, cy = (-3.1 + 10.24) / 0.64;
  EXPECT_EQ(t.positions[0], 1 * plane + 11 * wo + 8);
  EXPECT_FLOAT_EQ(t.heatmap[size_t((1 * kDetectionClasses + 0) * plane + 11 * wo + 8)], 1.f);
  EXPECT_NEAR(t.regression[0], cx - 8, 1e-5);
  EXPECT_NEAR(t.regression[1], cy - 11, 1e-5);
  EXPECT_FLOAT_EQ(t.regression[2], -0.9f);
  EXPECT_FLOAT_EQ(t.regression[3], std::log(4.2f));
  EXPECT_FLOAT_EQ(t.regression[6], std::sin(0.4f));
  EXPECT_FLOAT_EQ(t.regression[7], std::cos(0.4f));
  // The pedestrian is on frame 0's pedestrian plane; frame 0's car plane has nothing.
  EXPECT_FLOAT_EQ(t.heatmap[size_t((0 * kDetectionClasses + 1) * plane + int(11.24 / 0.64) * wo + int(2.0 / 0.64))],
                  1.f);
  for (int64_t i = 0; i < plane; ++i) EXPECT_EQ(t.heatmap[size_t(i)], 0.f);
}

TEST(BevdetTargets, AFrameWithoutObjectsHasAnEmptyHeatmap) {
  const BevdetTargets t = make_bevdet_targets(tiny_config(), boxes_batch(1, {}, {}, {}));
  EXPECT_EQ(t.objects(), 0);
  EXPECT_EQ(t.heatmap.size(), size_t(kDetectionClasses * 32 * 32));
  EXPECT_TRUE(std::all_of(t.heatmap.begin(), t.heatmap.end(), [](float v) { return v == 0.f; }));
}

// ---- pillar features ----------------------------------------------------------------------------

TEST(BevdetPrepare, PillarFeaturesAndPointsOutOfRangeDropped) {
  const BevdetConfig c = tiny_config();
  PointBatch batch;
  batch.frames = 1;
  batch.points = {0.10f, 0.05f, -1.0f, 0.5f,   // pillar (ix 0, iy 32): y −10.24 + 32·0.32 = 0 … 0.32
                  0.20f, 0.25f, 0.0f,  0.1f,   // same pillar
                  -1.0f, 0.0f,  0.0f,  0.2f,   // x < 0: out of range
                  5.0f,  0.0f,  2.0f,  0.3f};  // z ≥ 1: out of range
  batch.frame_of = {0, 0, 0, 0};
  const BevdetInput in = Bevdet::prepare(c, batch, false);
  ASSERT_EQ(in.points, 2);
  ASSERT_EQ(in.cells.occupied(), 1);
  EXPECT_EQ(in.cells.cells[0], 32 * 64 + 0);
  const float* f = in.features.data();
  EXPECT_FLOAT_EQ(f[4], 0.10f - 0.15f);  // x − mean x
  EXPECT_FLOAT_EQ(f[5], 0.05f - 0.15f);
  EXPECT_FLOAT_EQ(f[6], -1.0f + 0.5f);
  EXPECT_NEAR(f[7], 0.10f - 0.16f, 1e-6);  // x − pillar centre
  EXPECT_NEAR(f[8], 0.05f - 0.16f, 1e-6);
  EXPECT_FLOAT_EQ(f[9], std::sqrt(0.01f + 0.0025f + 1.0f));
  EXPECT_FLOAT_EQ(f[10 + 3], 0.1f);
}

// ---- decode -------------------------------------------------------------------------------------

// Head outputs that say exactly what the targets say: logit +8 at object centres, −8 elsewhere; the
// regression maps hold the targets at the centres.
void perfect_outputs(const BevdetConfig& c, const BevdetTargets& t, int frames, std::vector<float>& heatmap,
                     std::vector<float>& reg) {
  const int64_t plane = int64_t(c.out_x()) * c.out_y();
  heatmap.assign(t.heatmap.size(), -8.f);
  for (size_t i = 0; i < heatmap.size(); ++i)
    if (t.heatmap[i] == 1.f) heatmap[i] = 8.f;
  reg.assign(size_t(frames) * kBoxCodeSize * plane, 0.f);
  for (int64_t k = 0; k < t.objects(); ++k) {
    const int64_t b = t.positions[size_t(k)] / plane, hw = t.positions[size_t(k)] % plane;
    for (int ch = 0; ch < kBoxCodeSize; ++ch)
      reg[size_t((b * kBoxCodeSize + ch) * plane + hw)] = t.regression[size_t(k * kBoxCodeSize + ch)];
  }
}

TEST(BevdetDecode, RecoversTheBoxesTheTargetsEncode) {
  const BevdetConfig c = tiny_config();
  const std::array<float, 7> car = {5.3f, -3.1f, -0.9f, 4.2f, 1.7f, 1.5f, 2.5f},
                             cyclist = {2.0f, 2.2f, -1.0f, 1.8f, 0.6f, 1.7f, -1.0f};
  const PointBatch batch = boxes_batch(2, {car, cyclist}, {1, 3}, {0, 1});
  std::vector<float> heatmap, reg;
  perfect_outputs(c, make_bevdet_targets(c, batch), 2, heatmap, reg);
  const auto frames = Bevdet::decode_outputs(c, heatmap.data(), reg.data(), 2);
  ASSERT_EQ(frames.size(), 2u);
  ASSERT_EQ(frames[0].size(), 1u);
  ASSERT_EQ(frames[1].size(), 1u);
  EXPECT_EQ(frames[0][0].label, 1);
  EXPECT_EQ(frames[1][0].label, 3);
  EXPECT_NEAR(frames[0][0].score, 1 / (1 + std::exp(-8.0)), 1e-6);
  for (int i = 0; i < 7; ++i) {
    EXPECT_NEAR(frames[0][0].box[size_t(i)], car[size_t(i)], 1e-5) << i;
    EXPECT_NEAR(frames[1][0].box[size_t(i)], cyclist[size_t(i)], 1e-5) << i;
  }
}

TEST(BevdetDecode, MoreObjectsThanTopKKeepsTheKBest) {
  BevdetConfig c = tiny_config();
  c.top_k = 3;
  std::vector<std::array<float, 7>> boxes;
  for (int i = 0; i < 5; ++i) boxes.push_back({1.0f + 2.0f * float(i), 0.0f, -1.0f, 0.6f, 0.6f, 1.7f, 0.0f});
  const PointBatch batch = boxes_batch(1, boxes, {2, 2, 2, 2, 2}, {0, 0, 0, 0, 0});
  std::vector<float> heatmap, reg;
  perfect_outputs(c, make_bevdet_targets(c, batch), 1, heatmap, reg);
  // Different confidences: object i at logit 1 + i.
  const int64_t plane = int64_t(c.out_x()) * c.out_y();
  for (int i = 0; i < 5; ++i) {
    const int64_t cell = int64_t(10.24 / 0.64) * c.out_x() + int64_t((1.0 + 2.0 * i) / 0.64);
    heatmap[size_t(plane + cell)] = float(1 + i);
  }
  const auto frames = Bevdet::decode_outputs(c, heatmap.data(), reg.data(), 1);
  ASSERT_EQ(frames[0].size(), 3u);
  EXPECT_NEAR(frames[0][0].box[0], 9.0f, 1e-5);  // the most confident first
  EXPECT_NEAR(frames[0][1].box[0], 7.0f, 1e-5);
  EXPECT_NEAR(frames[0][2].box[0], 5.0f, 1e-5);
  c.score_threshold = 0.99;  // sigmoid(5) = 0.993 only
  EXPECT_EQ(Bevdet::decode_outputs(c, heatmap.data(), reg.data(), 1)[0].size(), 1u);
}

// ---- the whole model ------------------------------------------------------------------------------

Frame cropped_frame(int64_t index, const BevdetConfig& c) {
  const Frame full = synth::synth_frame(11, index, 1.0, synth::SensorModel{});
  Frame frame;
  frame.id = full.id;
  for (int64_t i = 0; i < full.num_points(); ++i) {
    const float* p = &full.points[size_t(4 * i)];
    if (p[0] >= c.point_range[0] && p[0] < c.point_range[3] && p[1] >= c.point_range[1] && p[1] < c.point_range[4])
      frame.points.insert(frame.points.end(), p, p + 4);
  }
  frame.boxes = full.boxes;
  frame.box_labels = full.box_labels;
  return frame;
}

// The objects of a frame whose centres are in range.
void keep_objects_in_range(Frame& frame, const BevdetConfig& c) {
  std::vector<float> boxes;
  std::vector<uint8_t> labels;
  for (int64_t k = 0; k < frame.num_boxes(); ++k) {
    const float* b = &frame.boxes[size_t(7 * k)];
    if (b[0] < c.point_range[0] || b[0] >= c.point_range[3] || b[1] < c.point_range[1] || b[1] >= c.point_range[4])
      continue;
    boxes.insert(boxes.end(), b, b + 7);
    labels.push_back(frame.box_labels[size_t(k)]);
  }
  frame.boxes = boxes;
  frame.box_labels = labels;
}

// A batch of one synthetic frame (the first of seed 11 with a car and a pedestrian in range), cropped.
PointBatch model_batch(const BevdetConfig& c) {
  for (int64_t index = 0;; ++index) {
    Frame frame = cropped_frame(index, c);
    keep_objects_in_range(frame, c);
    const auto& l = frame.box_labels;
    if (std::count(l.begin(), l.end(), 1) > 0 && std::count(l.begin(), l.end(), 2) > 0) return make_batch({frame});
  }
}

double loss_of(Bevdet& model, const PointBatch& batch) {
  auto input = model.prepare(batch, true);
  const double normaliser = model.loss_normaliser(input->loss_weight);
  return model.forward_loss(std::move(input), normaliser);
}

// `steps` AdamW steps at lr 3e-3 on one batch; returns the loss of the last.
double train(Bevdet& model, Optimizer& optimizer, const PointBatch& batch, int steps) {
  double loss = 0;
  for (int s = 0; s < steps; ++s) {
    model.params().zero_grads();
    loss = loss_of(model, batch);
    model.backward();
    optimizer.step(model.params(), 3e-3);
  }
  return loss;
}

TEST(Bevdet, ParameterNamesAndShapes) {
  Bevdet model(tiny_config());
  EXPECT_EQ(model.params().find("pfn.0.weight")->shape, (std::vector<int64_t>{8, 10}));
  EXPECT_EQ(model.params().find("backbone.blocks.1.0.0.weight")->shape, (std::vector<int64_t>{8, 8, 3, 3}));
  EXPECT_EQ(model.params().find("backbone.deblocks.2.0.weight")->shape, (std::vector<int64_t>{8, 4, 4, 4}));
  EXPECT_EQ(model.params().find("backbone.deblocks.0.0.weight")->shape, (std::vector<int64_t>{8, 4, 1, 1}));
  EXPECT_EQ(model.params().find("head.shared.0.weight")->shape, (std::vector<int64_t>{8, 12, 3, 3}));
  EXPECT_EQ(model.params().find("head.heatmap.0.0.weight")->shape, (std::vector<int64_t>{8, 8, 3, 3}));
  EXPECT_EQ(model.params().find("head.heatmap.1.weight")->shape, (std::vector<int64_t>{3, 8, 3, 3}));
  EXPECT_EQ(model.params().find("head.reg.1.bias")->shape, (std::vector<int64_t>{8}));
  model.init(1);
  EXPECT_FLOAT_EQ(model.params().value(model.params().find("head.heatmap.1.bias")->offset)[2], -2.19f);
}

// d loss / d parameter from backward against central differences of the loss, for the parameters with
// the largest gradients of every layer. The loss is piecewise smooth (ReLU, the pillars' max, L1): where
// a kink lies within the step, the difference quotient is not the derivative (it converges to it as h
// shrinks: 0.388, 0.437, 0.467, 0.492 → 0.498 for h = 0.1, 0.01, 0.001, 0.0003 on one PFN BN weight).
// So each entry is differenced with h, h/3 and h/9; where neighbours disagree by more than 1 % the entry
// sits on a kink and is passed over; the others must match backward to 2 %, and most entries must count.
TEST(Bevdet, GradientMatchesFiniteDifferencesInEveryLayer) {
  const BevdetConfig c = tiny_config();
  const PointBatch batch = model_batch(c);
  Bevdet model(c);
  model.init(2);
  model.params().zero_grads();
  loss_of(model, batch);
  model.backward();
  const std::vector<float> grads = model.params().grads();
  ParamStore& params = model.params();
  const auto difference = [&](int64_t i, float h) {
    const float saved = params.values()[size_t(i)];
    params.values()[size_t(i)] = saved + h;
    const double plus = loss_of(model, batch);
    params.values()[size_t(i)] = saved - h;
    const double minus = loss_of(model, batch);
    params.values()[size_t(i)] = saved;
    return (plus - minus) / (2.0 * double(h));
  };
  int candidates = 0, checked = 0;
  for (const TensorView& view : params.views()) {
    std::vector<int64_t> order(size_t(view.size));
    std::iota(order.begin(), order.end(), int64_t(0));
    const int64_t top = std::min<int64_t>(3, view.size);
    std::partial_sort(order.begin(), order.begin() + top, order.end(), [&](int64_t a, int64_t b) {
      return std::abs(grads[size_t(view.offset + a)]) > std::abs(grads[size_t(view.offset + b)]);
    });
    for (int64_t k = 0; k < top; ++k) {
      const int64_t i = view.offset + order[size_t(k)];
      const double analytic = grads[size_t(i)];
      if (std::abs(analytic) < 1e-2) continue;  // below float differences' resolution
      ++candidates;
      const float h = 2e-4f * std::max(1.f, std::abs(params.values()[size_t(i)]));
      const double coarse = difference(i, h), fine = difference(i, h / 3), finer = difference(i, h / 9);
      // A kink within the step: the quotients still move as the step shrinks (with many pillars' maxima
      // near each other, h and h/3 can agree and both be off, which h/9 shows). The absolute slack is the
      // float loss's rounding in the quotient, which grows as 1/h: 1e-3 at h/3, 3e-3 at h/9 (with 1e-3
      // there, the kernels' summation order alone moved entries of 0.1 across the line).
      if (std::abs(coarse - fine) > 0.01 * std::abs(fine) + 1e-3 ||
          std::abs(fine - finer) > 0.015 * std::abs(finer) + 3e-3)
        continue;
      EXPECT_NEAR(fine, analytic, 0.02 * std::abs(analytic) + 1e-3) << view.name << "[" << order[size_t(k)] << "]";
      ++checked;
    }
  }
  EXPECT_GE(checked, candidates * 2 / 3) << checked << " of " << candidates << " entries away from kinks";
  EXPECT_GE(checked, int(params.views().size()));
}

TEST(Bevdet, AFrameWithNoObjectsHasAFiniteLossAndLearnsItsBackground) {
  const BevdetConfig c = tiny_config();
  Frame frame = cropped_frame(4, c);
  frame.boxes.clear();
  frame.box_labels.clear();
  const PointBatch batch = make_batch({frame});
  Bevdet model(c);
  model.init(3);
  auto input = model.prepare(batch, true);
  EXPECT_EQ(input->loss_weight, 0.0);
  EXPECT_EQ(model.loss_normaliser(0.0), 1.0);
  model.params().zero_grads();
  const double loss = model.forward_loss(std::move(input), 1.0);
  model.backward();
  EXPECT_TRUE(std::isfinite(loss));
  EXPECT_GT(loss, 0.0);
  EXPECT_EQ(model.last_regression_loss(), 0.0);
  double norm = 0;
  for (float g : model.params().grads()) {
    ASSERT_TRUE(std::isfinite(g));
    norm += double(g) * g;
  }
  EXPECT_GT(norm, 0.0);
}

TEST(Bevdet, SameSeedGivesBitIdenticalParametersAfterTraining) {
  const BevdetConfig c = tiny_config();
  const PointBatch batch = model_batch(c);
  std::vector<float> first;
  for (int run = 0; run < 2; ++run) {
    Bevdet model(c);
    model.init(5);
    Optimizer optimizer(OptimizerConfig{}, model.params().size());
    for (int s = 0; s < 3; ++s) {
      model.params().zero_grads();
      loss_of(model, batch);
      model.backward();
      optimizer.step(model.params(), 1e-2);
    }
    if (run == 0)
      first = model.params().values();
    else
      EXPECT_EQ(0, std::memcmp(first.data(), model.params().values().data(), first.size() * sizeof(float)));
  }
}

TEST(Bevdet, LearnsToFindTheObjectsOfABatch) {
  const BevdetConfig c = tiny_config();
  const PointBatch batch = model_batch(c);
  Bevdet model(c);
  model.init(4);
  Optimizer optimizer(OptimizerConfig{}, model.params().size());
  const double first = train(model, optimizer, batch, 1), last = train(model, optimizer, batch, 149);
  EXPECT_LT(last, 0.2 * first);
  const std::vector<Detection> found = model.detect(batch).front();
  ASSERT_FALSE(found.empty());
  // The best detection of each class is one of its objects, to within a BEV IoU of 0.5.
  for (int label : {1, 2}) {
    const Detection* best = nullptr;
    for (const Detection& d : found)
      if (d.label == label && (!best || d.score > best->score)) best = &d;
    ASSERT_NE(best, nullptr) << label;
    double best_iou = 0;
    for (int64_t k = 0; k < batch.num_boxes(); ++k)
      if (batch.box_labels[size_t(k)] == label)
        best_iou = std::max(best_iou, bev_iou(best->box.data(), &batch.boxes[size_t(7 * k)]));
    EXPECT_GT(best_iou, 0.5) << label;
  }
}

// Inference on a frozen model folds every BatchNorm (once) and runs the fused ops: the heatmap logits and
// the regression agree with the exact eval-mode forward to 1e-5 relative, and the detections are the same.
TEST(Bevdet, FrozenInferenceWithBatchNormFoldedAgreesWithTheExactForward) {
  const BevdetConfig c = tiny_config();
  const PointBatch batch = model_batch(c);
  Bevdet model(c);
  model.init(4);
  Optimizer optimizer(OptimizerConfig{}, model.params().size());
  train(model, optimizer, batch, 10);  // running statistics away from their initial 0 and 1
  const std::vector<std::vector<Detection>> exact_boxes = model.detect(batch);
  const std::vector<float> exact_heatmap = model.heatmap_logits(), exact_reg = model.regression();
  model.freeze_for_inference();
  const std::vector<std::vector<Detection>> folded_boxes = model.detect(batch);
  const auto relative = [](const std::vector<float>& a, const std::vector<float>& b) {
    double diff = 0, scale = 0;
    for (size_t i = 0; i < a.size(); ++i) {
      diff = std::max(diff, std::abs(double(a[i]) - double(b[i])));
      scale = std::max(scale, std::abs(double(a[i])));
    }
    return diff / scale;
  };
  ASSERT_EQ(model.heatmap_logits().size(), exact_heatmap.size());
  EXPECT_LE(relative(exact_heatmap, model.heatmap_logits()), 1e-5);
  EXPECT_LE(relative(exact_reg, model.regression()), 1e-5);
  EXPECT_NE(0, std::memcmp(exact_heatmap.data(), model.heatmap_logits().data(), sizeof(float) * exact_heatmap.size()))
      << "the fused path ran";
  ASSERT_EQ(folded_boxes.size(), exact_boxes.size());
  ASSERT_EQ(folded_boxes[0].size(), exact_boxes[0].size());
  ASSERT_FALSE(exact_boxes[0].empty());
  for (size_t k = 0; k < exact_boxes[0].size(); ++k) {
    EXPECT_EQ(folded_boxes[0][k].label, exact_boxes[0][k].label) << k;
    EXPECT_NEAR(folded_boxes[0][k].score, exact_boxes[0][k].score, 1e-5) << k;
    for (int j = 0; j < 7; ++j) EXPECT_NEAR(folded_boxes[0][k].box[j], exact_boxes[0][k].box[j], 1e-4) << k;
  }
}

// ---- metrics on hand-computed cases ----------------------------------------------------------------

TEST(DetectionMetrics, PerfectDetectionsScoreOne) {
  DetectionMetrics m;
  const std::array<float, 7> car = box(10, 2, 4.5f, 1.8f, 0.2f);
  match_frame(std::vector<float>(car.begin(), car.end()), {1}, {{car, 1, 0.8f}}, m);
  finish_detection_metrics(m);
  EXPECT_DOUBLE_EQ(m.ap_bev[0], 1.0);
  for (double ap : m.ap_distance[0]) EXPECT_DOUBLE_EQ(ap, 1.0);
  EXPECT_TRUE(std::isnan(m.ap_bev[1]));  // no pedestrians: not a class of the mean
  EXPECT_DOUBLE_EQ(m.mean_ap_bev, 1.0);
}

TEST(DetectionMetrics, AFalsePositiveBetweenTwoHits) {
  // Two cars; detections by score: hit (0.9), a false positive (0.8), hit (0.7).
  // Recall / precision: 0.5 / 1, 0.5 / 0.5, 1 / 0.667.
  // R40: recall points 1/40 … 20/40 take 1, 21/40 … 40/40 take 2/3 → (20 + 20·2/3) / 40 = 5/6.
  // nuScenes: precision at recall r interpolated between (0.5, 0.5) and (1, 2/3) above 0.5 and 1 at or
  // below it (its first point's precision); AP = mean over r = 0.11 … 1 of (p − 0.1) / 0.9.
  DetectionMetrics m;
  const std::array<float, 7> a = box(10, 2, 4.5f, 1.8f, 0), b = box(20, -4, 4.5f, 1.8f, 1.0f);
  std::vector<float> truth(a.begin(), a.end());
  truth.insert(truth.end(), b.begin(), b.end());
  match_frame(truth, {1, 1}, {{a, 1, 0.9f}, {box(40, 10, 4.5f, 1.8f, 0), 1, 0.8f}, {b, 1, 0.7f}}, m);
  finish_detection_metrics(m);
  EXPECT_NEAR(m.ap_bev[0], 5.0 / 6.0, 1e-12);
  double want = 0;
  for (int k = 11; k <= 100; ++k) {
    const double r = k / 100.0;
    const double p = r <= 0.5 ? 1.0 : 0.5 + (r - 0.5) / 0.5 * (2.0 / 3.0 - 0.5);
    want += (p - 0.1) / 90;
  }
  EXPECT_NEAR(m.ap_distance[0][0], want / 0.9, 1e-9);
}

TEST(DetectionMetrics, ThresholdsAndDuplicates) {
  DetectionMetrics m;
  const std::array<float, 7> car = box(0, 0, 4, 2, 0);
  // Shifted 0.6 m along the length: IoU 3.4·2 / (8 + 8 − 6.8) = 0.739 ≥ 0.7 (a hit), centre 0.6 m away:
  // a miss at 0.5 m, a hit at 1 m. A duplicate of it comes second: a false positive everywhere.
  const std::array<float, 7> shifted = box(0.6f, 0, 4, 2, 0);
  match_frame(std::vector<float>(car.begin(), car.end()), {1}, {{shifted, 1, 0.9f}, {shifted, 1, 0.5f}}, m);
  ASSERT_EQ(m.matches[0].hits.size(), 2u);
  EXPECT_EQ(m.matches[0].hits[0], (std::array<uint8_t, kMatchCriteria>{1, 0, 1, 1, 1}));
  EXPECT_EQ(m.matches[0].hits[1], (std::array<uint8_t, kMatchCriteria>{0, 0, 0, 0, 0}));
  // Shifted 1 m: IoU 3·2 / (16 − 6) = 0.6 < 0.7: a miss for a car, a hit at a pedestrian's 0.5.
  DetectionMetrics loose;
  loose.iou_thresholds = {0.5, 0.5, 0.5};
  match_frame(std::vector<float>(car.begin(), car.end()), {1}, {{box(1, 0, 4, 2, 0), 1, 0.9f}}, loose);
  EXPECT_EQ(loose.matches[0].hits[0][0], 1);
  DetectionMetrics strict;
  match_frame(std::vector<float>(car.begin(), car.end()), {1}, {{box(1, 0, 4, 2, 0), 1, 0.9f}}, strict);
  EXPECT_EQ(strict.matches[0].hits[0][0], 0);
  finish_detection_metrics(strict);
  EXPECT_EQ(strict.ap_bev[0], 0.0);
}

TEST(DetectionMetrics, NoDetectionsIsZeroAP) {
  DetectionMetrics m;
  const std::array<float, 7> ped = box(3, 3, 0.6f, 0.6f, 0);
  match_frame(std::vector<float>(ped.begin(), ped.end()), {2}, {}, m);
  finish_detection_metrics(m);
  EXPECT_EQ(m.ap_bev[1], 0.0);
  EXPECT_EQ(m.ap_distance[1][3], 0.0);
}

}  // namespace
}  // namespace lt
