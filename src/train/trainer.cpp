#include "src/train/trainer.hpp"

#include <omp.h>
#include <sched.h>
#include <signal.h>

#include <chrono>
#include <cmath>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <optional>
#include <sstream>
#include <thread>

#include "io/atomic_file.hpp"
#include "io/checkpoint.hpp"
#include "io/dataset.hpp"
#include "io/prefetch.hpp"
#include "io/tfevents.hpp"
#include "kernels/cpu/ops.hpp"
#include "kernels/cuda/device.hpp"
#include "mpi/balance.hpp"
#include "mpi/grad_buckets.hpp"
#include "mpi/reduce_backend.hpp"
#include "mpi/watchdog.hpp"
#include "src/common/clock.hpp"
#include "src/common/error.hpp"
#include "src/common/json.hpp"
#include "src/common/stop_signal.hpp"
#include "src/common/timeline.hpp"
#include "src/models/registry.hpp"
#include "src/train/allreduce_bench.hpp"
#include "src/train/checkpointing.hpp"
#include "src/train/data.hpp"
#include "src/train/device.hpp"
#include "src/train/evaluate.hpp"
#include "src/train/metrics.hpp"
#include "src/train/optimizer.hpp"
#include "src/train/provenance.hpp"
#include "src/train/threads.hpp"
#include "version.hpp"

namespace lt {
namespace fs = std::filesystem;

namespace {

// The loader keeps this many steps ready ahead of the one computing.
constexpr int kPrefetchDepth = 2;

// One step's work for this rank, made on the loader thread: per micro-batch (slot) its frame indices
// and the model's prepared input (features, BEV cell index, targets).
struct PreparedStep {
  std::vector<std::vector<int64_t>> slot_frames;
  std::vector<std::unique_ptr<ModelInput>> inputs;
};

// Rank 0's shard fingerprints, compared on every rank: a rank whose copy differs names the shard.
void require_same_dataset(const Comm& comm, const DatasetReader& reader, const std::string& path) {
  const std::vector<uint64_t>& mine = reader.shard_fingerprints();
  const std::vector<int64_t> count = comm.broadcast({int64_t(mine.size())}, 0);
  require(count[0] == int64_t(mine.size()), path + ": has " + std::to_string(mine.size()) +
                                                " shard(s) on this rank but " + std::to_string(count[0]) +
                                                " on rank 0: every rank must see the same dataset");
  const std::vector<int64_t> root = comm.broadcast(std::vector<int64_t>(mine.begin(), mine.end()), 0);
  for (size_t s = 0; s < mine.size(); ++s)
    require(root[s] == int64_t(mine[s]), reader.shard_paths()[s] +
                                             ": differs from rank 0's copy (frame ids, point counts or costs): "
                                             "every rank must see the same dataset");
}

// "bev.dec1" for the layer whose first parameter starts at `offset` ("bev.dec1.0.weight").
std::string layer_name(const ParamStore& params, int64_t offset) {
  for (const TensorView& view : params.views())
    if (view.offset == offset) {
      const std::string& name = view.name;
      return name.substr(0, name.rfind('.', name.rfind('.') - 1));
    }
  return "?";
}

}  // namespace

namespace {

// One training run on one rank, in the phases train() runs top to bottom: setup (dataset, model on its
// device, optimizer, communication), resume (the checkpoint to continue from), open the run directory,
// start the loader, then step after step (each maybe followed by a checkpoint), and finish (timeline,
// validation).
class Trainer {
 public:
  struct StepOutcome {
    StepTimes times;
    Comm::Spread spread;
    int64_t epoch = 0, points = 0;
    double loss = 0, lr = 0, grad_norm = 0, imbalance = 1, end_s = 0;
    double loss_scale = 1;  // fp16: the loss scale this step's gradients carried
    bool stopping = false;
    std::string nonfinite;     // "loss" or "gradient norm" when the step was skipped
    TransferLedger transfers;  // what this rank's step moved between host and device
  };
  // A step whose loss or gradient norm was not finite, with train.on_nonfinite stop (or too many skips).
  struct Diverged {
    int64_t step;
    std::string what;
    double value;
    int64_t skips;
  };

  Trainer(const TrainRun& run, const Comm& comm) : run_(run), c_(run.config), comm_(comm) {}

  int run() {
    setup();
    resume();
    if (start_step_ >= c_.steps) {
      if (comm_.is_root())
        std::printf("train: %s is complete: step %lld of %lld (%s)\n", run_.run_dir.c_str(),
                    static_cast<long long>(start_step_), static_cast<long long>(c_.steps), resume_from_.c_str());
      return kExitOk;
    }
    bool stopping = false;
    try {
      open_run_dir();
      start_loader();
      print_start();
      for (int64_t step = start_step_; step < c_.steps && !stopping; ++step) {
        const StepOutcome outcome = run_step(step);
        stopping = outcome.stopping;
        record_step(step, outcome);
        if ((c_.checkpoint_every > 0 && (step + 1) % c_.checkpoint_every == 0) || step + 1 == c_.steps || stopping)
          checkpoint(step, stopping);
      }
      watchdog_->idle();
      return finish(stopping);
    } catch (const Diverged& d) {
      watchdog_->idle();
      return report_divergence(d);
    } catch (const WriteError& e) {
      // Rank 0 (the agreed error) says what is still good; nothing of the failed write is left.
      watchdog_->idle();
      throw e.with_context("the last good checkpoint is " + last_good_checkpoint(run_.run_dir));
    }
  }

