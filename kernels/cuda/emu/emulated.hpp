#pragma once
// What tests and benchmarks see of the emulated CUDA build (no CUDA macros: safe to include anywhere):
// its op table and the scheduler's controls.
#include <cstdint>

#include "kernels/backend.hpp"

namespace lt::cuda_emu {
// kernels/cuda/*.cu built as host C++ and run through the emulation layer.
const Backend& backend();
// Emulated GPU `index` is the rank's (cuda_select_device's twin): current on this thread, and selected by
// the loader thread before its CUDA calls.
void select_device(int index);
}  // namespace lt::cuda_emu

namespace lt::emu {
enum class Order { forward, reverse };
// The order in which the blocks of a grid, and the threads of a block, run (forward by default).
void set_thread_order(Order order);
Order thread_order();
// Kernel launches so far (tests check that a path really ran its kernels).
int64_t launch_count();
// When the work queued on streams runs (kernels/cuda/emu/runtime.cpp): lazy (default) as late as the
// streams and events allow, so that a missing dependency reads stale data; eager at once, when queued.
enum class StreamSchedule { lazy, eager };
void set_stream_schedule(StreamSchedule schedule);
// Pieces of work queued on streams and not run yet.
int64_t queued_work();
}  // namespace lt::emu
