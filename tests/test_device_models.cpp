// Both models on a GPU against the CPU: the same layers, run through the CUDA backend's kernels and its
// device-memory path (uploads of the parameters and inputs, downloads of outputs, BN buffers and
// gradients), give the CPU's loss, outputs, gradients and BN statistics to float rounding. Each test runs
// on the emulated GPU (kernels/cuda/*.cu built as host C++, kernels/cuda/emu: always, in CI) and on the
// real one (skipped without a GPU; scripts/gpu_check.sh runs them there).
#include <gtest/gtest.h>

#include <cmath>

#include "kernels/cuda/device.hpp"
#include "kernels/cuda/emu/emulated.hpp"
#include "src/models/bevdet.hpp"
#include "src/models/semseg.hpp"
#include "src/synth/scene.hpp"
#include "src/train/data.hpp"
#include "src/train/evaluate.hpp"
#include "src/train/optimizer.hpp"

namespace lt {
namespace {

// Relative L2 difference of two arrays (0 when both are zero).
double relative_difference(const float* a, const float* b, int64_t n) {
  double diff = 0, norm = 0;
  for (int64_t i = 0; i < n; ++i) {
    diff += (double(a[i]) - b[i]) * (double(a[i]) - b[i]);
    norm += double(b[i]) * b[i];
  }
  return norm > 0 ? std::sqrt(diff / norm) : std::sqrt(diff);
}

// Every parameter's gradient and every BN buffer, tensor by tensor.
void expect_same_state(Model& gpu, Model& cpu, double grad_tolerance) {
  for (const TensorView& view : cpu.params().views())
    EXPECT_LE(relative_difference(gpu.params().grad(view.offset), cpu.params().grad(view.offset), view.size),
              grad_tolerance)
        << "gradient of " << view.name;
  for (const TensorView& view : cpu.buffers().views())
    EXPECT_LE(relative_difference(gpu.buffers().value(view.offset), cpu.buffers().value(view.offset), view.size), 1e-5)
        << view.name;
}

// Every 12th point of a synthetic scan: a few thousand points over the whole grid.
PointBatch thinned_batch(uint64_t seed, int frames) {
  std::vector<Frame> thinned;
  for (int f = 0; f < frames; ++f) {
    const Frame full = synth::synth_frame(seed, f, 1.0, synth::SensorModel{});
    Frame frame;
    frame.id = full.id;
    for (int64_t i = 0; i < full.num_points(); i += 12) {
      frame.points.insert(frame.points.end(), &full.points[size_t(4 * i)], &full.points[size_t(4 * i + 4)]);
      frame.labels.push_back(full.labels[size_t(i)]);
    }
    frame.boxes = full.boxes;
    frame.box_labels = full.box_labels;
    thinned.push_back(std::move(frame));
  }
  return make_batch(thinned);
}

// 32 × 32 cells and 8 channels: the emulation runs every GPU thread one after another.
SemsegConfig small_semseg() {
  SemsegConfig config;
  config.voxel_size_m = 3.2;
  config.point_channels = {8, 8};
  config.bev_channels = {8, 8, 8};
  config.head_channels = 8;
  return config;
}

double training_step(Model& model, const PointBatch& batch, Optimizer& optimizer, int64_t* final_offset) {
  model.params().zero_grads();
  model.set_grads_ready_hook([final_offset](int64_t offset) { *final_offset = offset; });
  auto input = model.prepare(batch, true);
  const double normaliser = model.loss_normaliser(input->loss_weight);
  const double loss = model.forward_loss(std::move(input), normaliser);
  model.backward();
  optimizer.step(model.params(), 1e-3);
  return loss;
}

class ModelsOnAGpu : public ::testing::TestWithParam<bool> {  // true: the emulated GPU
 protected:
  void SetUp() override {
    gpu_ = GetParam() ? &cuda_emu::backend() : cuda_backend();
    if (!gpu_) GTEST_SKIP() << "no CUDA device: " << cuda_summary();
  }
  const Backend* gpu_ = nullptr;
};

TEST_P(ModelsOnAGpu, SemsegTrainingStepsMatchTheCpu) {
  const SemsegConfig config = small_semseg();
  Semseg cpu(config), gpu(config);
  cpu.init(3);
  gpu.init(3);
  gpu.set_backend(*gpu_);
  const PointBatch batch = thinned_batch(5, 2);
  ASSERT_GT(batch.num_points(), 5000);
  OptimizerConfig adamw;
  Optimizer cpu_optimizer(adamw, cpu.params().size()), gpu_optimizer(adamw, gpu.params().size());
  const int64_t launches_before = emu::launch_count();
  for (int step = 0; step < 2; ++step) {  // the second step runs on parameters the optimizer changed
    int64_t cpu_final = -1, gpu_final = -1;
    const double cpu_loss = training_step(cpu, batch, cpu_optimizer, &cpu_final);
    const double gpu_loss = training_step(gpu, batch, gpu_optimizer, &gpu_final);
    EXPECT_NEAR(gpu_loss, cpu_loss, 1e-5 * cpu_loss) << "step " << step;
    EXPECT_EQ(gpu_final, 0);  // on a device every gradient is reported final once, at the end
    EXPECT_EQ(cpu_final, 0);
    EXPECT_LE(relative_difference(gpu.params().values().data(), cpu.params().values().data(), cpu.params().size()),
              1e-5);
  }
  if (GetParam()) {
    EXPECT_GT(emu::launch_count() - launches_before, 200);  // the layers ran as kernels
  }
  // Eval-mode logits, and so the predicted labels, agree too.
  const std::vector<float> cpu_logits = cpu.forward(batch, false);
  const std::vector<float> gpu_logits = gpu.forward(batch, false);
  ASSERT_EQ(gpu_logits.size(), cpu_logits.size());
  EXPECT_LE(relative_difference(gpu_logits.data(), cpu_logits.data(), int64_t(cpu_logits.size())), 1e-5);
  EXPECT_EQ(predict_labels(gpu_logits, batch.num_points()), predict_labels(cpu_logits, batch.num_points()));
}

// Frozen for inference, the model uploads its parameters once: a change of the host values after that
// is not seen (proof that forwards stop uploading them) until thaw_parameters().
TEST_P(ModelsOnAGpu, FrozenForInferenceTheParametersStayOnTheDevice) {
  const SemsegConfig config = small_semseg();
  Semseg cpu(config), gpu(config);
  cpu.init(4);
  gpu.init(4);
  gpu.set_backend(*gpu_);
  gpu.freeze_for_inference();
  const PointBatch batch = thinned_batch(6, 4);
  const std::vector<float> first = gpu.forward(batch, false);
  const std::vector<float> want = cpu.forward(batch, false);
  ASSERT_EQ(first.size(), want.size());
  for (size_t i = 0; i < want.size(); ++i) ASSERT_NEAR(first[i], want[i], 1e-4f * (1 + std::abs(want[i]))) << i;
  for (float& v : gpu.params().values()) v *= 0.5f;
  EXPECT_EQ(gpu.forward(batch, false), first);  // still the uploaded parameters
  gpu.thaw_parameters();
  EXPECT_NE(gpu.forward(batch, false), first);
  gpu.freeze_for_inference();
  auto input = gpu.prepare(batch, true);
  EXPECT_THROW(gpu.forward_loss(std::move(input), 1.0), std::logic_error);
}

TEST_P(ModelsOnAGpu, SemsegGradientsAndBatchNormStatisticsMatchTheCpu) {
  const SemsegConfig config = small_semseg();
  Semseg cpu(config), gpu(config);
  cpu.init(4);
  gpu.init(4);
  gpu.set_backend(*gpu_);
  const PointBatch batch = thinned_batch(6, 1);
  for (Model* model : {static_cast<Model*>(&cpu), static_cast<Model*>(&gpu)}) {
    model->params().zero_grads();
    auto input = model->prepare(batch, true);
    const double normaliser = model->loss_normaliser(input->loss_weight);
    model->forward_loss(std::move(input), normaliser);
    model->backward();
  }
  expect_same_state(gpu, cpu, 1e-4);
}

TEST_P(ModelsOnAGpu, BevdetGradientsOutputsAndDetectionsMatchTheCpu) {
  BevdetConfig config;
  config.point_range = {0, -10.24, -3, 20.48, 10.24, 1};
  config.pillar_m = 0.64;  // 32 × 32 pillars
  config.pfn_channels = 8;
  config.layers = {1, 1, 1};
  config.channels = {8, 8, 8};
  config.upsample_channels = 4;
  config.head_channels = 8;
  Bevdet cpu(config), gpu(config);
  cpu.init(5);
  gpu.init(5);
  gpu.set_backend(*gpu_);
  const PointBatch batch = thinned_batch(7, 2);
  double losses[2];
  int k = 0;
  for (Model* model : {static_cast<Model*>(&cpu), static_cast<Model*>(&gpu)}) {
    model->params().zero_grads();
    auto input = model->prepare(batch, true);
    ASSERT_GT(input->loss_weight, 0);  // objects in range
    const double normaliser = model->loss_normaliser(input->loss_weight);
    losses[k++] = model->forward_loss(std::move(input), normaliser);
    model->backward();
  }
  EXPECT_NEAR(losses[1], losses[0], 1e-5 * losses[0]);
  EXPECT_NEAR(gpu.last_regression_loss(), cpu.last_regression_loss(), 1e-5 * cpu.last_regression_loss());
  expect_same_state(gpu, cpu, 1e-4);
  const auto cpu_boxes = cpu.detect(batch), gpu_boxes = gpu.detect(batch);
  EXPECT_LE(relative_difference(gpu.heatmap_logits().data(), cpu.heatmap_logits().data(),
                                int64_t(cpu.heatmap_logits().size())),
            1e-5);
  ASSERT_EQ(gpu_boxes.size(), cpu_boxes.size());
  for (size_t f = 0; f < cpu_boxes.size(); ++f) {
    ASSERT_EQ(gpu_boxes[f].size(), cpu_boxes[f].size()) << "frame " << f;
    for (size_t i = 0; i < cpu_boxes[f].size(); ++i) {
      EXPECT_EQ(gpu_boxes[f][i].label, cpu_boxes[f][i].label);
      EXPECT_NEAR(gpu_boxes[f][i].score, cpu_boxes[f][i].score, 1e-5);
      for (int j = 0; j < 7; ++j) EXPECT_NEAR(gpu_boxes[f][i].box[size_t(j)], cpu_boxes[f][i].box[size_t(j)], 1e-4);
    }
  }
}

INSTANTIATE_TEST_SUITE_P(Devices, ModelsOnAGpu, ::testing::Values(true, false),
                         [](const ::testing::TestParamInfo<bool>& info) { return info.param ? "emulated" : "cuda"; });

}  // namespace
}  // namespace lt
