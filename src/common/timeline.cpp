#include "src/common/timeline.hpp"

#include <cstdio>

#include "src/common/json.hpp"

namespace lt {

void Timeline::add(TimelineTrack track, const std::string& name, double begin_s, double end_s, int64_t step) {
  if (!enabled_) return;
  const std::lock_guard<std::mutex> lock(mutex_);
  events_.push_back(Event{track, name, begin_s, end_s, step});
}

std::string Timeline::events_json(int rank) const {
  const std::lock_guard<std::mutex> lock(mutex_);
  std::string out;
  char line[512];
  std::snprintf(line, sizeof line, R"({"name":"process_name","ph":"M","pid":%d,"args":{"name":"rank %d"}})", rank,
                rank);
  out += line;
  for (const char* track : {"compute", "allreduce", "loader"}) {
    const int tid = track[0] == 'c' ? 0 : track[0] == 'a' ? 1 : 2;
    std::snprintf(line, sizeof line, R"(,{"name":"thread_name","ph":"M","pid":%d,"tid":%d,"args":{"name":"%s"}})", rank,
                  tid, track);
    out += line;
  }
  for (const Event& e : events_) {
    // Microseconds, as the trace-event format wants.
    std::snprintf(line, sizeof line,
                  R"(,{"name":"%s","cat":"%s","ph":"X","pid":%d,"tid":%d,"ts":%.1f,"dur":%.1f,"args":{"step":%lld}})",
                  json_escape(e.name).c_str(), e.track == TimelineTrack::allreduce ? "comm" : "compute", rank,
                  int(e.track), (e.begin_s - origin_s_) * 1e6, (e.end_s - e.begin_s) * 1e6,
                  static_cast<long long>(e.step));
    out += line;
  }
  return out;
}

std::string trace_file_text(const std::vector<std::string>& events_of_rank) {
  std::string out = "{\"displayTimeUnit\":\"ms\",\"traceEvents\":[\n";
  for (size_t r = 0; r < events_of_rank.size(); ++r) {
    if (r > 0) out += ",\n";
    out += events_of_rank[r];
  }
  out += "\n]}\n";
  return out;
}

}  // namespace lt
