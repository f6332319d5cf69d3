#include "mpi/watchdog.hpp"

#include <algorithm>
#include <cstdio>

#include "src/common/clock.hpp"
#include "src/common/error.hpp"

namespace lt {

Watchdog::Watchdog(const Comm& comm, double timeout_s) : comm_(comm), timeout_s_(timeout_s) {
  if (timeout_s_ > 0) thread_ = std::thread([this] { run(); });
}

Watchdog::~Watchdog() {
  {
    const std::lock_guard<std::mutex> lock(mutex_);
    stopping_ = true;
  }
  stop_.notify_all();
  if (thread_.joinable()) thread_.join();
}

void Watchdog::enter(const std::string& phase, int64_t step) {
  if (timeout_s_ <= 0) return;
  const std::lock_guard<std::mutex> lock(mutex_);
  phase_ = phase;
  step_ = step;
  phase_start_s_ = now_s();
}

void Watchdog::idle() {
  if (timeout_s_ <= 0) return;
  const std::lock_guard<std::mutex> lock(mutex_);
  phase_start_s_ = -1;
}

void Watchdog::run() {
  // Checks a few times per timeout (at least every second): the abort comes at most that late.
  const auto period = std::chrono::duration<double>(std::min(1.0, timeout_s_ / 4));
  std::unique_lock<std::mutex> lock(mutex_);
  while (!stop_.wait_for(lock, period, [&] { return stopping_; })) {
    if (phase_start_s_ < 0 || now_s() - phase_start_s_ <= timeout_s_) continue;
    // A phase that writes a file ("writing checkpoint …/ckpt-00000012.h5") names it; a stall there is
    // more often the file system than a peer.
    const bool writing = phase_.rfind("writing ", 0) == 0;
    const std::string detail = on_timeout_ ? on_timeout_() : "";
    char message[1024];
    std::snprintf(message, sizeof message,
                  "watchdog: %s of step %lld has not finished after %.0f s (--timeout %g)%s%s; %s: aborting the job",
                  phase_.c_str(), static_cast<long long>(step_ + 1), now_s() - phase_start_s_, timeout_s_,
                  detail.empty() ? "" : ": ", detail.c_str(),
                  writing ? "the file system may be hung or very slow, or a peer rank may have died or stopped"
                          : "a peer rank may have died or stopped");
    lock.unlock();
    comm_.abort(kExitHung, message);
  }
}

}  // namespace lt
