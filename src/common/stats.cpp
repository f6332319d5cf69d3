#include "src/common/stats.hpp"

#include <algorithm>
#include <cmath>

namespace lt {
namespace {
double nearest_rank(const std::vector<double>& sorted, double q) {
  const size_t rank = size_t(std::ceil(q * double(sorted.size())));
  return sorted[std::clamp<size_t>(rank, 1, sorted.size()) - 1];
}
}  // namespace

Distribution distribution_of(std::vector<double> values) {
  Distribution d;
  d.count = int64_t(values.size());
  if (values.empty()) return d;
  std::sort(values.begin(), values.end());
  d.min = values.front();
  d.max = values.back();
  d.median = nearest_rank(values, 0.5);
  d.p90 = nearest_rank(values, 0.9);
  double sum = 0;
  for (double v : values) sum += v;
  d.mean = sum / double(values.size());
  return d;
}

}  // namespace lt