  // Resident on a device, after the gradients are summed, all queued with no host round trip in between:
  // the global loss (this rank's share summed over ranks on the device: nccl), the global norm's square
  // (the backend's fixed-order sum_squares), from both the gate (clip factor; closed when either is not
  // finite), the optimizer through the gate, and the next step's input copies. Then the host reads the
  // step's scalars in one download — this rank's loss share, the global loss and the norm's square, and with
  // fp16 the loss scaler's new state — and returns the norm. A closed gate skipped the update; the
  // optimizer's step count is taken back.
  double update_on_device(double lr, double& loss_share, double& global_loss) {
    Model& model = *model_;
    const DeviceParams& state = model.resident_state();
    double* scalars = step_scalars_.data();
    gate_on_device_.resize(*device_, 2);
    device_->copy(scalars + kGlobalLoss, scalars + kLossShare, sizeof(double));
    if (comm_.size() > 1) sum_doubles_on_device(scalars + kGlobalLoss, 1);
    device_->sum_squares(state.grads, model.params().size(), scalars + kNormSquared);
    if (scaling_)  // the norm unscaled, the gate's factor ÷ the scale, the scale updated: all on the device
      device_->scaled_gradient_gate(scalars + kNormSquared, scalars + kGlobalLoss, c_.grad_clip,
                                    c_.loss_scale_growth_interval, scalars + kLossScale, gate_on_device_.data());
    else
      device_->gradient_gate(scalars + kNormSquared, scalars + kGlobalLoss, c_.grad_clip, gate_on_device_.data());
    optimizer_->begin_step();
    optimizer_->update_on(*device_, model.params(), state.values, state.grads, lr, gate_on_device_.data());
    upload_next_inputs();  // while this step's work runs
    double read[kStepScalars] = {};
    device_->download(read, scalars, sizeof read);
    loss_share = read[kLossShare], global_loss = read[kGlobalLoss];
    if (scaling_) loss_scale_ = read[kLossScale], good_steps_ = read[kGoodSteps];
    const double norm = std::sqrt(read[kNormSquared]);
    if (!std::isfinite(global_loss) || !std::isfinite(norm)) optimizer_->undo_step();  // the gate was closed
    return norm;
  }

  // The next step's inputs, if the loader has it ready, queued for upload on the copy stream now, so the
  // copies run while this step's queued work does (their forward only waits for them on the device).
  // A step not ready yet is uploaded at its forward, as is one whose copy finds no device memory (forward
  // reports that, agreed). Counted per step (inputs_ahead in metrics.jsonl).
  void upload_next_inputs() {
    inputs_ahead_ = 0;
    PreparedStep* next = loader_->peek_ready();
    if (!next) return;
    try {
      for (const std::unique_ptr<ModelInput>& input : next->inputs) model_->upload_input(*input), ++inputs_ahead_;
    } catch (const OutOfDeviceMemory&) {
    }
  }

  // A fault for tests (tests/e2e/nccl.sh): LIDARTRAIN_TEST_STALL=<rank>:<step> stops that rank before
  // that step's last backward for good, as a hung GPU or process would; its peers wait in the gradient
  // all-reduce and the watchdog is what ends the job. The step (1-based) of this rank, or -1: read once.
  static int64_t stall_step_asked(int rank) {
    const char* text = std::getenv("LIDARTRAIN_TEST_STALL");
    int stall_rank = -1;
    long long at_step = -1;
    if (!text || std::sscanf(text, "%d:%lld", &stall_rank, &at_step) != 2 || stall_rank != rank) return -1;
    return at_step;
  }
  void stall_if_asked(int64_t step) const {
    if (step + 1 != stall_step_) return;
    for (;;) std::this_thread::sleep_for(std::chrono::seconds(1));
  }

  // "parameters <name>" (or buffers, optimizer state) of the first tensor holding a NaN or infinity.
  std::string first_non_finite_tensor() {
    const auto finite = [](const float* v, int64_t n) {
      for (int64_t i = 0; i < n; ++i)
        if (!std::isfinite(v[i])) return false;
      return true;
    };
    for (const TensorView& view : model_->params().views())
      if (!finite(model_->params().value(view.offset), view.size)) return "parameters in " + view.name;
    for (const TensorView& view : model_->buffers().views())
      if (!finite(model_->buffers().value(view.offset), view.size)) return "buffer " + view.name;
    for (auto& [name, values] : optimizer_->state())
      if (!finite(values->data(), int64_t(values->size()))) return "optimizer state " + name;
    return "";
  }

  // One line on rank 0: the step, what was not finite, and the checkpoint to go back to; nothing written.
  int report_divergence(const Diverged& d) {
    if (comm_.is_root()) {
      const std::string last_good = last_good_checkpoint(run_.run_dir);
      std::string skips =
          d.skips > 1 ? " (" + std::to_string(d.skips) + " steps in a row, more than train.max_nonfinite_skips)" : "";
      if (scaling_ && d.what == "gradient norm")  // every one overflowed fp16, the scale halved each time
      {
        char scale[32];
        std::snprintf(scale, sizeof scale, "%g", 2 * loss_scale_);
        skips += std::string(" at fp16 loss scales down to ") + scale;
      }
      std::fprintf(stderr,
                   "lidartrain train: error: step %lld: non-finite %s (%g)%s; stopped without writing a checkpoint; "
                   "the last good checkpoint is %s\n",
                   static_cast<long long>(d.step), d.what.c_str(), d.value, skips.c_str(), last_good.c_str());
    }
    return kExitDiverged;
  }

