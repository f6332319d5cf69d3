#pragma once
// Assignment of frames to ranks, step by step (DESIGN.md §7, `train.balance`). Every rank computes the
// same assignment from the same inputs (seed, costs, rank count), so no rank waits for another to be
// told what to load. Positions count global samples: step s covers samples [s·G, (s+1)·G) of the run,
// G = ranks × batch (frames per rank), whatever the rank count, which is what lets a run resume on
// another rank count.
//
//   none    contiguous split of each global batch (PyTorch's DistributedSampler)
//   bucket  frames sorted by cost into capacity buckets of G; each step draws all its frames from one
//           bucket, split strided (Huawei Driving SDK's ReplicasDistributedSampler idea); a dataset size
//           that is not a multiple of G gives one smaller bucket per epoch, never repeated frames
//   lpt     the same random global batch as `none`, split by longest-processing-time-first on predicted
//           cost, so ranks may get different frame counts (gradients are averaged by the global count)
#include <cstdint>
#include <mutex>
#include <string>
#include <vector>

#include "mpi/comm.hpp"

namespace lt {

// The frames of epoch `epoch` in training order: a permutation of 0..num_frames-1 from (seed, epoch).
std::vector<int64_t> epoch_permutation(uint64_t seed, int64_t epoch, int64_t num_frames);

enum class Balance { none, bucket, lpt };
Balance parse_balance(const std::string& name);  // InputError unless none | bucket | lpt
const char* balance_name(Balance balance);

struct StepAssignment {
  int64_t epoch = 0;
  std::vector<std::vector<int64_t>> frames_of_rank;  // (ranks) frame indices
};

// The online cost model (`train.cost_refit`): a rank's compute time for a step is modelled as
// per_point · Σ points + per_frame · frames of that step. The stored cost (points in range at write
// time) misses both what every frame costs whatever its points (the dense BEV grid) and the points out
// of range that the point layers still process. Each rank observes its own steps; every few steps the
// sums of the normal equations are all-reduced and every rank solves the same 2×2 non-negative
// least-squares problem, so all ranks agree on the coefficients. Until the first refit the sampler
// predicts with the stored cost.
class CostModel {
 public:
  void observe(double points, double frames, double seconds);
  // Adds every rank's observations since the last refit (one all-reduce) and refits. Returns false (and
  // keeps the coefficients) while nothing has been observed.
  bool refit(const Comm& comm);
  double per_point = 0, per_frame = 0;
  // Everyone's sums up to the last refit (what a checkpoint keeps), and restoring them.
  std::vector<double> sums() const { return std::vector<double>(totals_, totals_ + 5); }
  void restore(const std::vector<double>& sums, double per_point_s, double per_frame_s);

 private:
  double pending_[5] = {};  // this rank's Σp², Σpf, Σf², Σpt, Σft since the last refit
  double totals_[5] = {};   // everyone's, up to the last refit
};

class FrameSampler {
 public:
  // `costs`: stored cost per frame (the dataset's /cost); `ranks`: the slots each global batch is split
  // into (ranks × micro-batches); `batch`: frames per slot; `points`: points per frame, what a cost model
  // (set_cost_model) predicts from (empty: the costs).
  FrameSampler(Balance balance, std::vector<double> costs, int ranks, int batch, uint64_t seed,
               std::vector<double> points = {});
  StepAssignment step(int64_t step) const;
  int64_t num_frames() const { return int64_t(costs_.size()); }
  int64_t global_batch() const { return int64_t(ranks_) * batch_; }
  double cost(int64_t frame) const { return costs_[size_t(frame)]; }
  // Continues a run resumed at `step` with `samples_seen` global frames consumed: step s (s >= step) then
  // covers samples [samples_seen + (s - step)·G, …), so a run resumed with another rank count neither
  // repeats nor skips a frame. (bucket: only with the global batch it had, since buckets are G frames.)
  void resume_at(int64_t step, int64_t samples_seen);
  // Every cost model set so far, (from_step, per_point, per_frame) each, for checkpoints.
  std::vector<double> cost_model_history() const;
  // Predicts frame costs as per_point · points + per_frame from step `from_step` on (lpt only: bucket
  // sorts by the stored cost). Thread-safe with step(): the loader thread may be ahead.
  void set_cost_model(int64_t from_step, double per_point, double per_frame);

 private:
  // The frames of an epoch bucket after bucket (buckets in shuffled order), and where each starts.
  struct BucketEpoch {
    std::vector<int64_t> frames;
    std::vector<int64_t> starts;  // (buckets + 1)
  };
  BucketEpoch bucket_epoch(int64_t epoch) const;
  struct CostModelFrom {
    int64_t from_step;
    double per_point, per_frame;
  };
  // The model in force at `step`; none (nullopt-like from_step -1) before the first.
  CostModelFrom cost_model_at(int64_t step) const;
  Balance balance_;
  int64_t resume_step_ = 0, resume_samples_ = 0;
  std::vector<double> costs_, points_;
  mutable std::mutex models_mutex_;
  std::vector<CostModelFrom> models_;
  int ranks_, batch_;
  uint64_t seed_;
};

// Predicted straggler figures of a strategy over `steps` steps: per step, max(rank cost)/mean(rank cost);
// and time, taken as the sum over steps of the slowest rank's cost.
struct BalanceReplay {
  double mean_imbalance = 0, max_imbalance = 0;
  double frames_per_cost = 0;  // throughput: frames / Σ_steps max_rank cost
};
BalanceReplay replay_balance(const FrameSampler& sampler, int64_t steps);

}  // namespace lt
