#include "mpi/balance.hpp"

#include <algorithm>
#include <numeric>

#include "src/common/error.hpp"
#include "src/common/rng.hpp"

namespace lt {

namespace {
constexpr uint64_t kOrderStream = 0x0D3D3E;  // the RNG stream of the epoch order
}  // namespace

std::vector<int64_t> epoch_permutation(uint64_t seed, int64_t epoch, int64_t num_frames) {
  std::vector<int64_t> order(static_cast<size_t>(num_frames));
  for (int64_t i = 0; i < num_frames; ++i) order[size_t(i)] = i;
  Rng rng(stream_key(seed, uint64_t(epoch), kOrderStream));
  for (int64_t i = num_frames - 1; i > 0; --i) std::swap(order[size_t(i)], order[size_t(rng.below(uint64_t(i + 1)))]);
  return order;
}

Balance parse_balance(const std::string& name) {
  if (name == "none") return Balance::none;
  if (name == "bucket") return Balance::bucket;
  if (name == "lpt") return Balance::lpt;
  throw InputError("--train.balance: '" + name + "' is not one of lpt, bucket, none");
}

const char* balance_name(Balance balance) {
  switch (balance) {
    case Balance::none:
      return "none";
    case Balance::bucket:
      return "bucket";
    case Balance::lpt:
      return "lpt";
  }
  return "?";
}

FrameSampler::FrameSampler(Balance balance, std::vector<double> costs, int ranks, int batch, uint64_t seed,
                           std::vector<double> points)
    : balance_(balance),
      costs_(std::move(costs)),
      points_(points.empty() ? costs_ : std::move(points)),
      ranks_(ranks),
      batch_(batch),
      seed_(seed) {
  require(!costs_.empty(), "no frames to sample from");
  require(points_.size() == costs_.size(), "points per frame and costs differ in length");
  require(ranks > 0 && batch > 0, "ranks and batch must be positive");
}

FrameSampler::BucketEpoch FrameSampler::bucket_epoch(int64_t epoch) const {
  constexpr uint64_t kBucketStream = 0xB0C4E7;
  // Shuffled first, so frames of equal cost come in a different order each epoch; then a stable sort
  // by cost; then buckets of G consecutive frames (the last one smaller), taken in a shuffled order.
  std::vector<int64_t> sorted = epoch_permutation(seed_, epoch, num_frames());
  std::stable_sort(sorted.begin(), sorted.end(), [&](int64_t a, int64_t b) { return cost(a) < cost(b); });
  const int64_t g = global_batch(), buckets = (num_frames() + g - 1) / g;
  std::vector<int64_t> bucket_order(static_cast<size_t>(buckets));
  std::iota(bucket_order.begin(), bucket_order.end(), 0);
  Rng rng(stream_key(seed_, uint64_t(epoch), kBucketStream));
  for (int64_t i = buckets - 1; i > 0; --i) std::swap(bucket_order[i], bucket_order[rng.below(uint64_t(i + 1))]);
  BucketEpoch result;
  result.starts.push_back(0);
  for (int64_t bucket : bucket_order) {
    const int64_t end = std::min(num_frames(), (bucket + 1) * g);
    result.frames.insert(result.frames.end(), sorted.begin() + bucket * g, sorted.begin() + end);
    result.starts.push_back(int64_t(result.frames.size()));
  }
  return result;
}

StepAssignment FrameSampler::step(int64_t step) const {
  const int64_t g = global_batch(), f = num_frames();
  StepAssignment a;
  a.frames_of_rank.assign(size_t(ranks_), {});
  if (balance_ == Balance::bucket) {
    // An epoch is ceil(F / G) steps, one bucket each; the bucket is in cost order, so a strided split
    // (rank r takes its r-th, (r+R)-th, ... frame) gives every rank nearly the same cost.
    const int64_t steps_per_epoch = (f + g - 1) / g;
    a.epoch = step / steps_per_epoch;
    const BucketEpoch epoch = bucket_epoch(a.epoch);
    const int64_t k = step % steps_per_epoch;
    for (int64_t i = epoch.starts[size_t(k)]; i < epoch.starts[size_t(k) + 1]; ++i)
      a.frames_of_rank[size_t((i - epoch.starts[size_t(k)]) % ranks_)].push_back(epoch.frames[size_t(i)]);
    return a;
  }
  // none and lpt: the global batch is samples [first, first + G) of the epoch orders.
  const int64_t first = resume_samples_ + (step - resume_step_) * g;
  std::vector<int64_t> batch;
  int64_t cached_epoch = -1;
  std::vector<int64_t> order;
  for (int64_t sample = first; sample < first + g; ++sample) {
    const int64_t epoch = sample / f;
    if (epoch != cached_epoch) order = epoch_permutation(seed_, epoch, f), cached_epoch = epoch;
    batch.push_back(order[size_t(sample % f)]);
  }
  a.epoch = first / f;
  if (balance_ == Balance::none) {
    for (int r = 0; r < ranks_; ++r)
      a.frames_of_rank[size_t(r)].assign(batch.begin() + int64_t(r) * batch_, batch.begin() + int64_t(r + 1) * batch_);
    return a;
  }
  const CostModelFrom model = cost_model_at(step);
  const auto cost = [&](int64_t frame) {
    return model.from_step < 0 ? costs_[size_t(frame)] : model.per_point * points_[size_t(frame)] + model.per_frame;
  };
  // LPT: costliest first, each to the least-loaded rank (ties: lower rank; equal costs: batch order),
  // then local search between the most and the least loaded rank (the best move or swap while it
  // lowers the larger of the two), and never worse than the contiguous split.
  std::vector<size_t> by_cost(batch.size());
  std::iota(by_cost.begin(), by_cost.end(), 0);
  std::stable_sort(by_cost.begin(), by_cost.end(), [&](size_t x, size_t y) { return cost(batch[x]) > cost(batch[y]); });
  std::vector<double> load(size_t(ranks_), 0.0);
  auto& assigned = a.frames_of_rank;
  for (size_t i : by_cost) {
    const size_t r = size_t(std::min_element(load.begin(), load.end()) - load.begin());
    load[r] += cost(batch[i]);
    assigned[r].push_back(batch[i]);
  }
  for (int iteration = 0; iteration < 4 * int(batch.size()); ++iteration) {
    const size_t hi = size_t(std::max_element(load.begin(), load.end()) - load.begin());
    const size_t lo = size_t(std::min_element(load.begin(), load.end()) - load.begin());
    double best = load[hi];
    int64_t move = -1, swap_with = -1;  // index in assigned[hi], index in assigned[lo] (-1: a move)
    for (size_t x = 0; x < assigned[hi].size(); ++x) {
      const double cx = cost(assigned[hi][x]);
      if (std::max(load[hi] - cx, load[lo] + cx) < best)
        best = std::max(load[hi] - cx, load[lo] + cx), move = int64_t(x), swap_with = -1;
      for (size_t y = 0; y < assigned[lo].size(); ++y) {
        const double cy = cost(assigned[lo][y]);
        const double worse = std::max(load[hi] - cx + cy, load[lo] - cy + cx);
        if (worse < best) best = worse, move = int64_t(x), swap_with = int64_t(y);
      }
    }
    if (move < 0) break;
    const int64_t frame = assigned[hi][size_t(move)];
    assigned[hi].erase(assigned[hi].begin() + move);
    load[hi] -= cost(frame);
    if (swap_with >= 0) {
      const int64_t other = assigned[lo][size_t(swap_with)];
      assigned[lo].erase(assigned[lo].begin() + swap_with);
      load[lo] -= cost(other);
      assigned[hi].push_back(other);
      load[hi] += cost(other);
    }
    assigned[lo].push_back(frame);
    load[lo] += cost(frame);
  }
  double contiguous_max = 0;
  for (int r = 0; r < ranks_; ++r) {
    double c = 0;
    for (int64_t i = int64_t(r) * batch_; i < int64_t(r + 1) * batch_; ++i) c += cost(batch[size_t(i)]);
    contiguous_max = std::max(contiguous_max, c);
  }
  if (contiguous_max < *std::max_element(load.begin(), load.end()))
    for (int r = 0; r < ranks_; ++r)
      assigned[size_t(r)].assign(batch.begin() + int64_t(r) * batch_, batch.begin() + int64_t(r + 1) * batch_);
  return a;
}

void FrameSampler::resume_at(int64_t step, int64_t samples_seen) {
  require(balance_ != Balance::bucket || samples_seen == step * global_batch(),
          "train.balance bucket: cannot resume at " + std::to_string(samples_seen) +
              " frames with another global batch (" + std::to_string(global_batch()) +
              " frames now): resume with the rank count and batch size of the checkpoint, or use lpt or none");
  resume_step_ = step;
  resume_samples_ = samples_seen;
}

std::vector<double> FrameSampler::cost_model_history() const {
  const std::lock_guard<std::mutex> lock(models_mutex_);
  std::vector<double> history;
  for (const CostModelFrom& model : models_)
    history.insert(history.end(), {double(model.from_step), model.per_point, model.per_frame});
  return history;
}

void CostModel::restore(const std::vector<double>& sums, double per_point_s, double per_frame_s) {
  for (int i = 0; i < 5; ++i) totals_[i] = sums[size_t(i)], pending_[i] = 0;
  per_point = per_point_s, per_frame = per_frame_s;
}

void FrameSampler::set_cost_model(int64_t from_step, double per_point, double per_frame) {
  const std::lock_guard<std::mutex> lock(models_mutex_);
  models_.push_back(CostModelFrom{from_step, per_point, per_frame});
}

FrameSampler::CostModelFrom FrameSampler::cost_model_at(int64_t step) const {
  const std::lock_guard<std::mutex> lock(models_mutex_);
  CostModelFrom found{-1, 0, 0};
  for (const CostModelFrom& model : models_)
    if (model.from_step <= step) found = model;
  return found;
}

void CostModel::observe(double points, double frames, double seconds) {
  if (frames == 0) return;  // an idle rank says nothing about cost
  const double p = points, f = frames, t = seconds;
  const double terms[5] = {p * p, p * f, f * f, p * t, f * t};
  for (int i = 0; i < 5; ++i) pending_[i] += terms[i];
}

bool CostModel::refit(const Comm& comm) {
  comm.sum_in_place(pending_, 5);
  for (int i = 0; i < 5; ++i) totals_[i] += pending_[i], pending_[i] = 0;
  const double spp = totals_[0], spf = totals_[1], sff = totals_[2], spt = totals_[3], sft = totals_[4];
  if (!(sff > 0)) return false;
  // Least squares of t ≈ a·p + b·f with a, b ≥ 0: the unconstrained solution when it is feasible, else
  // the better of the two one-coefficient fits (the minimum then lies on an edge).
  const double det = spp * sff - spf * spf;
  const double a = det > 1e-12 * spp * sff ? (spt * sff - sft * spf) / det : -1;
  const double b = det > 1e-12 * spp * sff ? (spp * sft - spf * spt) / det : -1;
  if (a >= 0 && b >= 0) {
    per_point = a, per_frame = b;
  } else {
    // Residual reduction of each edge fit: (Σpt)²/Σp² with b = 0, (Σft)²/Σf² with a = 0.
    const double gain_points = spp > 0 ? spt * spt / spp : 0, gain_frames = sft * sft / sff;
    if (gain_points >= gain_frames && spt > 0)
      per_point = spt / spp, per_frame = 0;
    else
      per_point = 0, per_frame = std::max(0.0, sft / sff);
  }
  return true;
}

BalanceReplay replay_balance(const FrameSampler& sampler, int64_t steps) {
  BalanceReplay replay;
  double total_max = 0, imbalance_sum = 0;
  int64_t frames = 0;
  for (int64_t s = 0; s < steps; ++s) {
    const StepAssignment a = sampler.step(s);
    double max_cost = 0, sum = 0;
    for (const auto& rank_frames : a.frames_of_rank) {
      double cost = 0;
      for (int64_t frame : rank_frames) cost += sampler.cost(frame);
      max_cost = std::max(max_cost, cost);
      sum += cost;
      frames += int64_t(rank_frames.size());
    }
    const double mean = sum / double(a.frames_of_rank.size());
    const double imbalance = mean > 0 ? max_cost / mean : 1.0;
    imbalance_sum += imbalance;
    replay.max_imbalance = std::max(replay.max_imbalance, imbalance);
    total_max += max_cost;
  }
  replay.mean_imbalance = steps > 0 ? imbalance_sum / double(steps) : 1.0;
  replay.frames_per_cost = total_max > 0 ? double(frames) / total_max : 0.0;
  return replay;
}

}  // namespace lt