 private:
  // ---- setup ----
  void setup() {
    require(!c_.train_data.empty(), "--data.train (or --data): no training dataset given");
    set_threads_per_rank(c_.threads, comm_);
    // Every rank opens the dataset and the ranks agree it is the same one before any collective of the
    // step: a directory missing on one rank, or a shard that differs, ends every rank, never a hang.
    run_agreed(comm_, [&] {
      reader_.emplace(c_.train_data);
      const ModelEntry& entry = model_entry(c_.model_name, "model.name");
      require(entry.output != ModelOutput::point_labels || reader_->kind().has_labels,
              c_.train_data + ": dataset has no point labels to train " + entry.name + " on");
      require(entry.output != ModelOutput::boxes || reader_->kind().has_boxes,
              c_.train_data + ": dataset has no boxes to train " + entry.name + " on");
    });
    run_agreed(comm_, [&] { require_same_dataset(comm_, *reader_, c_.train_data); });
    run_.dataset_id = dataset_identity(*reader_);
    run_.provenance = provenance_json(comm_, fs::absolute(c_.train_data).string(), run_.dataset_id);
    num_frames_ = reader_->num_frames();
    slots_per_rank_ = c_.accumulate;
    const int slots = comm_.size() * slots_per_rank_;
    global_batch_ = int64_t(slots) * c_.batch_size;
    require(global_batch_ <= num_frames_,
            std::to_string(comm_.size()) + " rank(s) × " + std::to_string(slots_per_rank_) + " micro-batch(es) × " +
                std::to_string(c_.batch_size) + " frames = global batch " + std::to_string(global_batch_) +
                " exceeds the " + std::to_string(num_frames_) + " frames of " + c_.train_data +
                ": use fewer ranks or a smaller train.batch_size");
    // The device: every rank must have its own (a rank without is an error on every rank).
    run_agreed(comm_, [&] { device_ = &choose_device(c_.device, comm_.local_rank(), "train.device"); });
    rank_devices_ = require_one_rank_per_gpu(comm_, *device_);
    set_deterministic_convolutions(c_.deterministic);

    model_ = make_model(c_);
    model_->set_backend(*device_);
    model_->set_resident(true);  // on a device: parameters, gradients, buffers and optimizer state stay there
    use_precision(*device_, c_.precision, "--train.precision");
    scaling_ = c_.precision == Precision::fp16;  // a device's (use_precision refused the CPU), so resident
    loss_scale_ = scaling_ ? c_.loss_scale : 1.0;
    require(!c_.cuda_graphs || model_->set_cuda_graphs(true),
            "--train.cuda_graphs: CUDA graphs capture a GPU's launches and train.device is " +
                std::string(device_->name) + "; set train.device cuda or train.cuda_graphs false");
    model_->init(c_.seed);
    optimizer_.emplace(c_.optimizer, model_->params().size());
    run_agreed(comm_, [&] { comm_name_ = resolve_reduce_backend(c_.comm, *device_, "train.comm"); });
    reduce_ = make_reduce_backend(comm_name_, comm_, *device_);
    if (c_.sync_bn) model_->set_sync_bn([this](double* sums, int64_t count) { sum_doubles_on_device(sums, count); });
    if (c_.sync_bn && c_.cuda_graphs) {
      // SyncBN's sums inside the graphed dense part: captured with it where they stay on the device (nccl),
      // and the ranks replay, capture or run it eagerly together.
      require(reduce_->sums_device_memory(),
              "--train.cuda_graphs with --train.sync_bn: with train.comm " + comm_name_ +
                  " SyncBN's sums go through the host, which a graph cannot capture; use train.comm nccl, "
                  "or set one of them false");
      model_->set_graph_agreement([this](int plan) { return comm_.min(plan); });
    }
    std::vector<int64_t> tensor_starts;
    for (const TensorView& view : model_->params().views()) tensor_starts.push_back(view.offset);
    buckets_.emplace(*reduce_, tensor_starts, model_->params().size(), c_.bucket_bytes);
    timeline_.emplace(!c_.timeline.empty());
    watchdog_.emplace(comm_, run_.timeout_s);
    // A hung all-reduce: the bucket it waits for, and (nccl) the communicator aborted first.
    watchdog_->on_timeout([this] {
      std::string pending = buckets_->pending();
      reduce_->abort();
      return pending.empty() ? std::string() : "waiting for gradient " + pending + " over " + reduce_->name();
    });
    install_stop_signals();
    stall_step_ = stall_step_asked(comm_.rank());
  }

  // Doubles in the device's memory (SyncBN's sums, the step's loss) summed over ranks: where the reduce
  // backend sums that memory (nccl), there, the host not waiting; otherwise (mpi with a GPU) through the host.
  void sum_doubles_on_device(double* sums, int64_t count) {
    if (device_->host_memory || reduce_->sums_device_memory()) return reduce_->sum(sums, count);
    std::vector<double> host(static_cast<size_t>(count));
    device_->download(host.data(), sums, sizeof(double) * size_t(count));
    reduce_->sum(host.data(), count);
    device_->upload(sums, host.data(), sizeof(double) * size_t(count));
  }

