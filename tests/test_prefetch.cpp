// The prefetching loader (io/prefetch.hpp).
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <thread>

#include "io/dataset.hpp"
#include "io/prefetch.hpp"
#include "src/common/error.hpp"

namespace lt {
namespace {

std::vector<Frame> frames_of_step(int64_t step) {
  Frame frame;
  frame.id = "step-" + std::to_string(step);
  frame.points = {float(step), 0, 0, 0.5f};
  return {frame};
}

TEST(PrefetchLoader, HandsOutEveryStepInOrder) {
  PrefetchLoader loader(frames_of_step, 3, 10);
  for (int64_t step = 3; step < 10; ++step) EXPECT_EQ(loader.next().at(0).id, "step-" + std::to_string(step));
  EXPECT_THROW(loader.next(), std::logic_error);
}

TEST(PrefetchLoader, WorksAheadWhileTheConsumerComputes) {
  std::atomic<int> made{0};
  PrefetchLoader loader(
      [&](int64_t step) {
        ++made;
        return frames_of_step(step);
      },
      0, 10, 2);
  loader.next();
  std::this_thread::sleep_for(std::chrono::milliseconds(100));  // "compute" step 0
  EXPECT_EQ(made.load(), 3);  // step 0 taken, steps 1 and 2 ready: no further than `depth` ahead
}

TEST(PrefetchLoader, AnInputErrorReachesTheConsumerAtItsStep) {
  PrefetchLoader loader(
      [](int64_t step) {
        if (step == 2) throw InputError("shard-00000.h5: frame 000002: /points: read failed");
        return frames_of_step(step);
      },
      0, 5);
  loader.next();
  loader.next();
  try {
    loader.next();
    FAIL() << "expected the step's error";
  } catch (const InputError& e) {
    EXPECT_STREQ(e.what(), "shard-00000.h5: frame 000002: /points: read failed");
  }
}

TEST(PrefetchLoader, StopsCleanlyWhenDestroyedEarly) {
  PrefetchLoader loader(frames_of_step, 0, 1000000);
  loader.next();
}  // the destructor must not wait for the remaining steps

}  // namespace
}  // namespace lt
