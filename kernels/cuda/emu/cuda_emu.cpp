// The emulation's scheduler: a block's threads are fibers on the calling OS thread. Each runs until it
// reaches __syncthreads or returns; when every live thread waits at the barrier, all are released for the
// next phase. Blocks run one after another. See cuda_emu.hpp for what that can and cannot show.
//
// A switch between fibers is six callee-saved registers and the stack pointer (x86-64, System V): a
// kernel with barriers switches at every barrier of every thread, and glibc's swapcontext makes a
// system call each time (it saves the signal mask), which was most of an emulated training step. Under
// AddressSanitizer, and on other machines, the fibers are ucontext's (ASan follows swapcontext's stack
// switches; it cannot follow ours).
#include "kernels/cuda/emu/cuda_emu.hpp"

#if defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer)
#define LT_EMU_UCONTEXT_FIBERS 1
#endif
#endif
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__) || !defined(__x86_64__)
#define LT_EMU_UCONTEXT_FIBERS 1
#endif

#if defined(LT_EMU_UCONTEXT_FIBERS)
#include <ucontext.h>
#else
// lt_emu_switch(save, load): pushes the callee-saved registers, stores the stack pointer in *save, takes
// `load` as the stack pointer, pops the registers saved there and returns into what that stack called
// it from (or, for a new fiber, into fiber_start: prepare_fiber lays its stack out so).
extern "C" void lt_emu_switch(void** save, void* load);
asm(R"(
  .text
  .globl lt_emu_switch
  .hidden lt_emu_switch
  .type lt_emu_switch, @function
lt_emu_switch:
  pushq %rbp
  pushq %rbx
  pushq %r12
  pushq %r13
  pushq %r14
  pushq %r15
  movq %rsp, (%rdi)
  movq %rsi, %rsp
  popq %r15
  popq %r14
  popq %r13
  popq %r12
  popq %rbx
  popq %rbp
  ret
  .size lt_emu_switch, .-lt_emu_switch
)");
#endif

#include <cstdio>
#include <cstdlib>
#include <memory>
#include <unordered_map>
#include <vector>