  // ---- resume ----
  // Parameters, BN buffers, optimizer state, and where the run was (DESIGN.md §8): its step (the LR
  // schedule's position), the global frames consumed (the data position) and the cost model.
  void resume() {
    resume_from_ = choose_resume_checkpoint(run_, comm_);
    const double read_start = now_s();
    if (!resume_from_.empty()) {
      run_agreed(comm_, [&] {
        const CheckpointMeta meta = read_checkpoint_meta(resume_from_);
        require(meta.model == c_.model_name, resume_from_ + ": a " + meta.model + " checkpoint, not " + c_.model_name);
        require_same_model(meta.config, run_.config_ini, resume_from_);
        require(meta.optimizer_type == c_.optimizer.type, resume_from_ + ": optimizer state is " + meta.optimizer_type +
                                                              ", this run's train.optimizer is " + c_.optimizer.type);
        OptimizerState optimizer_state;
        for (auto& [name, values] : optimizer_->state()) optimizer_state.emplace_back(name, values);
        read_checkpoint_tensors(resume_from_, model_->params(), model_->buffers(), optimizer_state);
        optimizer_->set_steps_taken(meta.optimizer_steps);
        resumed_ = read_checkpoint_state(resume_from_);
        if (comm_.is_root())
          for (const std::string& warning :
               provenance_differences(resume_from_, meta.git_sha, meta.git_diff, meta.dataset, meta.dataset_id,
                                      fs::absolute(c_.train_data).string(), run_.dataset_id))
            std::fprintf(stderr, "lidartrain train: warning: %s\n", warning.c_str());
      });
      const std::vector<double>& history = resumed_.cost_model_history;
      if (!history.empty()) cost_model_.restore(resumed_.cost_model_sums, history[history.size() - 2], history.back());
      // The loss scaler goes on where it was (an fp16 run's checkpoint); a run in another precision, or one
      // from a checkpoint without it, starts from train.loss_scale.
      if (scaling_ && !resumed_.loss_scaler.empty())
        loss_scale_ = resumed_.loss_scaler[0], good_steps_ = resumed_.loss_scaler[1];
    }
    // Reading and checking the checkpoint on every rank (the choice, on rank 0, verified every checksum).
    read_s_ = comm_.max(now_s() - read_start);
    start_step_ = resumed_.step;
  }

  // The data position of step s: global frames consumed before it.
  int64_t samples_before(int64_t step) const { return resumed_.samples_seen + (step - start_step_) * global_batch_; }

  // ---- the run directory: config.ini, metrics.jsonl, checkpoints (rank 0 writes) ----
  void open_run_dir() {
    run_agreed(comm_, [&] {
      if (!comm_.is_root()) return;
      create_directories(run_.run_dir, "run directory");
      write_text_file_atomically((fs::path(run_.run_dir) / "config.ini").string(), run_.config_ini);
      if (!resume_from_.empty()) trim_metrics(metrics_path(), start_step_);
      metrics_.open(metrics_path(), /*truncate=*/resume_from_.empty());
      // TensorBoard's curves: a resumed run goes on in its event file from the step it resumes at.
      events_.open(run_.run_dir, resume_from_.empty() ? -1 : start_step_, wall_clock_s());
      if (!resume_from_.empty()) {
        JsonWriter line;
        line.begin_object()
            .key("resumed")
            .begin_object()
            .key("checkpoint")
            .value(resume_from_)
            .key("at_step")
            .value(start_step_)
            .key("samples_seen")
            .value(resumed_.samples_seen)
            .key("world_size")
            .value(comm_.size())
            .key("read_s")
            .value(read_s_)
            .end_object()
            .end_object();
        metrics_.append(line.str() + "\n");
      }
    });
    if (comm_.size() > 1) {
      // On the device (nccl) over the gradient buffer itself (zeroed before the first step).
      std::vector<float> host_buffer(reduce_->sums_device_memory() ? 0 : size_t(model_->params().size()), 1.f);
      float* buffer = reduce_->sums_device_memory() ? model_->resident_state().grads : host_buffer.data();
      const AllreduceBench bench = bench_allreduce(*reduce_, buffer, model_->params().size());
      reduce_->device_wait_s();  // its waits are not the first step's
      run_agreed(comm_, [&] {
        if (comm_.is_root()) metrics_.append(allreduce_bench_json(bench, comm_.size()) + "\n");
      });
    }
  }

  // ---- the loader ----
  // Every rank computes the same assignment of each step's global batch to slots (rank r owns slots
  // r·K … r·K + K − 1, one per micro-batch); the loader thread reads, augments and prepares this rank's
  // frames of steps s + 1, s + 2 while s computes.
  void start_loader() {
    sampler_.emplace(parse_balance(c_.balance), std::vector<double>(reader_->costs().begin(), reader_->costs().end()),
                     comm_.size() * slots_per_rank_, c_.batch_size, c_.seed,
                     std::vector<double>(reader_->points_per_frame().begin(), reader_->points_per_frame().end()));
    if (!resume_from_.empty()) {
      sampler_->resume_at(start_step_, resumed_.samples_seen);
      for (size_t i = 0; i + 2 < resumed_.cost_model_history.size(); i += 3)
        sampler_->set_cost_model(int64_t(resumed_.cost_model_history[i]), resumed_.cost_model_history[i + 1],
                                 resumed_.cost_model_history[i + 2]);
    }
    loader_.emplace(
        [this](int64_t step) {
          // The loader thread uses one OpenMP thread: the cores are the step's.
          static thread_local const bool one_thread = (omp_set_num_threads(1), true);
          (void)one_thread;
          const double t0 = now_s();
          const StepAssignment assignment = sampler_->step(step);
          PreparedStep prepared;
          prepared.slot_frames = std::vector<std::vector<int64_t>>(
              assignment.frames_of_rank.begin() + int64_t(comm_.rank()) * slots_per_rank_,
              assignment.frames_of_rank.begin() + int64_t(comm_.rank() + 1) * slots_per_rank_);
          for (const std::vector<int64_t>& slot : prepared.slot_frames) {
            std::vector<Frame> frames;
            for (int64_t index : slot) {
              frames.push_back(reader_->read(index));
              if (c_.augment)
                augment_frame(draw_augmentation(c_.seed, assignment.epoch, index, c_.max_rotation), frames.back());
            }
            prepared.inputs.push_back(model_->prepare(make_batch(frames), true));
            model_->stage_input(*prepared.inputs.back());  // on a device: into pinned memory, here
          }
          timeline_->add(TimelineTrack::loader, "load", t0, now_s(), step);
          return prepared;
        },
        start_step_, c_.steps, kPrefetchDepth);
  }

