#pragma once
// What a training run reports of its steps (DESIGN.md §9): the phase times that metrics.jsonl shows over
// ranks, the Prometheus text file, and metrics.jsonl cut back for a resumed run.
#include <cstdint>
#include <string>
#include <vector>

#include "mpi/comm.hpp"
#include "src/common/json.hpp"

namespace lt {

// Phase times of one step on this rank; metrics.jsonl shows each as min/mean/max over ranks.
struct StepTimes {
  double data_wait_s = 0, sync_s = 0, forward_s = 0, backward_s = 0, allreduce_wait_s = 0, optimizer_s = 0,
         allreduce_span_s = 0, step_s = 0;
  enum Index {
    kDataWait,
    kSync,
    kForward,
    kBackward,
    kAllreduceWait,
    kOptimizer,
    kAllreduce,
    kStep,
    kCompute,
    kLoss,
    kStop
  };
  static constexpr const char* kNames[] = {"data_wait_s", "sync_s",      "forward_s", "backward_s", "allreduce_wait_s",
                                           "optimizer_s", "allreduce_s", "step_s",    "compute_s"};
  // The phases, then compute (forward + backward), then this rank's Σ loss·weight (summed, not timed),
  // then 1 when this rank wants to stop (a signal, or the time budget), else 0.
  std::vector<double> as_vector(double compute_s, double loss_share, bool stop) const {
    return {data_wait_s,      sync_s, forward_s, backward_s, allreduce_wait_s, optimizer_s,
            allreduce_span_s, step_s, compute_s, loss_share, stop ? 1.0 : 0.0};
  }
  static void write_spread(JsonWriter& line, const Comm::Spread& spread) {
    for (int i = 0; i <= kCompute; ++i)
      line.key(kNames[i])
          .begin_object()
          .key("min")
          .value(spread.min[size_t(i)])
          .key("mean")
          .value(spread.mean[size_t(i)])
          .key("max")
          .value(spread.max[size_t(i)])
          .end_object();
  }
};


// Prometheus text exposition (node_exporter's textfile collector reads it).
std::string prometheus_text(int64_t step, int64_t steps, double loss, double lr, double samples_per_s, double imbalance,
                            const Comm::Spread& spread, double elapsed_s);

// Keeps the lines of metrics.jsonl up to step `step` (a resumed run writes the steps after it again).
void trim_metrics(const std::string& path, int64_t step);

// "3m05s", "1h02m": the progress line's elapsed time and ETA.
std::string duration_text(double seconds);

}  // namespace lt
