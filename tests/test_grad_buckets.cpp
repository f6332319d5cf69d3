// Gradient buckets (mpi/grad_buckets.hpp) over a recording backend: how the flat buffer is cut, when
// each bucket is posted, and that the optimizer's waits see every sum.
#include <gtest/gtest.h>

#include <algorithm>

#include "mpi/grad_buckets.hpp"

namespace lt {
namespace {

// A backend of one rank that records what is posted, and completes a sum only when tested or waited.
struct RecordingBackend final : ReduceBackend {
  struct Posted {
    float* values;
    int64_t count;
    bool done = false;
  };
  std::vector<Posted> posted;
  const char* name() const override { return "recording"; }
  int ranks() const override { return 1; }
  Handle start_sum(float* values, int64_t count) override {
    posted.push_back(Posted{values, count});
    return Handle(posted.size() - 1);
  }
  bool test(Handle h) override { return posted[size_t(h)].done; }
  void wait(Handle h) override {
    // "Summing" over a world of two identical ranks: doubles the values, once.
    if (!posted[size_t(h)].done)
      for (int64_t i = 0; i < posted[size_t(h)].count; ++i) posted[size_t(h)].values[i] *= 2;
    posted[size_t(h)].done = true;
  }
  void sum(double*, int64_t) override {}
  void broadcast(float*, int64_t, int) override {}
  int64_t finished_sums() const override {
    return std::count_if(posted.begin(), posted.end(), [](const Posted& p) { return p.done; });
  }
};

// Tensors of 10, 30, 5, 40, 15 floats: offsets 0, 10, 40, 45, 85; total 100.
const std::vector<int64_t> kStarts = {0, 10, 40, 45, 85};
constexpr int64_t kTotal = 100;

TEST(GradBuckets, CutAtTensorBoundariesFromTheEndOfTheBuffer) {
  RecordingBackend backend;
  // 40 floats per bucket: [85,100) + [45,85) = 55 ≥ 40 closes the first; then [40,45) + [10,40) = 35, + [0,10).
  const GradientBuckets buckets(backend, kStarts, kTotal, 40 * sizeof(float));
  ASSERT_EQ(buckets.buckets().size(), 2u);
  EXPECT_EQ(buckets.buckets()[0].begin, 45);
  EXPECT_EQ(buckets.buckets()[0].end, 100);
  EXPECT_EQ(buckets.buckets()[1].begin, 0);
  EXPECT_EQ(buckets.buckets()[1].end, 45);
}

TEST(GradBuckets, OneTensorPerBucketWhenBucketsAreTiny) {
  RecordingBackend backend;
  const GradientBuckets buckets(backend, kStarts, kTotal, 1);
  ASSERT_EQ(buckets.buckets().size(), kStarts.size());
  for (size_t b = 0; b < kStarts.size(); ++b) EXPECT_EQ(buckets.buckets()[b].begin, kStarts[kStarts.size() - 1 - b]);
}

TEST(GradBuckets, TheWholeBufferIsOneBucketWhenBucketsAreLarge) {
  RecordingBackend backend;
  const GradientBuckets buckets(backend, kStarts, kTotal, 25'000'000);
  ASSERT_EQ(buckets.buckets().size(), 1u);
  EXPECT_EQ(buckets.buckets()[0].begin, 0);
  EXPECT_EQ(buckets.buckets()[0].end, kTotal);
}

TEST(GradBuckets, ABucketIsPostedOnlyOnceAllItsGradientsAreFinal) {
  RecordingBackend backend;
  GradientBuckets buckets(backend, kStarts, kTotal, 1);
  std::vector<float> grads(kTotal, 1.f);
  buckets.begin_step(grads.data());
  buckets.grads_ready(86);  // the last tensor starts at 85: not yet final
  EXPECT_TRUE(backend.posted.empty());
  buckets.grads_ready(85);
  ASSERT_EQ(backend.posted.size(), 1u);
  EXPECT_EQ(backend.posted[0].values, grads.data() + 85);
  EXPECT_EQ(backend.posted[0].count, 15);
  buckets.grads_ready(40);  // two more tensors final: both posted, in buffer order from the end
  ASSERT_EQ(backend.posted.size(), 3u);
  EXPECT_EQ(backend.posted[1].values, grads.data() + 45);
  EXPECT_EQ(backend.posted[2].values, grads.data() + 40);
  EXPECT_GE(buckets.buckets()[0].posted_s, 0);
  EXPECT_LT(buckets.buckets()[3].posted_s, 0);
}

TEST(GradBuckets, WaitingPostsWhatIsLeftAndEverySumArrivesOnce) {
  RecordingBackend backend;
  GradientBuckets buckets(backend, kStarts, kTotal, 40 * sizeof(float));
  std::vector<float> grads(kTotal);
  for (int64_t i = 0; i < kTotal; ++i) grads[size_t(i)] = float(i);
  for (int step = 0; step < 2; ++step) {  // a second step reuses the buckets
    buckets.begin_step(grads.data());
    buckets.grads_ready(45);
    buckets.wait_all();
    buckets.wait_all();  // waiting again changes nothing
    for (int64_t i = 0; i < kTotal; ++i) EXPECT_EQ(grads[size_t(i)], float(i) * float(2 << step)) << i;
    for (const GradBucket& bucket : buckets.buckets()) EXPECT_GE(bucket.done_s, bucket.posted_s);
  }
  EXPECT_EQ(backend.posted.size(), 4u);
}

TEST(GradBuckets, TestingDrivesCompletionDuringBackward) {
  RecordingBackend backend;
  GradientBuckets buckets(backend, kStarts, kTotal, 1);
  std::vector<float> grads(kTotal, 1.f);
  buckets.begin_step(grads.data());
  buckets.grads_ready(85);
  backend.posted[0].done = true;  // the network delivered bucket 0 while the next layer computed
  buckets.grads_ready(45);
  EXPECT_GE(buckets.buckets()[0].done_s, 0);  // seen complete at the next layer, before any wait
  EXPECT_LT(buckets.buckets()[1].done_s, 0);
  buckets.wait_all();
  EXPECT_EQ(buckets.wait_s() >= 0, true);
}

// What the watchdog names when a step hangs: the first bucket posted and not arrived, counted from this
// step's start (the backend's count runs on across steps).
TEST(GradBuckets, PendingNamesTheFirstBucketNotArrived) {
  RecordingBackend backend;
  GradientBuckets buckets(backend, kStarts, kTotal, 1);  // 5 buckets, one tensor each
  std::vector<float> grads(kTotal, 1.f);
  buckets.begin_step(grads.data());
  buckets.wait_all();  // a first step: 5 sums finished
  buckets.begin_step(grads.data());
  EXPECT_EQ(buckets.pending(), "");  // nothing posted yet
  buckets.grads_ready(40);           // buckets 0-2 (tensors 4, 3, 2) posted
  EXPECT_EQ(buckets.pending(), "bucket 0 of 5 (0.00 MB)");
  backend.wait(5), backend.wait(6);  // the first two arrive
  EXPECT_EQ(buckets.pending(), "bucket 2 of 5 (0.00 MB)");
  backend.wait(7);
  EXPECT_EQ(buckets.pending(), "");
}

}  // namespace
}  // namespace lt
