// Frame-to-rank assignment strategies (mpi/balance.hpp).
#include <gtest/gtest.h>

#include <algorithm>
#include <map>

#include "mpi/balance.hpp"
#include "src/common/error.hpp"
#include "src/common/rng.hpp"

namespace lt {
namespace {

// Long-tailed costs, as synth's default skew gives.
std::vector<double> skewed_costs(int n) {
  Rng rng(3);
  std::vector<double> costs;
  for (int i = 0; i < n; ++i) costs.push_back(rng.bernoulli(0.35) ? rng.uniform(95e3, 108e3) : rng.uniform(50e3, 75e3));
  return costs;
}

std::vector<int64_t> all_frames(const StepAssignment& a) {
  std::vector<int64_t> frames;
  for (const auto& r : a.frames_of_rank) frames.insert(frames.end(), r.begin(), r.end());
  std::sort(frames.begin(), frames.end());
  return frames;
}

TEST(Balance, NoneSplitsEachGlobalBatchContiguously) {
  const FrameSampler sampler(Balance::none, skewed_costs(40), 4, 3, 1);
  const StepAssignment a = sampler.step(0);
  ASSERT_EQ(a.frames_of_rank.size(), 4u);
  for (const auto& r : a.frames_of_rank) EXPECT_EQ(r.size(), 3u);
  EXPECT_EQ(all_frames(a).size(), 12u);
}

TEST(Balance, LptSplitsTheSameGlobalBatchAsNoneAndBalancesIt) {
  const auto costs = skewed_costs(64);
  const FrameSampler none(Balance::none, costs, 2, 4, 7), lpt(Balance::lpt, costs, 2, 4, 7);
  for (int64_t s = 0; s < 40; ++s) {  // crosses epoch boundaries
    const StepAssignment a = none.step(s), b = lpt.step(s);
    EXPECT_EQ(all_frames(a), all_frames(b)) << "step " << s;
    const auto max_cost = [&](const StepAssignment& x) {
      double m = 0;
      for (const auto& r : x.frames_of_rank) {
        double c = 0;
        for (int64_t f : r) c += costs[f];
        m = std::max(m, c);
      }
      return m;
    };
    EXPECT_LE(max_cost(b), max_cost(a) + 1e-9) << "step " << s;
  }
  EXPECT_LE(replay_balance(lpt, 64).mean_imbalance, 1.05);
  EXPECT_GT(replay_balance(none, 64).mean_imbalance, replay_balance(lpt, 64).mean_imbalance);
}

TEST(Balance, EveryRankComputesTheSameAssignment) {
  const auto costs = skewed_costs(50);
  for (Balance balance : {Balance::none, Balance::bucket, Balance::lpt}) {
    const FrameSampler a(balance, costs, 3, 2, 11), b(balance, costs, 3, 2, 11);
    for (int64_t s = 0; s < 20; ++s) EXPECT_EQ(a.step(s).frames_of_rank, b.step(s).frames_of_rank);
  }
}

TEST(Balance, BucketVisitsEveryFrameOncePerEpochWhateverTheDatasetSize) {
  for (int frames : {48, 50, 7}) {  // a multiple of the global batch 8, and two that are not
    const auto costs = skewed_costs(frames);
    const FrameSampler sampler(Balance::bucket, costs, 4, 2, 5);
    const int64_t steps_per_epoch = (frames + 7) / 8;
    for (int64_t epoch = 0; epoch < 2; ++epoch) {
      std::map<int64_t, int> seen;
      for (int64_t s = epoch * steps_per_epoch; s < (epoch + 1) * steps_per_epoch; ++s) {
        const StepAssignment a = sampler.step(s);
        EXPECT_EQ(a.epoch, epoch);
        for (int64_t f : all_frames(a)) seen[f] += 1;
      }
      EXPECT_EQ(int(seen.size()), frames);
      for (const auto& [frame, count] : seen) EXPECT_EQ(count, 1) << "frame " << frame;
    }
  }
}

TEST(Balance, BucketStepsHoldFramesOfSimilarCost) {
  const auto costs = skewed_costs(256);
  const FrameSampler bucket(Balance::bucket, costs, 8, 2, 1), none(Balance::none, costs, 8, 2, 1);
  EXPECT_LT(replay_balance(bucket, 32).mean_imbalance, 1.02);
  EXPECT_GT(replay_balance(bucket, 32).frames_per_cost, 1.1 * replay_balance(none, 32).frames_per_cost);
}

TEST(Balance, ACostModelChangesLptSplitsOnlyFromItsFirstStep) {
  std::vector<double> costs;  // one frame in four is 30 times the others: stored-cost LPT splits 1 + 7 or so
  for (int i = 0; i < 64; ++i) costs.push_back(i % 4 == 0 ? 300.0 : 10.0);
  FrameSampler lpt(Balance::lpt, costs, 2, 4, 5);
  const FrameSampler reference(Balance::lpt, costs, 2, 4, 5);
  // Per frame, a cost that dwarfs the points: the best split is 4 frames each.
  lpt.set_cost_model(6, 1e-9, 1.0);
  bool some_step_differed_before = false;
  for (int64_t s = 0; s < 12; ++s) {
    const StepAssignment a = lpt.step(s), b = reference.step(s);
    EXPECT_EQ(all_frames(a), all_frames(b));  // the same global batch whatever the model
    if (s < 6) {
      EXPECT_EQ(a.frames_of_rank, b.frames_of_rank) << "step " << s;
      some_step_differed_before |= a.frames_of_rank[0].size() != 4;
    } else {
      EXPECT_EQ(a.frames_of_rank[0].size(), 4u) << "step " << s;
      EXPECT_EQ(a.frames_of_rank[1].size(), 4u) << "step " << s;
    }
  }
  EXPECT_TRUE(some_step_differed_before);  // so the stored cost alone does give uneven counts here
}

// A run resumed with another rank count continues the same sequence of global samples: every frame of
// the epoch orders once, in order, whatever the global batch before and after.
TEST(Balance, ResumingWithAnotherGlobalBatchContinuesTheSameFrameSequence) {
  const auto costs = skewed_costs(30);
  for (Balance balance : {Balance::none, Balance::lpt}) {
    const FrameSampler reference(balance, costs, 1, 1, 9);  // one frame a step: the sequence itself
    FrameSampler before(balance, costs, 2, 2, 9);           // 4 frames a step
    FrameSampler after(balance, costs, 3, 1, 9);            // then 3 a step, from step 5 (20 frames seen)
    after.resume_at(5, 20);
    std::vector<int64_t> seen;
    for (int64_t s = 0; s < 5; ++s) {
      const std::vector<int64_t> frames = all_frames(before.step(s));
      seen.insert(seen.end(), frames.begin(), frames.end());
    }
    for (int64_t s = 5; s < 25; ++s) {
      const std::vector<int64_t> frames = all_frames(after.step(s));
      seen.insert(seen.end(), frames.begin(), frames.end());
    }
    ASSERT_EQ(seen.size(), 80u);
    // Per step the frames come sorted (all_frames); compare as sets per global batch of the reference.
    std::vector<int64_t> expected;
    for (int64_t s = 0; s < 80; ++s) expected.push_back(reference.step(s).frames_of_rank[0][0]);
    const auto sorted_range = [](std::vector<int64_t> v, size_t from, size_t to) {
      std::vector<int64_t> part(v.begin() + int64_t(from), v.begin() + int64_t(to));
      std::sort(part.begin(), part.end());
      return part;
    };
    for (size_t from = 0, s = 0; from < 80; ++s) {
      const size_t size = s < 5 ? 4 : 3, to = std::min<size_t>(80, from + size);
      EXPECT_EQ(sorted_range(seen, from, to), sorted_range(expected, from, to)) << "step " << s;
      from = to;
    }
    EXPECT_EQ(after.step(5).epoch, 0);
    EXPECT_EQ(after.step(8).epoch, 0);  // samples 29..31: a step's epoch is its first sample's
    EXPECT_EQ(after.step(9).epoch, 1);  // samples 32..34
  }
}

TEST(Balance, BucketCannotResumeWithAnotherGlobalBatch) {
  FrameSampler bucket(Balance::bucket, skewed_costs(30), 3, 1, 9);
  EXPECT_THROW(bucket.resume_at(5, 20), InputError);
  EXPECT_NO_THROW(bucket.resume_at(5, 15));
}

TEST(Balance, UnknownStrategyNamesTheKey) {
  try {
    parse_balance("fair");
    FAIL();
  } catch (const std::exception& e) {
    EXPECT_NE(std::string(e.what()).find("--train.balance: 'fair'"), std::string::npos);
  }
}

}  // namespace
}  // namespace lt
