#pragma once
// A prefetching loader (DESIGN.md §7): a background thread makes the frames of the next steps —
// reading (HDF5 calls serialised by h5::library_mutex), augmenting — while the current step computes.
// Steps are handed out in order; an InputError raised while making a step is rethrown by next() for
// that step, on the consumer's thread, so errors keep naming the file and frame.
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <exception>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

#include "io/dataset.hpp"

namespace lt {

class PrefetchLoader {
 public:
  using MakeStep = std::function<std::vector<Frame>(int64_t step)>;
  // Makes steps [first_step, end_step) with `make_step`, keeping at most `depth` ready ahead.
  PrefetchLoader(MakeStep make_step, int64_t first_step, int64_t end_step, int depth = 2);
  ~PrefetchLoader();
  PrefetchLoader(const PrefetchLoader&) = delete;
  PrefetchLoader& operator=(const PrefetchLoader&) = delete;

  // The frames of the next step (blocks until they are ready).
  std::vector<Frame> next();

 private:
  struct Ready {
    std::vector<Frame> frames;
    std::exception_ptr error;
  };
  void run();

  MakeStep make_step_;
  int64_t first_step_, end_step_;
  int64_t consumed_ = 0;  // consumer side only
  size_t depth_;
  std::mutex mutex_;
  std::condition_variable changed_;
  std::deque<Ready> ready_;
  bool stopping_ = false;
  std::thread thread_;
};

}  // namespace lt
