// The semseg model and what trains it: BN running statistics, determinism, learning, checkpoints,
// metrics, data order and augmentation.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <limits>
#include <set>

#include "io/checkpoint.hpp"
#include "io/raw_formats.hpp"
#include "kernels/cpu/ops.hpp"
#include "src/common/rng.hpp"
#include "src/models/semseg.hpp"
#include "src/synth/scene.hpp"
#include "src/train/data.hpp"
#include "src/train/evaluate.hpp"
#include "src/train/optimizer.hpp"
#include "tests/hdf5_version1.hpp"
#include "tests/test_util.hpp"

namespace lt {
namespace {

// A small model and small frames, so that a few training steps take well under a second.
SemsegConfig tiny_config() {
  SemsegConfig c;
  c.voxel_size_m = 1.6;
  c.point_channels = {8, 16};
  c.bev_channels = {8, 16, 16};
  c.head_channels = 8;
  return c;
}

Frame small_frame(int64_t index, int keep_every = 8) {
  const Frame full = synth::synth_frame(7, index, 1.0, synth::SensorModel{});
  Frame frame;
  frame.id = full.id;
  for (int64_t i = 0; i < full.num_points(); i += keep_every) {
    frame.points.insert(frame.points.end(), &full.points[4 * i], &full.points[4 * i + 4]);
    frame.labels.push_back(full.labels[i]);
  }
  return frame;
}

double train_steps(Semseg& model, Optimizer& optimizer, const PointBatch& batch, int steps) {
  double loss = 0;
  for (int s = 0; s < steps; ++s) {
    const std::vector<float>& logits = model.forward(batch, true);
    std::vector<float> dlogits(logits.size());
    loss = ops::cross_entropy<float>(logits.data(), batch.labels.data(), batch.num_points(), kNumSemanticClasses,
                                     nullptr, 0, dlogits.data());
    model.params().zero_grads();
    model.backward(dlogits);
    clip_grad_norm(model.params().grads(), 10);
    optimizer.step(model.params(), 1e-2);
  }
  return loss;
}

TEST(BatchNormLayer, TracksRunningStatisticsAndUsesThemInEval) {
  ParamStore params, buffers;
  BatchNorm bn;
  bn.declare(params, buffers, "bn", 2);
  params.allocate(true);
  buffers.allocate(false);
  bn.init(params, buffers);
  const std::vector<float> x = {1, 10, 3, 20, 5, 30, 7, 40};  // (4 points, 2 channels)
  std::vector<float> y(x.size());
  const DeviceParams on_cpu = host_params(params, buffers);
  bn.forward(on_cpu, x.data(), {4, 2, 1}, true, y.data());
  // Channel 0: mean 4, biased var 5, unbiased var 20/3; momentum 0.1 from (0, 1).
  EXPECT_FLOAT_EQ(buffers.value(bn.running_mean)[0], 0.4f);
  EXPECT_FLOAT_EQ(buffers.value(bn.running_var)[0], 0.9f + 0.1f * 20.f / 3.f);
  EXPECT_NEAR(y[0], (1 - 4) / std::sqrt(5 + 1e-5), 1e-5);
  bn.forward(on_cpu, x.data(), {4, 2, 1}, false, y.data());
  EXPECT_NEAR(y[0], (1 - 0.4) / std::sqrt(0.9 + 2.0 / 3.0 + 1e-5), 1e-5);
}

TEST(Semseg, ParameterNamesFollowPyTorch) {
  Semseg model(tiny_config());
  EXPECT_NE(model.params().find("point_mlp.0.0.weight"), nullptr);
  EXPECT_EQ(model.params().find("point_mlp.0.0.weight")->shape, (std::vector<int64_t>{8, 8}));
  EXPECT_EQ(model.params().find("bev.enc2.0.0.weight")->shape, (std::vector<int64_t>{16, 8, 3, 3}));
  EXPECT_EQ(model.params().find("bev.up1.0.weight")->shape, (std::vector<int64_t>{16, 8, 2, 2}));
  EXPECT_EQ(model.params().find("head.1.weight")->shape, (std::vector<int64_t>{20, 8}));
  EXPECT_FALSE(model.params().find("head.1.bias")->decay);
  EXPECT_FALSE(model.params().find("bev.dec1.1.weight")->decay);  // BN
  EXPECT_NE(model.buffers().find("bev.dec1.1.running_var"), nullptr);
}

TEST(Semseg, SameSeedGivesBitIdenticalParametersAfterTraining) {
  const PointBatch batch = make_batch({small_frame(0), small_frame(1)});
  std::vector<float> first;
  for (int run = 0; run < 2; ++run) {
    Semseg model(tiny_config());
    model.init(5);
    Optimizer optimizer(OptimizerConfig{}, model.params().size());
    train_steps(model, optimizer, batch, 3);
    if (run == 0)
      first = model.params().values();
    else
      EXPECT_EQ(0, std::memcmp(first.data(), model.params().values().data(), first.size() * sizeof(float)));
  }
}

TEST(Semseg, LearnsABatch) {
  const PointBatch batch = make_batch({small_frame(2), small_frame(3)});
  Semseg model(tiny_config());
  model.init(1);
  Optimizer optimizer(OptimizerConfig{}, model.params().size());
  const double before = train_steps(model, optimizer, batch, 1);
  const double after = train_steps(model, optimizer, batch, 60);
  EXPECT_LT(after, 0.25 * before);
  const auto predicted = predict_labels(model.forward(batch, false), batch.num_points());
  int64_t correct = 0;
  for (int64_t p = 0; p < batch.num_points(); ++p) correct += predicted[p] == batch.labels[p] ? 1 : 0;
  EXPECT_GT(double(correct) / double(batch.num_points()), 0.7);
}

// Relative agreement of two logit arrays: max |a − b| over max |a|.
double max_relative_difference(const std::vector<float>& a, const std::vector<float>& b) {
  double diff = 0, scale = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    diff = std::max(diff, std::abs(double(a[i]) - double(b[i])));
    scale = std::max(scale, std::abs(double(a[i])));
  }
  return diff / std::max(scale, 1e-30);
}

// The points whose label differs, of those whose best two exact logits are further apart than `margin`
// (relative to the largest logit): a folded path may flip only near-ties.
int64_t labels_differing_beyond_ties(const std::vector<float>& exact, const std::vector<float>& folded, double margin) {
  double scale = 0;
  for (float v : exact) scale = std::max(scale, std::abs(double(v)));
  const int64_t points = int64_t(exact.size()) / kNumSemanticClasses;
  const auto a = predict_labels(exact, points), b = predict_labels(folded, points);
  int64_t differing = 0;
  for (int64_t p = 0; p < points; ++p) {
    if (a[p] == b[p]) continue;
    std::vector<float> row(exact.begin() + p * kNumSemanticClasses, exact.begin() + (p + 1) * kNumSemanticClasses);
    std::sort(row.begin() + 1, row.end(), std::greater<float>());  // id 0 (unlabelled) is never predicted
    differing += double(row[1]) - double(row[2]) > margin * scale ? 1 : 0;
  }
  return differing;
}

// Inference on a frozen model folds every BatchNorm into the layer before it (once, at the first forward)
// and runs the fused ops; the logits agree with the exact eval-mode forward to 1e-5 relative.
TEST(Semseg, FrozenInferenceWithBatchNormFoldedAgreesWithTheExactForward) {
  const PointBatch batch = make_batch({small_frame(2), small_frame(3)});
  Semseg model(tiny_config());
  model.init(3);
  Optimizer optimizer(OptimizerConfig{}, model.params().size());
  train_steps(model, optimizer, batch, 8);  // running statistics away from their initial 0 and 1
  const std::vector<float> exact = model.forward(batch, false);
  model.freeze_for_inference();
  const std::vector<float> folded = model.forward(batch, false);
  ASSERT_EQ(folded.size(), exact.size());
  EXPECT_LE(max_relative_difference(exact, folded), 1e-5);
  EXPECT_NE(0, std::memcmp(exact.data(), folded.data(), sizeof(float) * exact.size())) << "the fused path ran";
  EXPECT_EQ(labels_differing_beyond_ties(exact, folded, 1e-5), 0);
  // Folded once: a running statistic changed while frozen is not seen until the model is thawed.
  float& mean = model.buffers().values()[model.buffers().find("head.0.1.running_mean")->offset];
  mean += 1.0f;
  EXPECT_EQ(0, std::memcmp(folded.data(), model.forward(batch, false).data(), sizeof(float) * folded.size()));
  model.thaw_parameters();
  const std::vector<float> changed = model.forward(batch, false);
  model.freeze_for_inference();
  EXPECT_LE(max_relative_difference(changed, model.forward(batch, false)), 1e-5);
  EXPECT_GT(max_relative_difference(changed, folded), 1e-3);
}

// The same on the real SemanticKITTI scan with semseg_small's architecture: identical labels (but for
// near-ties of the exact logits, of which there are none at this margin).
TEST(Semseg, FoldedInferenceGivesTheExactLabelsOnTheRealScan) {
  const std::string scan = std::string(LIDARTRAIN_SHARED_DATA) + "/semantickitti/velodyne/000000.bin";
  Frame frame;
  frame.points = read_point_file(scan, 4, 1.f);
  frame.labels.assign(frame.points.size() / 4, 0);
  const PointBatch batch = make_batch({frame});
  Semseg model(SemsegConfig{});
  model.init(11);
  // BN running statistics of this scan (three training-mode forwards), not the initial 0 and 1.
  for (int i = 0; i < 3; ++i) model.forward(batch, true);
  const std::vector<float> exact = model.forward(batch, false);
  model.freeze_for_inference();
  const std::vector<float>& folded = model.forward(batch, false);
  EXPECT_LE(max_relative_difference(exact, folded), 1e-5);
  EXPECT_EQ(labels_differing_beyond_ties(exact, folded, 1e-6), 0);
}

TEST(Semseg, EmptyFrameInABatch) {
  Frame empty;
  empty.id = "empty";
  const PointBatch batch = make_batch({small_frame(4), empty});
  Semseg model(tiny_config());
  model.init(1);
  Optimizer optimizer(OptimizerConfig{}, model.params().size());
  EXPECT_TRUE(std::isfinite(train_steps(model, optimizer, batch, 2)));
}

TEST(Checkpoint, RoundTripRestoresParametersBuffersAndOptimizerState) {
  const std::string dir = testing::fresh_dir("ckpt_roundtrip");
  const PointBatch batch = make_batch({small_frame(5)});
  Semseg model(tiny_config());
  model.init(3);
  Optimizer optimizer(OptimizerConfig{}, model.params().size());
  train_steps(model, optimizer, batch, 2);
  CheckpointMeta meta;
  meta.model = "semseg";
  meta.step = 2;
  meta.config = "[train]\nsteps = 2\n";
  meta.optimizer_type = "adamw";
  meta.optimizer_steps = 2;
  OptimizerState state;
  for (auto& [name, values] : optimizer.state()) state.emplace_back(name, values);
  write_checkpoint(dir + "/c.h5", meta, model.params(), model.buffers(), state);
  EXPECT_FALSE(std::filesystem::exists(dir + "/c.h5.tmp"));

  const CheckpointMeta read = read_checkpoint_meta(dir + "/c.h5");
  EXPECT_EQ(read.step, 2);
  EXPECT_EQ(read.config, meta.config);
  EXPECT_EQ(read.optimizer_steps, 2);
  Semseg loaded(tiny_config());
  Optimizer loaded_optimizer(OptimizerConfig{}, loaded.params().size());
  OptimizerState loaded_state;
  for (auto& [name, values] : loaded_optimizer.state()) loaded_state.emplace_back(name, values);
  read_checkpoint_tensors(dir + "/c.h5", loaded.params(), loaded.buffers(), loaded_state);
  EXPECT_EQ(loaded.params().values(), model.params().values());
  EXPECT_EQ(loaded.buffers().values(), model.buffers().values());
  for (size_t k = 0; k < state.size(); ++k) EXPECT_EQ(*loaded_state[k].second, *state[k].second);
  EXPECT_EQ(loaded.forward(batch, false), model.forward(batch, false));
}

// Version 1 checkpoints (variable-length strings) still read and restore; a version 2 one holding a
// variable-length string is refused before libhdf5 reads it (io/hdf5_util.hpp: Strings).
TEST(Checkpoint, Version1CheckpointsStillReadAndVersion2RefusesVariableLengthStrings) {
  const std::string dir = testing::fresh_dir("ckpt_v1");
  Semseg model(tiny_config());
  model.init(5);
  Optimizer optimizer(OptimizerConfig{}, model.params().size());
  CheckpointMeta meta;
  meta.model = "semseg";
  meta.step = 7;
  meta.git_sha = "abc";
  meta.config = "[train]\nsteps = 7\n";
  meta.optimizer_type = "adamw";
  OptimizerState state;
  for (auto& [name, values] : optimizer.state()) state.emplace_back(name, values);
  write_checkpoint(dir + "/c.h5", meta, model.params(), model.buffers(), state);
  testing::rewrite_as_version1(dir + "/c.h5");
  EXPECT_TRUE(is_checkpoint_file(dir + "/c.h5"));
  const CheckpointMeta read = read_checkpoint_meta(dir + "/c.h5");
  EXPECT_EQ(read.model, "semseg");
  EXPECT_EQ(read.step, 7);
  EXPECT_EQ(read.git_sha, "abc");
  EXPECT_EQ(read.config, meta.config);
  EXPECT_EQ(read.optimizer_type, "adamw");
  Semseg loaded(tiny_config());
  read_checkpoint_tensors(dir + "/c.h5", loaded.params(), loaded.buffers(), {});
  EXPECT_EQ(loaded.params().values(), model.params().values());
  testing::set_version(dir + "/c.h5", 2);
  EXPECT_FALSE(is_checkpoint_file(dir + "/c.h5"));
  EXPECT_EQ(testing::input_error_of([&] { read_checkpoint_meta(dir + "/c.h5"); }),
            dir + "/c.h5: attribute schema is a variable-length string, which only version 1 files hold");
}

TEST(Checkpoint, ADifferentModelConfigurationIsRefusedByName) {
  const std::string dir = testing::fresh_dir("ckpt_mismatch");
  Semseg model(tiny_config());
  CheckpointMeta meta;
  meta.model = "semseg";
  write_checkpoint(dir + "/c.h5", meta, model.params(), model.buffers(), {});
  SemsegConfig wider = tiny_config();
  wider.head_channels = 16;
  Semseg other(wider);
  const std::string message =
      testing::input_error_of([&] { read_checkpoint_tensors(dir + "/c.h5", other.params(), other.buffers(), {}); });
  EXPECT_NE(message.find("head.0.0.weight: shape differs"), std::string::npos) << message;
}

TEST(Metrics, IouFromAHandMadeConfusionMatrix) {
  std::vector<int64_t> confusion(kNumSemanticClasses * kNumSemanticClasses, 0);
  const auto at = [&](int truth, int predicted) -> int64_t& {
    return confusion[truth * kNumSemanticClasses + predicted];
  };
  at(kCar, kCar) = 8, at(kCar, kRoad) = 2;  // car: 10 true, 8 right
  at(kRoad, kRoad) = 30, at(kRoad, kCar) = 4;
  at(kUnlabeled, kCar) = 100;  // unlabeled points never count
  const SegmentationMetrics m = metrics_from_confusion(confusion, 1);
  EXPECT_DOUBLE_EQ(m.iou[kCar], 8.0 / (10 + 12 - 8));
  EXPECT_DOUBLE_EQ(m.iou[kRoad], 30.0 / (34 + 32 - 30));
  EXPECT_TRUE(std::isnan(m.iou[kPerson]));
  EXPECT_EQ(m.classes_present, 2);
  EXPECT_DOUBLE_EQ(m.miou, (m.iou[kCar] + m.iou[kRoad]) / 2);
  EXPECT_DOUBLE_EQ(m.accuracy, 38.0 / 44.0);
}

TEST(Metrics, PredictedLabelIsTheFirstArgMaxOverIds1To19) {
  // 37 points (two full blocks of 16 and a partial one): random logits with ties (values on a coarse
  // grid), id 0 the largest in some rows (never predicted), NaNs (never win).
  constexpr int K = kNumSemanticClasses;
  const int64_t points = 37;
  Rng rng(7);
  std::vector<float> logits(size_t(points) * K);
  for (float& z : logits) z = float(std::floor(rng.uniform(0, 4)));
  for (int64_t p = 0; p < points; p += 5) logits[size_t(p) * K] = 100.f;
  for (int64_t p = 3; p < points; p += 7) logits[size_t(p) * K + 1 + p % 19] = std::numeric_limits<float>::quiet_NaN();
  const std::vector<uint8_t> labels = predict_labels(logits, points);
  ASSERT_EQ(labels.size(), size_t(points));
  for (int64_t p = 0; p < points; ++p) {
    const float* z = &logits[size_t(p) * K];
    int expected = 1;
    for (int k = 2; k < K; ++k)
      if (z[k] > z[expected]) expected = k;
    EXPECT_EQ(labels[size_t(p)], expected) << "point " << p;
  }
  EXPECT_EQ(predict_labels(std::vector<float>(), 0).size(), 0u);
}
TEST(DataOrder, EpochPermutationIsAPermutationThatChangesWithTheEpoch) {
  const auto a = epoch_permutation(1, 0, 100), b = epoch_permutation(1, 1, 100);
  EXPECT_EQ(std::set<int64_t>(a.begin(), a.end()).size(), 100u);
  EXPECT_NE(a, b);
  EXPECT_EQ(a, epoch_permutation(1, 0, 100));
}

TEST(Augmentation, IsKeyedByFrameAndKeepsPointsInTheirBoxes) {
  Frame frame = synth::synth_frame(3, 9, 1.0, synth::SensorModel{});
  ASSERT_GT(frame.num_boxes(), 0);
  std::vector<int64_t> inside_before;
  for (int64_t b = 0; b < frame.num_boxes(); ++b)
    inside_before.push_back(testing::points_in_box(frame.points, &frame.boxes[7 * b], 0.01f));
  const Augmentation a = draw_augmentation(1, 2, 9);
  EXPECT_EQ(a.rotation_rad, draw_augmentation(1, 2, 9).rotation_rad);
  EXPECT_NE(a.rotation_rad, draw_augmentation(1, 2, 10).rotation_rad);
  EXPECT_NE(a.rotation_rad, draw_augmentation(1, 3, 9).rotation_rad);
  for (bool flip : {false, true}) {
    Augmentation variant = a;
    variant.flip_y = flip;
    Frame moved = frame;
    augment_frame(variant, moved);
    for (int64_t b = 0; b < frame.num_boxes(); ++b)
      EXPECT_EQ(testing::points_in_box(moved.points, &moved.boxes[7 * b], 0.01f * variant.scale), inside_before[b]);
    // Distances between points scale by the scale factor.
    const float* p = &frame.points[0];
    const float* q = &frame.points[4 * 100];
    const float* mp = &moved.points[0];
    const float* mq = &moved.points[4 * 100];
    EXPECT_NEAR(std::hypot(mp[0] - mq[0], mp[1] - mq[1], mp[2] - mq[2]),
                variant.scale * std::hypot(p[0] - q[0], p[1] - q[1], p[2] - q[2]), 1e-3);
  }
}

TEST(Augmentation, RotationStaysWithinItsRange) {
  double widest = 0;
  for (int64_t f = 0; f < 200; ++f) {
    const double narrow = draw_augmentation(4, 0, f, kPiRad / 4).rotation_rad;
    EXPECT_LE(std::abs(narrow), kPiRad / 4 + 1e-6);
    widest = std::max(widest, std::abs(double(draw_augmentation(4, 0, f).rotation_rad)));
    // The other draws do not depend on the range.
    EXPECT_EQ(draw_augmentation(4, 0, f, kPiRad / 4).scale, draw_augmentation(4, 0, f).scale);
  }
  EXPECT_GT(widest, kPiRad / 2);  // the default turns frames any way
}

}  // namespace
}  // namespace lt