namespace lt::emu {

ThreadState current;

namespace {

constexpr size_t kStackBytes = 256 * 1024;  // per emulated thread: the kernels keep small local arrays
constexpr unsigned kMaxThreadsPerBlock = 1024;

enum class FiberState { ready, at_barrier, done };

struct Fiber {
#if defined(LT_EMU_UCONTEXT_FIBERS)
  ucontext_t context;
#else
  void* sp = nullptr;  // where lt_emu_switch left it
#endif
  std::unique_ptr<char[]> stack;
  FiberState state = FiberState::ready;
  uint3 thread_idx{0, 0, 0};
};

struct Scheduler {
#if defined(LT_EMU_UCONTEXT_FIBERS)
  ucontext_t home;
#else
  void* home_sp = nullptr;
#endif
  std::vector<Fiber> fibers;
  Fiber* running = nullptr;
  const std::function<void()>* body = nullptr;
  Order order = Order::forward;
  int64_t launches = 0;
  bool direct = false;                                  // the running launch calls threads without fibers
  bool reached_barrier = false;                         // the running launch's threads reached __syncthreads
  std::unordered_map<const void*, bool> uses_barriers;  // per kernel, learnt at its first launch
};
Scheduler scheduler;

[[noreturn]] void fail(const char* what) {
  std::fprintf(stderr, "lidartrain CUDA emulation: %s (block %u,%u,%u)\n", what, current.block_idx.x,
               current.block_idx.y, current.block_idx.z);
  std::abort();
}

// From the scheduler into fiber f, until it reaches a barrier or ends; and from the running fiber back.
void enter(Fiber& f) {
#if defined(LT_EMU_UCONTEXT_FIBERS)
  swapcontext(&scheduler.home, &f.context);
#else
  lt_emu_switch(&scheduler.home_sp, f.sp);
#endif
}
void leave(Fiber& f) {
#if defined(LT_EMU_UCONTEXT_FIBERS)
  swapcontext(&f.context, &scheduler.home);
#else
  lt_emu_switch(&f.sp, scheduler.home_sp);
#endif
}

// A fiber's life: the kernel body once, then back to the scheduler, never to be entered again.
void fiber_start() {
  (*scheduler.body)();
  scheduler.running->state = FiberState::done;
  leave(*scheduler.running);
  fail("a finished fiber was entered");
}

#if defined(LT_EMU_UCONTEXT_FIBERS)
// Out of line: getcontext returns twice, and locals of the function that calls it must not be live.
[[gnu::noinline]] void prepare_fiber(Fiber& f) {
  f.state = FiberState::ready;
  if (getcontext(&f.context) != 0) fail("getcontext failed");
  f.context.uc_stack.ss_sp = f.stack.get();
  f.context.uc_stack.ss_size = kStackBytes;
  f.context.uc_link = nullptr;
  makecontext(&f.context, fiber_start, 0);
}
#else
// The new stack as lt_emu_switch leaves one: six saved registers (zero), then fiber_start as the return
// address, then a dummy return address of fiber_start's own, so that it starts with the stack aligned as
// after a call (16-byte boundary + 8).
void prepare_fiber(Fiber& f) {
  f.state = FiberState::ready;
  auto top = (reinterpret_cast<uintptr_t>(f.stack.get()) + kStackBytes) & ~uintptr_t(15);
  auto* words = reinterpret_cast<void**>(top);
  words[-1] = nullptr;
  words[-2] = reinterpret_cast<void*>(&fiber_start);
  for (int r = 3; r <= 8; ++r) words[-r] = nullptr;
  f.sp = words - 8;
}
#endif

void run_block(unsigned threads) {
  Scheduler& s = scheduler;
  for (unsigned t = 0; t < threads; ++t) prepare_fiber(s.fibers[t]);
  for (;;) {
    unsigned waiting = 0, done = 0;
    for (unsigned k = 0; k < threads; ++k) {
      Fiber& f = s.fibers[s.order == Order::forward ? k : threads - 1 - k];
      if (f.state == FiberState::done) continue;
      f.state = FiberState::ready;
      s.running = &f;
      current.thread_idx = f.thread_idx;
      enter(f);
    }
    for (unsigned t = 0; t < threads; ++t) {
      waiting += s.fibers[t].state == FiberState::at_barrier;
      done += s.fibers[t].state == FiberState::done;
    }
    if (done == threads) return;
    if (waiting + done == threads && done > 0) fail("__syncthreads reached by only some threads of a block");
  }
}

}  // namespace

void set_thread_order(Order order) {
  scheduler.order = order;
}
Order thread_order() {
  return scheduler.order;
}
int64_t launch_count() {
  return scheduler.launches;
}

void syncthreads() {
  if (scheduler.direct) fail("a kernel whose first launch reached no __syncthreads reached one later");
  Fiber* f = scheduler.running;
  if (!f) fail("__syncthreads outside a kernel");
  scheduler.reached_barrier = true;
  f->state = FiberState::at_barrier;
  leave(*f);
}

void run_grid(dim3 grid, dim3 block, const void* kernel, const std::function<void()>& body) {
  Scheduler& s = scheduler;
  const unsigned threads = block.x * block.y * block.z;
  if (threads == 0 || threads > kMaxThreadsPerBlock) fail("invalid block size");
  if (grid.x == 0 || grid.y == 0 || grid.z == 0 || grid.y > 65535 || grid.z > 65535) fail("invalid grid size");
  if (s.running || s.direct) fail("kernel launched from a kernel");
  ++s.launches;
  current.block_dim = block;
  current.grid_dim = grid;
  const uint64_t blocks = uint64_t(grid.x) * grid.y * grid.z;
  const auto set_block = [&](uint64_t k) {
    const uint64_t b = s.order == Order::forward ? k : blocks - 1 - k;
    current.block_idx = {unsigned(b % grid.x), unsigned((b / grid.x) % grid.y),
                         unsigned(b / (uint64_t(grid.x) * grid.y))};
  };
  // A kernel without __syncthreads: its threads are plain calls, in order, blocks from `first` on.
  const auto run_direct = [&](uint64_t first) {
    s.direct = true;
    for (uint64_t k = first; k < blocks; ++k) {
      set_block(k);
      for (unsigned i = 0; i < threads; ++i) {
        const unsigned t = s.order == Order::forward ? i : threads - 1 - i;
        current.thread_idx = {t % block.x, (t / block.x) % block.y, t / (block.x * block.y)};
        body();
      }
    }
    s.direct = false;
  };
  const auto known = s.uses_barriers.find(kernel);
  if (known != s.uses_barriers.end() && !known->second) return run_direct(0);
  s.reached_barrier = false;
  while (s.fibers.size() < threads) {
    s.fibers.emplace_back();
    s.fibers.back().stack.reset(new char[kStackBytes]);
  }
  for (unsigned t = 0; t < threads; ++t)
    s.fibers[t].thread_idx = {t % block.x, (t / block.x) % block.y, t / (block.x * block.y)};
  s.body = &body;
  for (uint64_t k = 0; k < blocks; ++k) {
    set_block(k);
    run_block(threads);
    // Learnt from the first block of its first launch: a kernel whose block reached no barrier runs the
    // rest directly (a later barrier is then reported, never skipped: syncthreads fails in direct mode).
    if (k == 0 && known == s.uses_barriers.end() && !s.reached_barrier) {
      s.running = nullptr;
      s.body = nullptr;
      s.uses_barriers[kernel] = false;
      return run_direct(1);
    }
  }
  s.running = nullptr;
  s.body = nullptr;
  s.uses_barriers[kernel] = s.reached_barrier;
}

}  // namespace lt::emu
