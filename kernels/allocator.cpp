// The caching allocator behind Buffer: per backend, freed blocks by size; a request takes the smallest
// free block that fits and wastes at most half of it, else new memory (and, when that fails, the cache
// is released and the request tried once more).
#include <map>
#include <mutex>

#include "kernels/buffer.hpp"

namespace lt {
namespace {

constexpr size_t kGranule = 512;  // sizes round up to this: more reuse between nearly equal requests

struct Pool {
  std::multimap<size_t, void*> free_blocks;  // size → block
  size_t in_use = 0, peak = 0, cached = 0;
  PoolObserver observer = nullptr;
};

std::mutex pools_mutex;
// Never destroyed: blocks may be freed to it during exit, and a device's memory must not be released
// after its runtime has shut down (the process's end returns it all).
std::map<const Backend*, Pool>& pools() {
  static auto* all = new std::map<const Backend*, Pool>;
  return *all;
}

size_t rounded(size_t bytes) {
  return (bytes + kGranule - 1) / kGranule * kGranule;
}

}  // namespace

void* pool_alloc(const Backend& backend, size_t bytes, size_t* block_bytes) {
  const size_t size = rounded(bytes);
  std::lock_guard<std::mutex> lock(pools_mutex);
  Pool& pool = pools()[&backend];
  auto it = pool.free_blocks.lower_bound(size);
  void* block = nullptr;
  size_t block_size = size;
  if (it != pool.free_blocks.end() && it->first <= 2 * size) {
    block = it->second;
    block_size = it->first;
    pool.cached -= it->first;
    pool.free_blocks.erase(it);
  } else {
    block = backend.alloc(size);
    if (!block) {  // give the cache back and try once more
      for (const auto& [cached_size, cached_block] : pool.free_blocks) backend.release(cached_block);
      pool.free_blocks.clear();
      pool.cached = 0;
      block = backend.alloc(size);
      if (!block) return nullptr;
    }
  }
  *block_bytes = block_size;
  if (pool.observer) pool.observer(block, block_size, true);
  pool.in_use += block_size;
  if (pool.in_use > pool.peak) pool.peak = pool.in_use;
  return block;
}

void pool_free(const Backend& backend, void* pointer, size_t bytes) {
  if (!pointer) return;
  std::lock_guard<std::mutex> lock(pools_mutex);
  Pool& pool = pools()[&backend];
  if (pool.observer) pool.observer(pointer, bytes, false);
  pool.in_use -= bytes;
  pool.cached += bytes;
  pool.free_blocks.emplace(bytes, pointer);
}

PoolStats pool_stats(const Backend& backend) {
  std::lock_guard<std::mutex> lock(pools_mutex);
  const Pool& pool = pools()[&backend];
  return {pool.in_use, pool.peak, pool.cached};
}

void set_pool_observer(const Backend& backend, PoolObserver observer) {
  std::lock_guard<std::mutex> lock(pools_mutex);
  pools()[&backend].observer = observer;
}

void pool_reset_peak(const Backend& backend) {
  std::lock_guard<std::mutex> lock(pools_mutex);
  Pool& pool = pools()[&backend];
  pool.peak = pool.in_use;
}

}  // namespace lt
