#pragma once
// The Chrome trace-event timeline (`log.timeline`, DESIGN.md §9): every rank records its phases as
// complete events ("ph":"X") on a few tracks; at the end rank 0 gathers them into one JSON file that
// opens in Perfetto or chrome://tracing, one process per rank. Times are seconds on the steady clock;
// each rank takes its origin right after a barrier, so the ranks' tracks line up.
#include <cstdint>
#include <mutex>
#include <string>
#include <vector>

namespace lt {

enum class TimelineTrack : int { compute = 0, allreduce = 1, loader = 2 };

class Timeline {
 public:
  // Disabled: add() does nothing.
  explicit Timeline(bool enabled) : enabled_(enabled) {}
  bool enabled() const { return enabled_; }
  void set_origin(double origin_s) { origin_s_ = origin_s; }
  // Thread-safe (the loader thread records too).
  void add(TimelineTrack track, const std::string& name, double begin_s, double end_s, int64_t step);
  // This rank's events as comma-separated trace-event objects, with the process and track names.
  std::string events_json(int rank) const;

 private:
  struct Event {
    TimelineTrack track;
    std::string name;
    double begin_s, end_s;
    int64_t step;
  };
  bool enabled_;
  double origin_s_ = 0;
  mutable std::mutex mutex_;
  std::vector<Event> events_;
};

// The whole trace file from every rank's events_json(), in rank order.
std::string trace_file_text(const std::vector<std::string>& events_of_rank);

}  // namespace lt
