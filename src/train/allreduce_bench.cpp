#include "src/train/allreduce_bench.hpp"

#include <vector>

#include "src/common/clock.hpp"
#include "src/common/json.hpp"

namespace lt {

AllreduceBench bench_allreduce(ReduceBackend& backend, float* buffer, int64_t floats) {
  // Until the host sees each sum done (wait alone leaves the host free on a device).
  const auto sum = [&] {
    const ReduceBackend::Handle handle = backend.start_sum(buffer, floats);
    backend.wait(handle);
    while (!backend.test(handle)) {
    }
  };
  constexpr int kRepeats = 5;
  sum();  // warm-up
  const double start = now_s();
  for (int i = 0; i < kRepeats; ++i) sum();
  return AllreduceBench{floats * int64_t(sizeof(float)), (now_s() - start) / kRepeats};
}
std::string allreduce_bench_json(const AllreduceBench& bench, int ranks) {
  const double bus_bytes = 2.0 * (ranks - 1) / ranks * double(bench.bytes);
  JsonWriter line;
  line.begin_object()
      .key("allreduce_bench")
      .begin_object()
      .key("bytes")
      .value(bench.bytes)
      .key("ranks")
      .value(ranks)
      .key("seconds")
      .value(bench.seconds)
      .key("busbw_GBps")
      .value(bench.seconds > 0 ? bus_bytes / bench.seconds / 1e9 : 0.0)
      .end_object()
      .end_object();
  return line.str();
}

}  // namespace lt
