// Both models on a GPU against the CPU: the same layers, run through the CUDA backend's kernels and its
// device-memory path (uploads of the parameters and inputs, downloads of outputs, BN buffers and
// gradients), give the CPU's loss, outputs, gradients and BN statistics to float rounding. Each test runs
// on the emulated GPU (kernels/cuda/*.cu built as host C++, kernels/cuda/emu: always, in CI) and on the
// real one (skipped without a GPU; scripts/gpu_check.sh runs them there).
#include <gtest/gtest.h>

#include <cmath>

#include "kernels/cuda/emu/emulated.hpp"
#include "src/models/bevdet.hpp"
#include "src/models/semseg.hpp"
#include "src/synth/scene.hpp"
#include "src/train/data.hpp"
#include "src/train/evaluate.hpp"
#include "src/train/optimizer.hpp"
#include "tests/on_each_gpu.hpp"

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

// Every 12th point (`every`) of a synthetic scan: a few thousand points over the whole grid.
PointBatch thinned_batch(uint64_t seed, int frames, int every = 12) {
  std::vector<Frame> thinned;
  for (int f = 0; f < frames; ++f) {
    const Frame full = synth::synth_frame(seed, f, 1.0, synth::SensorModel{});
    Frame frame;
    frame.id = full.id;
    for (int64_t i = 0; i < full.num_points(); i += every) {
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

// A small bevdet for the emulation (32 × 32 pillars, 8 channels).
BevdetConfig small_bevdet() {
  BevdetConfig config;
  config.point_range = {0, -10.24, -3, 20.48, 10.24, 1};
  config.pillar_m = 0.64;
  config.pfn_channels = 8;
  config.layers = {1, 1, 1};
  config.channels = {8, 8, 8};
  config.upsample_channels = 4;
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

class ModelsOnAGpu : public OnEachGpu {};

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
  const BevdetConfig config = small_bevdet();
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

// Training steps on the device with the dense part as CUDA graphs give the bits of eager steps: the
// batch size changes (a new warm-up and capture), the point count changes every step, an eval forward of
// a larger batch between two steps moves the dense buffers (the section sees the new addresses and captures
// again instead of replaying into memory given back), and one of whole scans may grow the ops' scratch (the
// backend refuses the launch: captured again; bevdet's does). Step 0 warms up, 1 captures, 2 captures again,
// 3 and 4 replay (bevdet: 4 captures again); 5 warms up for one frame, 6 captures, 7 replays — forward and
// backward each.
void expect_graphed_steps_are_eager_steps(Model& eager, Model& graphed, const Backend& gpu) {
  eager.set_backend(gpu);
  graphed.set_backend(gpu);
  ASSERT_TRUE(graphed.set_cuda_graphs(true));
  const int frames[] = {2, 2, 2, 2, 2, 1, 1, 1};
  OptimizerConfig adamw;
  Optimizer eager_optimizer(adamw, eager.params().size()), graphed_optimizer(adamw, graphed.params().size());
  for (int step = 0; step < 8; ++step) {
    const PointBatch batch = thinned_batch(uint64_t(20 + step), frames[step]);
    int64_t final_offset = -1;
    const double eager_loss = training_step(eager, batch, eager_optimizer, &final_offset);
    const double graphed_loss = training_step(graphed, batch, graphed_optimizer, &final_offset);
    EXPECT_EQ(graphed_loss, eager_loss) << "step " << step;
    ASSERT_EQ(graphed.params().values(), eager.params().values()) << "step " << step;
    ASSERT_EQ(graphed.buffers().values(), eager.buffers().values()) << "step " << step;
    if (step == 1) {  // after the capture, an eval forward of 3 frames: every dense buffer grows, so moves
      const PointBatch larger = thinned_batch(40, 3);
      EXPECT_EQ(graphed.predict(larger).size(), 3u);
      eager.predict(larger);
    }
    if (step == 3) {  // after a replay, an eval forward of 2 whole scans: the ops' scratch grows, so moves
      std::vector<Frame> scans;
      for (int f = 0; f < 2; ++f) scans.push_back(synth::synth_frame(41, f, 1.0, synth::SensorModel{}));
      const PointBatch whole = make_batch(scans);
      graphed.predict(whole);
      eager.predict(whole);
    }
  }
  const Model::GraphCounts& counts = graphed.graph_counts();
  std::printf("%s graphed sections: %lld eager, %lld captured, %lld replayed\n", graphed.name().c_str(),
              (long long)counts.eager, (long long)counts.captured, (long long)counts.replayed);
  EXPECT_EQ(counts.eager, 4);
  EXPECT_GE(counts.captured, 6);
  EXPECT_GE(counts.replayed, 4);
  EXPECT_EQ(counts.eager + counts.captured + counts.replayed, 16);
  EXPECT_EQ(eager.graph_counts().captured + eager.graph_counts().replayed, 0);
}

// With an agreement (SyncBN in the graphs: Model::set_graph_agreement) each graphed section does what the
// agreement returns — here as if another rank could never replay, then never capture — while asking with
// its own plan (0 eager warm-up, 1 capture, 2 replay); the steps keep the bits of eager ones.
TEST_P(ModelsOnAGpu, GraphedSectionsDoWhatTheRanksAgreeOn) {
  for (const int most : {1, 0}) {  // what the other ranks can do at most
    Bevdet eager(small_bevdet()), graphed(small_bevdet());
    eager.init(5);
    graphed.init(5);
    eager.set_backend(*gpu_);
    graphed.set_backend(*gpu_);
    ASSERT_TRUE(graphed.set_cuda_graphs(true));
    std::vector<int> asked;
    graphed.set_graph_agreement([&](int plan) {
      asked.push_back(plan);
      return std::min(plan, most);
    });
    OptimizerConfig adamw;
    Optimizer eager_optimizer(adamw, eager.params().size()), graphed_optimizer(adamw, graphed.params().size());
    for (int step = 0; step < 4; ++step) {
      const PointBatch batch = thinned_batch(uint64_t(50 + step), 2);
      int64_t final_offset = -1;
      EXPECT_EQ(training_step(graphed, batch, graphed_optimizer, &final_offset),
                training_step(eager, batch, eager_optimizer, &final_offset))
          << "step " << step;
      ASSERT_EQ(graphed.params().values(), eager.params().values()) << "step " << step;
    }
    const Model::GraphCounts& counts = graphed.graph_counts();
    if (most == 1) {  // every step after the warm-up captures (forward and backward), none replays
      EXPECT_EQ(asked, (std::vector<int>{0, 0, 1, 1, 2, 2, 2, 2}));
      EXPECT_EQ(counts.eager, 2);
      EXPECT_EQ(counts.captured, 6);
    } else {  // all eager: nothing was captured, so no rank could replay
      EXPECT_EQ(asked, (std::vector<int>{0, 0, 1, 1, 1, 1, 1, 1}));
      EXPECT_EQ(counts.eager, 8);
      EXPECT_EQ(counts.captured, 0);
    }
    EXPECT_EQ(counts.replayed, 0);
  }
}

TEST_P(ModelsOnAGpu, BevdetStepsWithCudaGraphsGiveTheBitsOfEagerSteps) {
  Bevdet eager(small_bevdet()), graphed(small_bevdet());
  eager.init(5);
  graphed.init(5);
  expect_graphed_steps_are_eager_steps(eager, graphed, *gpu_);
}

TEST_P(ModelsOnAGpu, SemsegStepsWithCudaGraphsGiveTheBitsOfEagerSteps) {
  Semseg eager(small_semseg()), graphed(small_semseg());
  eager.init(5);
  graphed.init(5);
  expect_graphed_steps_are_eager_steps(eager, graphed, *gpu_);
}

// Bytes of the backend's memory a fresh model holds after one training step with `precision`.
template <class M, class Config>
size_t bytes_after_a_step(const Config& config, const Backend& gpu, Precision precision) {
  gpu.set_matmul_precision(precision);
  const size_t before = pool_stats(gpu).in_use_bytes;
  size_t after = 0;
  {
    M model(config);
    model.init(5);
    model.set_backend(gpu);
    OptimizerConfig adamw;
    Optimizer optimizer(adamw, model.params().size());
    int64_t final_offset = -1;
    training_step(model, thinned_batch(30, 2), optimizer, &final_offset);
    after = pool_stats(gpu).in_use_bytes;
  }
  gpu.set_matmul_precision(Precision::fp32);
  return after - before;
}

// In bf16/fp16 the layers keep their maps' BN + ReLU outputs (and the concatenations of them) in the
// 16-bit type: a training step holds less of the device's memory than in fp32.
TEST_P(ModelsOnAGpu, InBf16TheMapsBetweenLayersTakeLessMemory) {
  const size_t semseg32 = bytes_after_a_step<Semseg>(small_semseg(), *gpu_, Precision::fp32),
               semseg16 = bytes_after_a_step<Semseg>(small_semseg(), *gpu_, Precision::bf16),
               bevdet32 = bytes_after_a_step<Bevdet>(small_bevdet(), *gpu_, Precision::fp32),
               bevdet16 = bytes_after_a_step<Bevdet>(small_bevdet(), *gpu_, Precision::bf16);
  std::printf("device memory after a step: semseg %zu B fp32, %zu B bf16; bevdet %zu B fp32, %zu B bf16\n", semseg32,
              semseg16, bevdet32, bevdet16);
  EXPECT_LT(semseg16, semseg32);
  EXPECT_LT(bevdet16, bevdet32);
}

// 30 steps of a model from one initialisation with its GEMM inputs in `precision`, on the emulated GPU;
// fp16 with the dynamic loss scaler as the trainer runs it (the loss scaled before backward, the scaler's
// op unscaling, gating and updating — here on the host's gradients). The step losses.
std::vector<double> thirty_steps(Model& model, const Backend& gpu, Precision precision, int frames, double lr,
                                 int64_t* skipped) {
  model.set_backend(gpu);
  gpu.set_matmul_precision(precision);
  OptimizerConfig adamw;
  Optimizer optimizer(adamw, model.params().size());
  double scaler[2] = {65536.0, 0.0};
  std::vector<double> losses;
  *skipped = 0;
  for (int step = 0; step < 30; ++step) {
    const PointBatch batch = thinned_batch(uint64_t(60 + step % 6), frames, 48);
    model.params().zero_grads();
    if (precision == Precision::fp16) model.set_loss_scale(scaler[0]);
    auto input = model.prepare(batch, true);
    const double normaliser = model.loss_normaliser(input->loss_weight);
    const double loss = model.forward_loss(std::move(input), normaliser);
    model.backward();
    losses.push_back(loss);
    std::vector<float>& grads = model.params().grads();
    if (precision == Precision::fp16) {
      double norm_sq = 0;
      for (float g : grads) norm_sq += double(g) * g;
      float gate[2] = {};
      cpu_backend().scaled_gradient_gate(&norm_sq, &loss, 0.0, 2000, scaler, gate);
      if (gate[1] == 0.f) {
        ++*skipped;
        continue;
      }
      for (float& g : grads) g *= gate[0];
    }
    optimizer.step(model.params(), lr);
  }
  gpu.set_matmul_precision(Precision::fp32);
  return losses;
}

double mean_of_last_5(const std::vector<double>& losses) {
  double sum = 0;
  for (size_t i = losses.size() - 5; i < losses.size(); ++i) sum += losses[i];
  return sum / 5;
}

// bf16 and fp16 train like fp32: after 30 steps from the same initialisation on the same frames, the mean
// loss of the last 5 steps within 2 % of fp32's (the measure), and not fp32's bits (the GEMMs
// rounded).
template <class M, class Config>
void expect_mixed_precision_like_fp32(const Config& config, const Backend& gpu, int frames, double lr) {
  std::vector<double> curves[3];
  int64_t skipped[3] = {};
  for (Precision p : {Precision::fp32, Precision::bf16, Precision::fp16}) {
    M model(config);
    model.init(9);
    curves[int(p)] = thirty_steps(model, gpu, p, frames, lr, &skipped[int(p)]);
  }
  const double fp32 = mean_of_last_5(curves[0]);
  for (Precision p : {Precision::bf16, Precision::fp16}) {
    const double mean = mean_of_last_5(curves[int(p)]);
    std::printf("%s: mean loss of steps 26-30 %.5f, fp32 %.5f (%+.2f %%), %lld skipped; first %.5f → last %.5f\n",
                precision_name(p), mean, fp32, 100 * (mean / fp32 - 1), (long long)skipped[int(p)],
                curves[int(p)].front(), curves[int(p)].back());
    EXPECT_NEAR(mean, fp32, 0.02 * fp32) << precision_name(p);
    EXPECT_NE(curves[int(p)], curves[0]) << precision_name(p) << " gave fp32's bits";
  }
  EXPECT_LT(fp32, 0.9 * mean_of_last_5({curves[0].begin(), curves[0].begin() + 5}));  // it did learn
}

TEST_P(ModelsOnAGpu, SemsegInBf16AndFp16TrainsLikeFp32) {
  expect_mixed_precision_like_fp32<Semseg>(small_semseg(), *gpu_, 2, 2e-3);
}

TEST_P(ModelsOnAGpu, BevdetInBf16AndFp16TrainsLikeFp32) {
  expect_mixed_precision_like_fp32<Bevdet>(small_bevdet(), *gpu_, 2, 1e-3);
}

TEST(CudaGraphs, TheCpuHasNone) {
  Bevdet model(small_bevdet());
  EXPECT_FALSE(model.set_cuda_graphs(true));
  EXPECT_FALSE(model.cuda_graphs());
  EXPECT_FALSE(supports_op(cpu_backend(), "graph_launch"));
}

LT_ON_EACH_GPU(ModelsOnAGpu);

}  // namespace
}  // namespace lt