  void print_start() {
    comm_.barrier();
    start_s_ = now_s();
    timeline_->set_origin(start_s_);
    if (!comm_.is_root()) return;
    std::printf(
        "train: %s, %lld parameters, %lld frames, %lld steps of %lld frames on %d rank(s) (balance %s%s%s), "
        "%d threads per rank, %zu all-reduce bucket(s) over %s, device %s\n",
        model_->name().c_str(), static_cast<long long>(model_->params().size()), static_cast<long long>(num_frames_),
        static_cast<long long>(c_.steps), static_cast<long long>(global_batch_), comm_.size(), c_.balance.c_str(),
        c_.sync_bn ? ", SyncBN" : "",
        slots_per_rank_ > 1 ? (", " + std::to_string(slots_per_rank_) + " micro-batches").c_str() : "",
        omp_get_max_threads(), buckets_->buckets().size(), reduce_->name(), describe_device(*device_).c_str());
    if (!device_->host_memory) {
      std::string gpus;
      for (size_t r = 0; r < rank_devices_.size(); ++r)
        gpus += (r ? ", " : "") + std::to_string(r) + ": " + rank_devices_[r];
      std::printf("train: GPU of each rank: %s\n", gpus.c_str());
    }
    if (!resume_from_.empty())
      std::printf("train: resumed from %s at step %lld (%lld frames seen)\n", resume_from_.c_str(),
                  static_cast<long long>(start_step_), static_cast<long long>(resumed_.samples_seen));
    std::fflush(stdout);
  }

  // ---- one step: data, forward and backward per micro-batch, gradient all-reduce, optimizer ----
  StepOutcome run_step(int64_t step) {
    StepOutcome out;
    StepTimes& times = out.times;
    Timeline& timeline = *timeline_;
    Model& model = *model_;
    const double step_start = now_s();
    const TransferLedger transfers_before = device_->transfers();
    double t = step_start;
    const auto phase_done = [&](const char* name, double& seconds) {
      const double now = now_s();
      seconds += now - t;
      timeline.add(TimelineTrack::compute, name, t, now, step);
      t = now;
    };
    out.epoch = samples_before(step) / num_frames_;
    // Data wait: near zero once the loader is ahead. A bad frame on any rank ends every rank (agreed),
    // never a hang in the next collective.
    watchdog_->enter("data loading", step);
    PreparedStep prepared;
    run_agreed(comm_, [&] { prepared = loader_->next(); });
    double my_frames = 0;
    for (const std::vector<int64_t>& slot : prepared.slot_frames) my_frames += double(slot.size());
    for (const auto& input : prepared.inputs) out.points += input->points;
    const size_t micro_batches = prepared.inputs.size();
    phase_done("data wait", times.data_wait_s);

    // The loss is normalised over the whole global batch (semseg: the weighted mean over its labelled
    // points; bevdet: per object): each micro-batch's loss and gradient are divided by the global
    // normaliser, so the summed gradients are the gradient of the global batch, whatever the split.
    watchdog_->enter("loss-weight all-reduce", step);
    double weight_sum[1] = {0};
    for (const auto& input : prepared.inputs) weight_sum[0] += input->loss_weight;
    comm_.sum_in_place(weight_sum, 1);
    const double normaliser = model.loss_normaliser(weight_sum[0]);
    // Without SyncBN, BN running statistics follow rank 0's, as DDP's broadcast_buffers does.
    const bool resident = model.resident();
    if (comm_.size() > 1 && !c_.sync_bn && reduce_->sums_device_memory()) {
      reduce_->broadcast(model.resident_state().buffers, model.buffers().size(), 0);  // on the device
    } else if (comm_.size() > 1 && !c_.sync_bn) {
      model.pull_to_host(Model::kBuffers);  // resident over mpi: the buffers alone through the host
      comm_.broadcast_in_place(model.buffers().values().data(), model.buffers().size(), 0);
      model.push_to_device(Model::kBuffers);
    }
    model.zero_grads();
    if (resident) {
      const DeviceParams& state = model.resident_state();
      buffers_before_on_device_.resize(*device_, model.buffers().size());
      device_->copy(buffers_before_on_device_.data(), state.buffers, sizeof(float) * model.buffers().size());
    } else {
      buffers_before_ = model.buffers().values();
    }
    phase_done("sync", times.sync_s);

    double loss_share = 0;
    if (resident) {  // the step's scalars, on the device until its one read (update_on_device)
      step_scalars_.resize(*device_, kStepScalars);
      device_->fill_zero(step_scalars_.data(), sizeof(double) * kLossScale);
      if (scaling_ && !scaler_on_device_) {  // the loss scaler's state lives there from the first step on
        const double scaler[2] = {loss_scale_, good_steps_};
        device_->upload(step_scalars_.data() + kLossScale, scaler, sizeof scaler);
        scaler_on_device_ = true;
      }
    }
    model.set_loss_scale(loss_scale_);  // the device's scale: the last step's read brought it
    out.loss_scale = loss_scale_;
    // On a device, running out of memory is this step's error on every rank (agreed, no hang).
    const auto on_device = [&](const std::function<void()>& work) {
      if (device_->host_memory) return work();
      run_agreed(comm_, [&] {
        try {
          work();
        } catch (const OutOfDeviceMemory& e) {
          throw InputError("step " + std::to_string(step + 1) + ": out of memory on " + e.backend + ": asked for " +
                           std::to_string(e.requested_bytes) + " bytes with " + std::to_string(e.in_use_bytes) +
                           " in use (train.batch_size " + std::to_string(c_.batch_size) +
                           "; fewer frames or points per batch fit)");
        }
      });
    };
    for (size_t k = 0; k < micro_batches; ++k) {
      const bool last = k + 1 == micro_batches;
      watchdog_->enter("forward", step);
      on_device([&] {
        if (resident)
          model.forward_loss_on(std::move(prepared.inputs[k]), normaliser, step_scalars_.data() + kLossShare);
        else
          loss_share += model.forward_loss(std::move(prepared.inputs[k]), normaliser);
      });
      phase_done("forward", times.forward_s);
      // Buckets are posted during the last micro-batch's backward only (earlier ones accumulate).
      watchdog_->enter("backward", step);
      if (last) stall_if_asked(step);
      // Resident on a device over mpi, the gradients are summed after backward, through the host (below).
      const bool overlap = last && (!resident || reduce_->sums_device_memory());
      if (overlap) buckets_->begin_step(resident ? model.resident_state().grads : model.params().grads().data());
      double layer_start = t;
      model.set_grads_ready_hook([&](int64_t first_final) {
        if (overlap) buckets_->grads_ready(first_final);
        if (!timeline.enabled()) return;
        const double now = now_s();
        timeline.add(TimelineTrack::compute, "backward " + layer_name(model.params(), first_final), layer_start, now,
                     step);
        layer_start = now;
      });
      on_device([&] { model.backward(); });
      model.set_grads_ready_hook({});
      times.backward_s += now_s() - t;
      t = now_s();
    }

    // Every bucket first: the update must not start before the step is known to be finite. The global
    // loss comes from one small all-reduce; the gradients are already summed, so their norm is the same
    // on every rank, and every rank decides the same.
    watchdog_->enter("gradient all-reduce", step);
    out.lr = learning_rate(c_.schedule, step);
    update_parameters(step, loss_share, out);
    // The host's waits (mpi), or the device's, timed on the device (nccl: the host does not wait).
    times.allreduce_wait_s = buckets_->wait_s() + reduce_->device_wait_s();
    phase_done("optimizer", times.optimizer_s);
    times.optimizer_s -= times.allreduce_wait_s;
    for (size_t b = 0; b < buckets_->buckets().size(); ++b) {
      const GradBucket& bucket = buckets_->buckets()[b];
      timeline.add(TimelineTrack::allreduce,
                   "allreduce bucket " + std::to_string(b) + " (" +
                       std::to_string(double(bucket.end - bucket.begin) * sizeof(float) / 1e6).substr(0, 5) + " MB)",
                   bucket.posted_s, bucket.done_s, step);
    }
    times.allreduce_span_s = buckets_->buckets().back().done_s - buckets_->buckets().front().posted_s;
    times.step_s = now_s() - step_start;
    out.transfers = device_->transfers() - transfers_before;

    // Straggler imbalance: max / mean over ranks of the compute time (forward + backward).
    watchdog_->enter("metrics all-reduce", step);
    const double compute_s = times.forward_s + times.backward_s;
    cost_model_.observe(double(out.points), my_frames, compute_s);
    // A stop signal, or a time budget that would not hold another step and its checkpoint.
    const bool stop_here =
        stop_signal() != 0 || (c_.max_time_s > 0 && now_s() - start_s_ + 2 * times.step_s > c_.max_time_s);
    out.spread = comm_.spread(times.as_vector(compute_s, loss_share, stop_here));
    out.stopping = out.spread.max[StepTimes::kStop] > 0;
    out.loss = out.spread.mean[StepTimes::kLoss] * comm_.size();
    out.imbalance = out.spread.mean[StepTimes::kCompute] > 0
                        ? out.spread.max[StepTimes::kCompute] / out.spread.mean[StepTimes::kCompute]
                        : 1.0;
    if (c_.cost_refit > 0 && (step + 1) % c_.cost_refit == 0 && cost_model_.refit(comm_))
      // The loader may already hold steps up to step + kPrefetchDepth: the new model applies after them.
      sampler_->set_cost_model(step + 1 + kPrefetchDepth, cost_model_.per_point, cost_model_.per_frame);
    out.end_s = now_s();
    return out;
  }

