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
#include <string>
#include <vector>

namespace lt {

enum class Balance { none, bucket, lpt };
Balance parse_balance(const std::string& name);  // InputError unless none | bucket | lpt
const char* balance_name(Balance balance);

struct StepAssignment {
  int64_t epoch = 0;
  std::vector<std::vector<int64_t>> frames_of_rank;  // (ranks) frame indices
};

class FrameSampler {
 public:
  // `costs`: predicted cost per frame (e.g. the dataset's /cost); `batch`: frames per rank per step.
  FrameSampler(Balance balance, std::vector<double> costs, int ranks, int batch, uint64_t seed);
  StepAssignment step(int64_t step) const;
  int64_t num_frames() const { return int64_t(costs_.size()); }
  int64_t global_batch() const { return int64_t(ranks_) * batch_; }
  double cost(int64_t frame) const { return costs_[size_t(frame)]; }

 private:
  // The frames of an epoch bucket after bucket (buckets in shuffled order), and where each starts.
  struct BucketEpoch {
    std::vector<int64_t> frames;
    std::vector<int64_t> starts;  // (buckets + 1)
  };
  BucketEpoch bucket_epoch(int64_t epoch) const;
  Balance balance_;
  std::vector<double> costs_;
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
