#pragma once
// One clock for every timing that is compared across files: phase times, the gradient buckets' posted
// and done times, the watchdog and the timeline all read it (seconds on the steady clock).
#include <chrono>

namespace lt {

inline double now_s() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

// Seconds since the Unix epoch (the system clock): for timestamps others read (TensorBoard's wall_time).
inline double wall_clock_s() {
  return std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
}

}  // namespace lt