  // The gradients summed over ranks, then, if the step is finite, clipped and applied (out: grad_norm,
  // nonfinite). Resident on a device, all of it runs there, the update gated there by the norm and the
  // global loss, and the host reads the step's scalars once the update is queued (update_on_device), this
  // rank's loss_share among them (it is known only from then on); a step that is not finite leaves the
  // parameters and optimizer state untouched and the BN buffers as before it.
  void update_parameters(int64_t step, double& loss_share, StepOutcome& out) {
    Model& model = *model_;
    const bool resident = model.resident();
    if (resident && !reduce_->sums_device_memory()) {
      // Over MPI the gradients go through the host (one copy each way); alone, nothing moves.
      buckets_->begin_step(model.params().grads().data());
      if (comm_.size() > 1) model.pull_to_host(Model::kGrads);
      buckets_->grads_ready(0);
      buckets_->wait_all();
      if (comm_.size() > 1) model.push_to_device(Model::kGrads);
    } else {
      buckets_->wait_all();  // nccl: the compute stream waits for every bucket, the host goes on
    }
    double global_loss[1] = {loss_share};
    if (resident) {
      out.grad_norm = update_on_device(out.lr, loss_share, global_loss[0]);
    } else {
      comm_.sum_in_place(global_loss, 1);
      out.grad_norm = gradient_norm(model.params().grads());
    }
    out.nonfinite = !std::isfinite(global_loss[0]) ? "loss" : !std::isfinite(out.grad_norm) ? "gradient norm" : "";
    if (out.nonfinite.empty() && resident) {
      consecutive_skips_ = 0;  // updated on the device already
    } else if (out.nonfinite.empty()) {
      consecutive_skips_ = 0;
      clip_to_norm(model.params().grads(), out.grad_norm, c_.grad_clip);
      optimizer_->step(model.params(), out.lr);
    } else {
      if (resident)
        device_->copy(model.resident_state().buffers, buffers_before_on_device_.data(),
                      sizeof(float) * model.buffers().size());
      else
        model.buffers().values() = buffers_before_;
      ++consecutive_skips_, ++skipped_steps_;
      // fp16: gradients that overflowed the loss scale are the scaler's to handle (it halved the scale);
      // only a run that keeps overflowing stops. A non-finite loss is train.on_nonfinite's, as in fp32.
      const bool overflow = scaling_ && out.nonfinite == "gradient norm";
      if ((c_.on_nonfinite == "stop" && !overflow) || consecutive_skips_ > c_.max_nonfinite_skips)
        throw Diverged{step + 1, out.nonfinite, out.nonfinite == "loss" ? global_loss[0] : out.grad_norm,
                       consecutive_skips_};
    }
  }

