#pragma once
// A watchdog for hangs (DESIGN.md §7, `train --timeout`): the training loop names each phase it enters
// (data, forward, a collective, ...); a background thread aborts the whole job, with a message naming
// the phase, the step and this rank, when one phase lasts longer than the timeout. A rank stuck in a
// collective because a peer died or stopped is the case it is for: the job ends instead of burning its
// allocation.
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <mutex>
#include <string>
#include <thread>

#include "mpi/comm.hpp"

namespace lt {

class Watchdog {
 public:
  // timeout_s <= 0: off (no thread).
  Watchdog(const Comm& comm, double timeout_s);
  ~Watchdog();
  Watchdog(const Watchdog&) = delete;
  Watchdog& operator=(const Watchdog&) = delete;

  // Starts timing `phase` of `step` (replacing the phase before it). `step` counts from 0; the message
  // names it from 1, as the progress lines, checkpoint names and other errors do.
  void enter(const std::string& phase, int64_t step);
  // No phase is being timed (e.g. between runs of work with no deadline).
  void idle();
  // Called on the watchdog's thread when a phase times out, before the job is aborted: says more about
  // what is stuck (appended to the message) and unblocks what it can (ncclCommAbort). Set before the
  // first phase.
  void on_timeout(std::function<std::string()> describe_and_abort) { on_timeout_ = std::move(describe_and_abort); }

 private:
  void run();
  Comm comm_;
  double timeout_s_;
  std::mutex mutex_;
  std::condition_variable stop_;
  bool stopping_ = false;
  std::string phase_;
  int64_t step_ = 0;
  double phase_start_s_ = -1;
  std::function<std::string()> on_timeout_;
  std::thread thread_;
};

}  // namespace lt
