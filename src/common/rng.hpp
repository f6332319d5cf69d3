#pragma once
// Counter-based random numbers. A stream is named by a key (seed, what, which) and its values depend
// only on that key and their position in it, never on which rank or thread draws them or in which
// order frames are visited: that is what makes synthetic data identical for any rank count and
// augmentation identical whichever rank loads a frame.
#include <cmath>
#include <cstdint>

namespace lt {

// SplitMix64's finaliser: a bijection of 64-bit words with good avalanche.
constexpr uint64_t mix64(uint64_t z) {
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

constexpr uint64_t stream_key(uint64_t seed, uint64_t a, uint64_t b = 0) {
  return mix64(mix64(mix64(seed + 0x9E3779B97F4A7C15ull) ^ (a + 0xD1B54A32D192ED03ull)) ^ (b + 0x8CB92BA72F3D8DD7ull));
}

class Rng {
 public:
  explicit constexpr Rng(uint64_t key, uint64_t counter = 0) : key_(key), counter_(counter) {}

  constexpr uint64_t next_u64() { return mix64(key_ ^ mix64(++counter_ * 0x9E3779B97F4A7C15ull)); }
  // Uniform in [0, 1) with 53 random bits.
  double uniform() { return double(next_u64() >> 11) * 0x1.0p-53; }
  double uniform(double lo, double hi) { return lo + (hi - lo) * uniform(); }
  // Uniform integer in [0, n).
  uint64_t below(uint64_t n) { return uint64_t(uniform() * double(n)); }
  bool bernoulli(double p) { return uniform() < p; }
  // Standard normal by Box-Muller (one value per call; the pair's second half is dropped so that a
  // value's position in the stream is simply its call index).
  double normal() {
    const double u1 = 1.0 - uniform();  // (0, 1]
    const double u2 = uniform();
    return std::sqrt(-2.0 * std::log(u1)) * std::cos(6.283185307179586 * u2);
  }
  uint64_t counter() const { return counter_; }

 private:
  uint64_t key_;
  uint64_t counter_;
};

}  // namespace lt