  // ---- metrics.jsonl, the progress line, the Prometheus file ----
  void record_step(int64_t step, const StepOutcome& out) {
    // Rank 0 writes; every rank learns whether it could (a full disk ends the job here, on every rank).
    watchdog_->enter("writing " + metrics_path(), step);
    run_agreed(comm_, [&] { write_step_outputs(step, out); });
    loss_sum_since_log_ += out.loss;
    imbalance_sum_since_log_ += out.imbalance;
    ++steps_since_log_;
    if ((step + 1) % c_.log_every == 0 || step + 1 == c_.steps)
      loss_sum_since_log_ = imbalance_sum_since_log_ = 0, steps_since_log_ = 0;
  }

  std::string metrics_path() const { return (fs::path(run_.run_dir) / "metrics.jsonl").string(); }

  // Rank 0: the step's metrics.jsonl line, and every log.every steps the progress line and the
  // Prometheus file (the means since the last progress line).
  void write_step_outputs(int64_t step, const StepOutcome& out) {
    if (comm_.is_root()) {
      const PoolStats memory = model_->memory();
      JsonWriter line;
      line.begin_object()
          .key("step")
          .value(step + 1)
          .key("epoch")
          .value(out.epoch)
          .key("loss")
          .value(out.loss)
          .key("lr")
          .value(out.lr)
          .key("grad_norm")
          .value(out.grad_norm)
          .key("points")
          .value(out.points);
      StepTimes::write_spread(line, out.spread);
      line.key("imbalance")
          .value(out.imbalance)
          .key("samples_per_s")
          .value(double(global_batch_) / out.spread.max[StepTimes::kStep])
          .key("cost_model")
          .begin_array()
          .value(cost_model_.per_point)
          .value(cost_model_.per_frame)
          .end_array()
          .key("device_peak_bytes")
          .value(int64_t(memory.peak_bytes))
          .key("h2d_bytes")
          .value(out.transfers.h2d_bytes)
          .key("d2h_bytes")
          .value(out.transfers.d2h_bytes)
          .key("syncs")
          .value(out.transfers.syncs)
          .key("inputs_ahead")
          .value(inputs_ahead_)
          .key("skipped")
          .value(!out.nonfinite.empty())
          .key("skipped_steps")
          .value(skipped_steps_);
      if (c_.cuda_graphs) line.key("graph_replays").value(model_->graph_counts().replayed);
      if (scaling_) line.key("loss_scale").value(out.loss_scale);
      line.key("elapsed_s").value(out.end_s - start_s_).end_object();
      metrics_.append(line.str() + "\n");
      events_.scalars(step + 1, wall_clock_s(),
                      {{"train/loss", out.loss},
                       {"train/lr", out.lr},
                       {"train/grad_norm", out.grad_norm},
                       {"train/samples_per_s", double(global_batch_) / out.spread.max[StepTimes::kStep]},
                       {"train/imbalance", out.imbalance},
                       {"train/data_wait_s", out.spread.max[StepTimes::kDataWait]},
                       {"train/skipped_steps", double(skipped_steps_)}});
    }
    const bool log_now = (step + 1) % c_.log_every == 0 || step + 1 == c_.steps;
    if (comm_.is_root() && log_now) {
      const double elapsed = out.end_s - start_s_, per_step = elapsed / double(step + 1 - start_step_);
      const double mean_loss = (loss_sum_since_log_ + out.loss) / double(steps_since_log_ + 1);
      const double mean_imbalance = (imbalance_sum_since_log_ + out.imbalance) / double(steps_since_log_ + 1);
      std::printf("step %lld/%lld  loss %.4f  lr %.2e  %.2f samples/s  imbalance %.2f  elapsed %s  ETA %s\n",
                  static_cast<long long>(step + 1), static_cast<long long>(c_.steps), mean_loss, out.lr,
                  double(global_batch_) / per_step, mean_imbalance, duration_text(elapsed).c_str(),
                  duration_text(per_step * double(c_.steps - step - 1)).c_str());
      std::fflush(stdout);
      if (!c_.prom_file.empty())
        write_text_file_atomically(
            c_.prom_file, prometheus_text(step + 1, c_.steps, mean_loss, out.lr, double(global_batch_) / per_step,
                                          mean_imbalance, out.spread, elapsed));
    }
  }

