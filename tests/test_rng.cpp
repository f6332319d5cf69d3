#include <gtest/gtest.h>

#include <cmath>

#include "src/common/rng.hpp"

namespace lt {
namespace {

TEST(Rng, SameKeyGivesSameStream) {
  Rng a(stream_key(7, 3, 1)), b(stream_key(7, 3, 1));
  for (int i = 0; i < 100; ++i) EXPECT_EQ(a.next_u64(), b.next_u64());
}

TEST(Rng, KeysThatDifferInAnyPartGiveDifferentStreams) {
  const uint64_t base = stream_key(7, 3, 1);
  EXPECT_NE(base, stream_key(8, 3, 1));
  EXPECT_NE(base, stream_key(7, 4, 1));
  EXPECT_NE(base, stream_key(7, 3, 2));
  EXPECT_NE(stream_key(1, 2), stream_key(2, 1));
}

TEST(Rng, ValueDependsOnlyOnPositionInStream) {
  Rng sequential(99);
  for (int i = 0; i < 10; ++i) sequential.next_u64();
  Rng jumped(99, 10);
  EXPECT_EQ(sequential.next_u64(), jumped.next_u64());
}

TEST(Rng, UniformAndNormalHaveTheRightMoments) {
  Rng rng(stream_key(1, 2, 3));
  double sum = 0, sum_sq = 0, normal_sum = 0, normal_sq = 0;
  const int n = 200000;
  for (int i = 0; i < n; ++i) {
    const double u = rng.uniform();
    ASSERT_GE(u, 0.0);
    ASSERT_LT(u, 1.0);
    sum += u;
    sum_sq += u * u;
    const double z = rng.normal();
    normal_sum += z;
    normal_sq += z * z;
  }
  EXPECT_NEAR(sum / n, 0.5, 0.005);
  EXPECT_NEAR(sum_sq / n - 0.25, 1.0 / 12, 0.002);
  EXPECT_NEAR(normal_sum / n, 0.0, 0.01);
  EXPECT_NEAR(normal_sq / n, 1.0, 0.01);
}

}  // namespace
}  // namespace lt
