#include <gtest/gtest.h>

#include <cmath>

#include "src/train/optimizer.hpp"

namespace lt {
namespace {

ParamStore two_params() {
  ParamStore store;
  store.add("layer.weight", {2, 2}, true);
  store.add("layer.bias", {2}, false);
  store.allocate(true);
  for (int i = 0; i < 6; ++i) {
    store.values()[i] = 0.5f - 0.2f * float(i);
    store.grads()[i] = 0.1f * float(i + 1) - 0.25f;
  }
  return store;
}

TEST(ParamStore, ViewsAreContiguousAndNamed) {
  const ParamStore store = two_params();
  ASSERT_EQ(store.views().size(), 2u);
  EXPECT_EQ(store.find("layer.bias")->offset, 4);
  EXPECT_EQ(store.find("layer.bias")->size, 2);
  EXPECT_FALSE(store.find("layer.bias")->decay);
  EXPECT_EQ(store.size(), 6);
  EXPECT_EQ(store.find("nope"), nullptr);
}

TEST(AdamW, MatchesTorchFormulaAndSkipsDecayOnBiases) {
  ParamStore store = two_params();
  const std::vector<float> p0 = store.values(), g = store.grads();
  OptimizerConfig config;
  config.weight_decay = 0.1;
  Optimizer adamw(config, store.size());
  const double lr = 0.01;
  adamw.step(store, lr);
  adamw.step(store, lr);
  for (int i = 0; i < 6; ++i) {
    // Two steps with the same gradient, in double: p ← p(1 - lr·wd) - lr·m̂/(√v̂ + eps).
    double p = p0[i], m = 0, v = 0;
    const double wd = i < 4 ? 0.1 : 0.0;
    for (int t = 1; t <= 2; ++t) {
      p *= 1 - lr * wd;
      m = 0.9 * m + 0.1 * g[i];
      v = 0.999 * v + 0.001 * g[i] * g[i];
      p -= lr * (m / (1 - std::pow(0.9, t))) / (std::sqrt(v / (1 - std::pow(0.999, t))) + 1e-8);
    }
    EXPECT_NEAR(store.values()[i], p, 1e-6) << i;
  }
}

TEST(Sgd, MomentumAndCoupledWeightDecay) {
  ParamStore store = two_params();
  const std::vector<float> p0 = store.values(), g = store.grads();
  OptimizerConfig config;
  config.type = "sgd";
  config.weight_decay = 0.01;
  config.momentum = 0.9;
  Optimizer sgd(config, store.size());
  sgd.step(store, 0.1);
  sgd.step(store, 0.1);
  for (int i = 0; i < 6; ++i) {
    const double wd = i < 4 ? 0.01 : 0.0;
    double p = p0[i], buf = 0;
    for (int t = 1; t <= 2; ++t) {
      const double d = g[i] + wd * p;
      buf = t == 1 ? d : 0.9 * buf + d;
      p -= 0.1 * buf;
    }
    EXPECT_NEAR(store.values()[i], p, 1e-6) << i;
  }
}

TEST(Schedule, OneCycleRisesToPeakThenAnnealsToTheFloor) {
  ScheduleConfig s;
  s.peak_lr = 0.01;
  s.total_steps = 100;
  s.warmup_fraction = 0.3;
  EXPECT_NEAR(learning_rate(s, 0), 0.01 / 25, 1e-12);
  EXPECT_NEAR(learning_rate(s, 29), 0.01, 1e-12);  // pct_start·total - 1
  EXPECT_NEAR(learning_rate(s, 99), 0.01 / 25 / 1e4, 1e-12);
  for (int64_t t = 1; t < 30; ++t) EXPECT_GT(learning_rate(s, t), learning_rate(s, t - 1));
  for (int64_t t = 30; t < 100; ++t) EXPECT_LT(learning_rate(s, t), learning_rate(s, t - 1));
}

TEST(Schedule, CosineWarmsUpLinearly) {
  ScheduleConfig s;
  s.type = "cosine";
  s.peak_lr = 0.1;
  s.total_steps = 50;
  s.warmup_fraction = 0.2;  // 10 steps
  EXPECT_NEAR(learning_rate(s, 0), 0.01, 1e-12);
  EXPECT_NEAR(learning_rate(s, 9), 0.1, 1e-12);
  EXPECT_NEAR(learning_rate(s, 10), 0.1, 1e-12);
  EXPECT_NEAR(learning_rate(s, 50), 0.001, 1e-12);
}

TEST(ClipGradNorm, ScalesToTheLimitAndReportsTheNorm) {
  std::vector<float> g = {3, 4, 0, 0};
  EXPECT_NEAR(clip_grad_norm(g, 1.0), 5.0, 1e-9);
  EXPECT_NEAR(std::hypot(g[0], g[1]), 1.0, 1e-5);
  std::vector<float> small = {0.3f, 0.4f};
  clip_grad_norm(small, 1.0);
  EXPECT_EQ(small, (std::vector<float>{0.3f, 0.4f}));
}

}  // namespace
}  // namespace lt
