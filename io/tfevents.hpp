#pragma once
// TensorBoard's event files, written and read by our own code (there is no Debian C++ library for them).
// The format TensorBoard reads: TFRecord framing around `Event` protobufs —
//   uint64 length (little-endian) | uint32 masked CRC-32C of those 8 bytes | `length` bytes |
//   uint32 masked CRC-32C of the bytes,
// with masked(crc) = ((crc >> 15) | (crc << 17)) + 0xa282ead8 (CRC-32C: Castagnoli, reflected). The
// first event holds file_version "brain.Event:2"; a scalar is an Event{wall_time, step,
// summary{value{tag, simple_value}}} (tensorflow/core/util/event.proto, framework/summary.proto: the fields
// used here are Event.wall_time = 1 (double), step = 2 (int64), file_version = 3 (string), summary = 5;
// Summary.value = 1; Summary.Value.tag = 1 (string), simple_value = 2 (float)).
#include <cstddef>
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "io/atomic_file.hpp"

namespace lt {

// CRC-32C of `size` bytes, continuing from `crc` (0 for a new one), and its masked form.
uint32_t crc32c(const void* data, size_t size, uint32_t crc = 0);
uint32_t masked_crc32c(const void* data, size_t size);

// One Event of the fields above (others are skipped when read).
struct TfEvent {
  double wall_time = 0;
  int64_t step = 0;
  std::string file_version;                            // the first event's
  std::vector<std::pair<std::string, float>> scalars;  // summary values: tag, simple_value
};
std::string encode_event(const TfEvent& event);
// The record framing around `bytes`.
std::string frame_record(const std::string& bytes);

// The events of a file, read by the format's rules: every length is checked against what is left and every
// CRC verified. strict: a bad or cut-off record is an InputError naming the file and its offset; otherwise
// the events before it are returned (the tail a crash cut off is dropped, as trim_metrics drops a partial
// line). `end_offset` (when given) is where the good records end.
std::vector<TfEvent> read_tfevents(const std::string& path, bool strict, size_t* end_offset = nullptr);

// Rank 0's event file in a run directory (`events.out.tfevents.<seconds>.<host>.lidartrain`). A new run
// starts a new file; a resumed run takes the newest such file of the directory, keeps its events up to
// the step it resumes from (rewritten atomically when there is more) and appends, so the curves go on
// without repeated steps. Event files of other runs or programs in the directory are never touched.
class TfEventsWriter {
 public:
  // resume_step < 0: a new run. WriteError when the file cannot be written.
  void open(const std::string& dir, int64_t resume_step, double wall_time);
  // Scalars at `step`, one event each value; WriteError when they cannot be appended.
  void scalars(int64_t step, double wall_time, const std::vector<std::pair<std::string, double>>& values);
  const std::string& path() const { return path_; }

 private:
  AppendFile file_;
  std::string path_;
};

}  // namespace lt