  // ---- checkpoint after `step` (and, when stopping, the requeue message) ----
  void checkpoint(int64_t step, bool stopping) {
    // Parameters, buffers and optimizer state are the same on every rank: each writes its share.
    watchdog_->enter("writing checkpoint " + checkpoint_path(run_.run_dir, step + 1), step);
    // Resident on a device: the state comes to the host for the file (and only for it).
    model_->pull_to_host();
    optimizer_->pull_state_to_host();
    // Never a checkpoint that could not be resumed from (the same decision on every rank).
    const std::string non_finite = first_non_finite_tensor();
    if (!non_finite.empty()) throw Diverged{step + 1, non_finite, std::nan(""), 0};
    const CheckpointState state{step + 1,
                                samples_before(step + 1),
                                global_batch_,
                                cost_model_.sums(),
                                sampler_->cost_model_history(),
                                scaling_ ? std::vector<double>{loss_scale_, good_steps_} : std::vector<double>{}};
    const double write_start = now_s();
    // Without SyncBN the ranks' BN running statistics differ until the next step's broadcast; the
    // checkpoint holds rank 0's (as DDP's).
    if (comm_.size() > 1 && !c_.sync_bn) {
      comm_.broadcast_in_place(model_->buffers().values().data(), model_->buffers().size(), 0);
      model_->push_to_device();
    }
    const int64_t epoch = samples_before(step) / num_frames_;
    const std::string path = save_checkpoint(run_, *model_, *optimizer_, state, epoch, comm_);
    const double write_s = comm_.max(now_s() - write_start);
    watchdog_->enter("writing " + metrics_path(), step);
    run_agreed(comm_, [&] {
      if (!comm_.is_root()) return;
      JsonWriter line;
      line.begin_object()
          .key("checkpoint")
          .begin_object()
          .key("path")
          .value(path)
          .key("at_step")
          .value(step + 1)
          .key("bytes")
          .value(int64_t(fs::file_size(path)))
          .key("write_s")
          .value(write_s)
          .end_object()
          .end_object();
      metrics_.append(line.str() + "\n");
    });
    if (stopping && comm_.is_root()) {
      std::printf(
          "train: stopping after step %lld (%s): checkpoint written; resume with --resume auto "
          "(exit %d: requeue)\n",
          static_cast<long long>(step + 1), stop_signal() != 0 ? stop_signal_name() : "train.max_time",
          int(kExitRequeue));
      std::fflush(stdout);
    }
  }

  // ---- finish: the timeline, and validation on data.val ----
  int finish(bool stopped) {
    if (timeline_->enabled()) {
      const std::vector<std::string> events = comm_.gather_text(timeline_->events_json(comm_.rank()), 0);
      run_agreed(comm_, [&] {
        if (comm_.is_root()) write_text_file_atomically(c_.timeline, trace_file_text(events));
      });
    }
    if (stopped) return kExitRequeue;
    if (c_.val_data.empty()) return kExitOk;
    std::optional<DatasetReader> val;
    run_agreed(comm_, [&] { val.emplace(c_.val_data); });
    JsonWriter line;
    line.begin_object().key("eval").value(c_.val_data).key("step").value(c_.steps);
    const std::string table = evaluate_model(*model_, *val, comm_, line);
    line.end_object();
    run_agreed(comm_, [&] {
      if (!comm_.is_root()) return;
      std::printf("validation on %s:\n%s", c_.val_data.c_str(), table.c_str());
      metrics_.append(line.str() + "\n");
      std::vector<std::pair<std::string, double>> headline;  // the report's own numbers: mIoU, mAP, …
      for (const auto& [key, value] : line.top_level_numbers())
        if (key != "step" && key != "frames") headline.emplace_back("val/" + key, value);
      events_.scalars(c_.steps, wall_clock_s(), headline);
    });
    return kExitOk;
  }

  TrainRun run_;  // a copy: setup fills in its provenance
  const TrainConfig& c_;
  const Comm& comm_;
  // setup
  std::optional<DatasetReader> reader_;
  int64_t num_frames_ = 0, global_batch_ = 0;
  int slots_per_rank_ = 1;
  const Backend* device_ = nullptr;
  std::unique_ptr<Model> model_;
  std::optional<Optimizer> optimizer_;
  std::string comm_name_;  // train.comm resolved: mpi | nccl
  std::unique_ptr<ReduceBackend> reduce_;
  std::optional<GradientBuckets> buckets_;
  std::optional<Timeline> timeline_;
  std::optional<Watchdog> watchdog_;
  CostModel cost_model_;
  // resume
  std::string resume_from_;
  CheckpointState resumed_;
  double read_s_ = 0;
  int64_t start_step_ = 0;
  // run directory and loader
  AppendFile metrics_;                     // rank 0's metrics.jsonl
  TfEventsWriter events_;                  // rank 0's TensorBoard event file
  std::vector<std::string> rank_devices_;  // rank 0: each rank's GPU (device_identity)
  std::optional<FrameSampler> sampler_;
  std::optional<PrefetchLoader<PreparedStep>> loader_;
  // steps
  double start_s_ = 0, loss_sum_since_log_ = 0, imbalance_sum_since_log_ = 0;
  int64_t steps_since_log_ = 0;
  std::vector<float> buffers_before_;       // the BN buffers before this step (a skipped step restores them)
  Buffer<float> buffers_before_on_device_;  // the same, resident on a device
  // A resident step's scalars on the device, read once at its end (update_on_device).
  // The step's scalars in the device's memory: zeroed each step up to kLossScale; the loss scaler's {scale,
  // steps since an overflow} (fp16) stay there from step to step.
  enum StepScalar { kLossShare, kGlobalLoss, kNormSquared, kLossScale, kGoodSteps, kStepScalars };
  Buffer<double> step_scalars_;
  Buffer<float> gate_on_device_;  // the optimizer's gate: {clip factor, open}
  int64_t consecutive_skips_ = 0, skipped_steps_ = 0;
  // fp16's dynamic loss scaler (torch.cuda.amp.GradScaler's rules; scaled_gradient_gate): the scale and the
  // steps since the last overflow, as the device left them at the last read.
  bool scaling_ = false, scaler_on_device_ = false;
  double loss_scale_ = 1, good_steps_ = 0;
  int64_t stall_step_ = -1;   // LIDARTRAIN_TEST_STALL for this rank (stall_if_asked)
  int64_t inputs_ahead_ = 0;  // the next step's inputs uploaded during this one (upload_next_inputs)
};

}  // namespace

int train(const TrainRun& run, const Comm& comm) {
  return Trainer(run, comm).run();
}

}  // namespace lt
