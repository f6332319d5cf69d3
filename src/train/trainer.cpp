#include "src/train/trainer.hpp"

#include <omp.h>

#include <chrono>
#include <cstdio>
#include <ctime>
#include <filesystem>
#include <fstream>

#include "io/checkpoint.hpp"
#include "io/dataset.hpp"
#include "io/prefetch.hpp"
#include "kernels/cpu/ops.hpp"
#include "src/common/error.hpp"
#include "src/common/json.hpp"
#include "src/train/data.hpp"
#include "src/train/evaluate.hpp"
#include "src/train/optimizer.hpp"
#include "version.hpp"

namespace lt {
namespace fs = std::filesystem;

namespace {

double now_s() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

std::string utc_now() {
  const std::time_t t = std::time(nullptr);
  char text[32];
  std::strftime(text, sizeof text, "%Y-%m-%dT%H:%M:%SZ", std::gmtime(&t));
  return text;
}

std::string duration_text(double seconds) {
  char text[32];
  const int s = int(seconds + 0.5);
  if (s >= 3600)
    std::snprintf(text, sizeof text, "%dh%02dm", s / 3600, (s % 3600) / 60);
  else
    std::snprintf(text, sizeof text, "%dm%02ds", s / 60, s % 60);
  return text;
}

// Writes checkpoints/ckpt-<step>.h5, points LATEST at it, and keeps the newest `keep`.
void save_checkpoint(const TrainRun& run, Semseg& model, Optimizer& optimizer, int64_t step, int64_t epoch,
                     int64_t samples_seen, const Comm& comm) {
  const fs::path dir = fs::path(run.run_dir) / "checkpoints";
  fs::create_directories(dir);
  char name[64];
  std::snprintf(name, sizeof name, "ckpt-%08lld.h5", static_cast<long long>(step));
  CheckpointMeta meta;
  meta.model = run.config.model_name;
  meta.step = step;
  meta.epoch = epoch;
  meta.samples_seen = samples_seen;
  meta.world_size = comm.size();
  meta.seed = run.config.seed;
  meta.git_sha = kGitSha;
  meta.created = utc_now();
  meta.config = run.config_ini;
  meta.optimizer_type = optimizer.config().type;
  meta.optimizer_steps = optimizer.steps_taken();
  OptimizerState state;
  for (auto& [state_name, values] : optimizer.state()) state.emplace_back(state_name, values);
  write_checkpoint((dir / name).string(), meta, model.params(), model.buffers(), state);
  write_text_file_atomically((dir / "LATEST").string(), std::string(name) + "\n");
  std::vector<fs::path> existing;
  for (const auto& entry : fs::directory_iterator(dir))
    if (entry.path().extension() == ".h5" && entry.path().filename().string().rfind("ckpt-", 0) == 0)
      existing.push_back(entry.path());
  std::sort(existing.begin(), existing.end());
  for (size_t i = 0; i + size_t(run.config.checkpoint_keep) < existing.size(); ++i) fs::remove(existing[i]);
}

}  // namespace

Semseg load_semseg(const std::string& checkpoint_path) {
  const CheckpointMeta meta = read_checkpoint_meta(checkpoint_path);
  require(meta.model == "semseg", checkpoint_path + ": model '" + meta.model + "' is not semseg");
  const TrainConfig config = train_config_from(parse_config_text(meta.config, checkpoint_path));
  Semseg model(config.semseg);
  read_checkpoint_tensors(checkpoint_path, model.params(), model.buffers(), {});
  return model;
}

int train(const TrainRun& run, const Comm& comm) {
  const TrainConfig& c = run.config;
  require(comm.size() == 1, "training runs on 1 rank for now (distributed training arrives with issue 4)");
  require(!c.train_data.empty(), "--data.train (or --data): no training dataset given");
  if (c.threads > 0) omp_set_num_threads(c.threads);
  const DatasetReader reader(c.train_data);
  require(reader.kind().has_labels, c.train_data + ": dataset has no point labels to train semseg on");
  fs::create_directories(run.run_dir);
  write_text_file_atomically((fs::path(run.run_dir) / "config.ini").string(), run.config_ini);

  Semseg model(c.semseg);
  model.init(c.seed);
  Optimizer optimizer(c.optimizer, model.params().size());
  const std::vector<float>& weights = c.class_weights;
  std::ofstream metrics((fs::path(run.run_dir) / "metrics.jsonl").string(), std::ios::trunc);
  require(bool(metrics), run.run_dir + "/metrics.jsonl: cannot open for writing");

  const int64_t num_frames = reader.num_frames();
  // The loader thread reads and augments step s + 1 (and s + 2) while step s computes. Global sample
  // positions [step·B, (step+1)·B), each (epoch, position in that epoch's order).
  int64_t cached_epoch = -1;
  std::vector<int64_t> order;
  PrefetchLoader loader(
      [&](int64_t step) {
        std::vector<Frame> frames;
        for (int i = 0; i < c.batch_size; ++i) {
          const int64_t sample = step * c.batch_size + i, epoch = sample / num_frames;
          if (epoch != cached_epoch) order = epoch_permutation(c.seed, epoch, num_frames), cached_epoch = epoch;
          const int64_t index = order[size_t(sample % num_frames)];
          Frame frame = reader.read(index);
          if (c.augment) augment_frame(draw_augmentation(c.seed, epoch, index), frame);
          frames.push_back(std::move(frame));
        }
        return frames;
      },
      0, c.steps);
  const double start = now_s();
  double loss_sum_since_log = 0;
  int64_t steps_since_log = 0;
  std::printf("train: semseg, %lld parameters, %lld frames, %lld steps of %d frames, %d threads\n",
              static_cast<long long>(model.params().size()), static_cast<long long>(num_frames),
              static_cast<long long>(c.steps), c.batch_size, omp_get_max_threads());
  std::fflush(stdout);

  for (int64_t step = 0; step < c.steps; ++step) {
    const double t0 = now_s();
    const int64_t epoch = step * c.batch_size / num_frames;
    const std::vector<Frame> frames = loader.next();  // data wait: near zero once the loader is ahead
    const PointBatch batch = make_batch(frames);
    const double t1 = now_s();
    const std::vector<float>& logits = model.forward(batch, true);
    std::vector<float> dlogits(logits.size());
    const double loss =
        ops::cross_entropy<float>(logits.data(), batch.labels.data(), batch.num_points(), kNumSemanticClasses,
                                  weights.empty() ? nullptr : weights.data(), 0, dlogits.data());
    const double t2 = now_s();
    model.params().zero_grads();
    model.backward(dlogits);
    const double t3 = now_s();
    const double grad_norm = clip_grad_norm(model.params().grads(), c.grad_clip);
    const double lr = learning_rate(c.schedule, step);
    optimizer.step(model.params(), lr);
    const double t4 = now_s();

    JsonWriter line;
    line.begin_object()
        .key("step")
        .value(step + 1)
        .key("epoch")
        .value(epoch)
        .key("loss")
        .value(loss)
        .key("lr")
        .value(lr)
        .key("grad_norm")
        .value(grad_norm)
        .key("points")
        .value(batch.num_points())
        .key("data_wait_s")
        .value(t1 - t0)
        .key("forward_s")
        .value(t2 - t1)
        .key("backward_s")
        .value(t3 - t2)
        .key("optimizer_s")
        .value(t4 - t3)
        .key("step_s")
        .value(t4 - t0)
        .key("samples_per_s")
        .value(double(c.batch_size) / (t4 - t0))
        .key("elapsed_s")
        .value(t4 - start)
        .end_object();
    metrics << line.str() << "\n";
    metrics.flush();
    loss_sum_since_log += loss;
    ++steps_since_log;
    if ((step + 1) % c.log_every == 0 || step + 1 == c.steps) {
      const double elapsed = t4 - start, per_step = elapsed / double(step + 1);
      std::printf("step %lld/%lld  loss %.4f  lr %.2e  %.2f samples/s  elapsed %s  ETA %s\n",
                  static_cast<long long>(step + 1), static_cast<long long>(c.steps),
                  loss_sum_since_log / double(steps_since_log), lr, double(c.batch_size) / per_step,
                  duration_text(elapsed).c_str(), duration_text(per_step * double(c.steps - step - 1)).c_str());
      std::fflush(stdout);
      loss_sum_since_log = 0;
      steps_since_log = 0;
    }
    if ((c.checkpoint_every > 0 && (step + 1) % c.checkpoint_every == 0) || step + 1 == c.steps)
      save_checkpoint(run, model, optimizer, step + 1, epoch, (step + 1) * c.batch_size, comm);
  }

  if (!c.val_data.empty()) {
    const DatasetReader val(c.val_data);
    const SegmentationMetrics m = evaluate_semseg(model, val, comm);
    std::printf("validation on %s:\n%s", c.val_data.c_str(), iou_table(m).c_str());
    JsonWriter line;
    line.begin_object().key("eval").value(c.val_data).key("step").value(c.steps);
    write_metrics(line, m);
    line.end_object();
    metrics << line.str() << "\n";
  }
  return kExitOk;
}

}  // namespace lt
