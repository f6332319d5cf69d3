#include "io/prefetch.hpp"

#include <algorithm>
#include <stdexcept>

namespace lt {

PrefetchLoader::PrefetchLoader(MakeStep make_step, int64_t first_step, int64_t end_step, int depth)
    : make_step_(std::move(make_step)),
      first_step_(first_step),
      end_step_(end_step),
      depth_(size_t(std::max(1, depth))) {
  thread_ = std::thread([this] { run(); });
}

PrefetchLoader::~PrefetchLoader() {
  {
    const std::lock_guard<std::mutex> lock(mutex_);
    stopping_ = true;
  }
  changed_.notify_all();
  thread_.join();
}

void PrefetchLoader::run() {
  for (int64_t step = first_step_; step < end_step_; ++step) {
    {
      std::unique_lock<std::mutex> lock(mutex_);
      changed_.wait(lock, [&] { return stopping_ || ready_.size() < depth_; });
      if (stopping_) return;
    }
    Ready item;
    try {
      item.frames = make_step_(step);
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

std::vector<Frame> PrefetchLoader::next() {
  if (consumed_++ >= end_step_ - first_step_) throw std::logic_error("PrefetchLoader::next past the last step");
  std::unique_lock<std::mutex> lock(mutex_);
  changed_.wait(lock, [&] { return !ready_.empty(); });
  Ready item = std::move(ready_.front());
  ready_.pop_front();
  lock.unlock();
  changed_.notify_all();
  if (item.error) std::rethrow_exception(item.error);
  return std::move(item.frames);
}

}  // namespace lt
