#pragma once
#include <cstdint>
#include <vector>

namespace lt {

// Order statistics of a sample, by the nearest-rank definition (no interpolation, so the values are
// members of the sample).
struct Distribution {
  int64_t count = 0;
  double min = 0, median = 0, p90 = 0, max = 0, mean = 0;
};
Distribution distribution_of(std::vector<double> values);

}  // namespace lt
