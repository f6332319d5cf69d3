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
#include "mpi/balance.hpp"
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
  require(!c.train_data.empty(), "--data.train (or --data): no training dataset given");
  if (c.threads > 0) omp_set_num_threads(c.threads);
  const DatasetReader reader(c.train_data);
  require(reader.kind().has_labels, c.train_data + ": dataset has no point labels to train semseg on");

  Semseg model(c.semseg);
  model.init(c.seed);
  Optimizer optimizer(c.optimizer, model.params().size());
  const std::vector<float>& weights = c.class_weights;
  // Rank 0 writes the run directory: config.ini, metrics.jsonl, checkpoints.
  std::ofstream metrics;
  run_agreed(comm, [&] {
    if (!comm.is_root()) return;
    std::error_code ec;
    fs::create_directories(run.run_dir, ec);
    require(!ec, run.run_dir + ": cannot create the run directory: " + ec.message());
    write_text_file_atomically((fs::path(run.run_dir) / "config.ini").string(), run.config_ini);
    metrics.open((fs::path(run.run_dir) / "metrics.jsonl").string(), std::ios::trunc);
    require(bool(metrics), run.run_dir + "/metrics.jsonl: cannot open for writing");
  });

  const int64_t num_frames = reader.num_frames();
  // Every rank computes the same assignment of each step's global batch (ranks × batch frames) to ranks;
  // the loader thread reads and augments this rank's frames of steps s + 1, s + 2 while s computes.
  const FrameSampler sampler(parse_balance(c.balance),
                             std::vector<double>(reader.costs().begin(), reader.costs().end()), comm.size(),
                             c.batch_size, c.seed);
  PrefetchLoader loader(
      [&](int64_t step) {
        const StepAssignment assignment = sampler.step(step);
        std::vector<Frame> frames;
        for (int64_t index : assignment.frames_of_rank[size_t(comm.rank())]) {
          Frame frame = reader.read(index);
          if (c.augment) augment_frame(draw_augmentation(c.seed, assignment.epoch, index), frame);
          frames.push_back(std::move(frame));
        }
        return frames;
      },
      0, c.steps);
  const int64_t global_batch = sampler.global_batch();
  const double start = now_s();
  double loss_sum_since_log = 0, imbalance_sum_since_log = 0;
  int64_t steps_since_log = 0;
  if (comm.is_root()) {
    std::printf(
        "train: semseg, %lld parameters, %lld frames, %lld steps of %lld frames on %d rank(s) (balance %s), "
        "%d threads per rank\n",
        static_cast<long long>(model.params().size()), static_cast<long long>(num_frames),
        static_cast<long long>(c.steps), static_cast<long long>(global_batch), comm.size(), c.balance.c_str(),
        omp_get_max_threads());
    std::fflush(stdout);
  }

  for (int64_t step = 0; step < c.steps; ++step) {
    const double t0 = now_s();
    const int64_t epoch = step * global_batch / num_frames;
    // Data wait: near zero once the loader is ahead. A bad frame on any rank ends every rank (agreed),
    // never a hang in the next collective.
    std::vector<Frame> frames;
    run_agreed(comm, [&] { frames = loader.next(); });
    const PointBatch batch = make_batch(frames);
    // BN running statistics follow rank 0's, as DDP's broadcast_buffers does.
    if (comm.size() > 1) comm.broadcast_in_place(model.buffers().values().data(), model.buffers().size(), 0);
    const double t1 = now_s();
    const std::vector<float>& logits = model.forward(batch, true);
    std::vector<float> dlogits(logits.size());
    const double local_loss =
        ops::cross_entropy<float>(logits.data(), batch.labels.data(), batch.num_points(), kNumSemanticClasses,
                                  weights.empty() ? nullptr : weights.data(), 0, dlogits.data());
    // The loss is the weighted mean over the points of the whole global batch: each rank scales its
    // gradient by its share of the global weight, and the summed gradients are the global gradient.
    double local_weight = 0;
    for (uint8_t label : batch.labels)
      if (label != 0) local_weight += weights.empty() ? 1.0 : double(weights[label]);
    double sums[2] = {local_weight, local_loss * local_weight};  // Σ weight, Σ weight · loss over all ranks
    comm.sum_in_place(sums, 2);
    const double loss = sums[0] > 0 ? sums[1] / sums[0] : 0.0;
    const float scale = sums[0] > 0 ? float(local_weight / sums[0]) : 0.f;
    for (float& d : dlogits) d *= scale;
    const double t2 = now_s();
    model.params().zero_grads();
    model.backward(dlogits);
    const double t3 = now_s();
    if (comm.size() > 1) comm.sum_in_place(model.params().grads().data(), model.params().size());
    const double t4 = now_s();
    const double grad_norm = clip_grad_norm(model.params().grads(), c.grad_clip);
    const double lr = learning_rate(c.schedule, step);
    optimizer.step(model.params(), lr);
    const double t5 = now_s();
    // Straggler imbalance: max / mean over ranks of the compute time (forward + backward).
    const double compute_s = t3 - t1;
    const double max_compute_s = comm.max(compute_s);
    double compute_sum[1] = {compute_s};
    comm.sum_in_place(compute_sum, 1);
    const double imbalance = compute_sum[0] > 0 ? max_compute_s / (compute_sum[0] / comm.size()) : 1.0;

    if (comm.is_root()) {
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
          .key("allreduce_s")
          .value(t4 - t3)
          .key("optimizer_s")
          .value(t5 - t4)
          .key("step_s")
          .value(t5 - t0)
          .key("imbalance")
          .value(imbalance)
          .key("samples_per_s")
          .value(double(global_batch) / (t5 - t0))
          .key("elapsed_s")
          .value(t5 - start)
          .end_object();
      metrics << line.str() << "\n";
      metrics.flush();
    }
    loss_sum_since_log += loss;
    imbalance_sum_since_log += imbalance;
    ++steps_since_log;
    if (comm.is_root() && ((step + 1) % c.log_every == 0 || step + 1 == c.steps)) {
      const double elapsed = t5 - start, per_step = elapsed / double(step + 1);
      std::printf("step %lld/%lld  loss %.4f  lr %.2e  %.2f samples/s  imbalance %.2f  elapsed %s  ETA %s\n",
                  static_cast<long long>(step + 1), static_cast<long long>(c.steps),
                  loss_sum_since_log / double(steps_since_log), lr, double(global_batch) / per_step,
                  imbalance_sum_since_log / double(steps_since_log), duration_text(elapsed).c_str(),
                  duration_text(per_step * double(c.steps - step - 1)).c_str());
      std::fflush(stdout);
    }
    if ((step + 1) % c.log_every == 0) loss_sum_since_log = imbalance_sum_since_log = 0, steps_since_log = 0;
    if ((c.checkpoint_every > 0 && (step + 1) % c.checkpoint_every == 0) || step + 1 == c.steps) {
      // Parameters, buffers and optimizer state are the same on every rank: rank 0 writes.
      run_agreed(comm, [&] {
        if (comm.is_root()) save_checkpoint(run, model, optimizer, step + 1, epoch, (step + 1) * global_batch, comm);
      });
    }
  }

  if (!c.val_data.empty()) {
    const DatasetReader val(c.val_data);
    const SegmentationMetrics m = evaluate_semseg(model, val, comm);
    if (!comm.is_root()) return kExitOk;
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
