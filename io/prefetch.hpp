#pragma once
// A prefetching loader (DESIGN.md §7): a background thread makes what the next steps need — reading
// frames (HDF5 calls serialised by h5::library_mutex), augmenting, batching and indexing them into BEV
// cells — while the current step computes. Steps are handed out in order; an InputError raised while
// making a step is rethrown by next() for that step, on the consumer's thread, so errors keep naming
// the file and frame.
#include <algorithm>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <exception>
#include <functional>
#include <mutex>
#include <stdexcept>
#include <thread>
#include <type_traits>

namespace lt {

template <class Step>
class PrefetchLoader {
 public:
  using MakeStep = std::function<Step(int64_t step)>;
  // Makes steps [first_step, end_step) with `make_step`, keeping at most `depth` ready ahead.
  PrefetchLoader(MakeStep make_step, int64_t first_step, int64_t end_step, int depth = 2)
      : make_step_(std::move(make_step)),
        first_step_(first_step),
        end_step_(end_step),
        depth_(size_t(std::max(1, depth))) {
    thread_ = std::thread([this] { run(); });
  }
  ~PrefetchLoader() {
    {
      const std::lock_guard<std::mutex> lock(mutex_);
      stopping_ = true;
    }
    changed_.notify_all();
    thread_.join();
  }
  PrefetchLoader(const PrefetchLoader&) = delete;
  PrefetchLoader& operator=(const PrefetchLoader&) = delete;

  // The next step if it is ready (and not a failure), else null, without waiting: the consumer may work on
  // it in place (next() hands it over later). Consumer thread only; the pointer holds until next().
  Step* peek_ready() {
    const std::lock_guard<std::mutex> lock(mutex_);
    if (ready_.empty() || ready_.front().error) return nullptr;
    return &ready_.front().step;  // deque: the loader's push_back leaves it where it is
  }

  // The next step (blocks until it is ready).
  Step next() {
    if (consumed_++ >= end_step_ - first_step_) throw std::logic_error("PrefetchLoader::next past the last step");
    std::unique_lock<std::mutex> lock(mutex_);
    changed_.wait(lock, [&] { return !ready_.empty(); });
    Ready item = std::move(ready_.front());
    ready_.pop_front();
    lock.unlock();
    changed_.notify_all();
    if (item.error) std::rethrow_exception(item.error);
    return std::move(item.step);
  }

 private:
  struct Ready {
    Step step{};
    std::exception_ptr error;
  };

  void run() {
    for (int64_t step = first_step_; step < end_step_; ++step) {
      {
        std::unique_lock<std::mutex> lock(mutex_);
        changed_.wait(lock, [&] { return stopping_ || ready_.size() < depth_; });
        if (stopping_) return;
      }
      Ready item;
      try {
        item.step = make_step_(step);
      } catch (...) {
        item.error = std::current_exception();
      }
      const bool failed = bool(item.error);
      {
        const std::lock_guard<std::mutex> lock(mutex_);
        ready_.push_back(std::move(item));
      }
      changed_.notify_all();
      if (failed) return;  // nothing after a failed step is needed
    }
  }

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

template <class F>
PrefetchLoader(F, int64_t, int64_t, int = 2) -> PrefetchLoader<std::invoke_result_t<F, int64_t>>;

}  // namespace lt
