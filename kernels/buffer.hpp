#pragma once
// Arrays in a backend's memory (kernels/backend.hpp), from one caching allocator per backend: freed
// blocks are kept and handed out again, so a training step's activations and temporaries cost no
// cudaMalloc (nor page faults on the CPU) after the first step. The allocator reports its current and
// peak bytes (profile, metrics.jsonl).
#include <cstddef>
#include <cstdint>
#include <utility>
#include <vector>

#include "kernels/backend.hpp"

namespace lt {

// Memory from the backend's pool, at least `bytes` (the block's size to *block_bytes, which pool_free
// takes back): null when the backend has none left (the caller reports it, naming what it asked for).
void* pool_alloc(const Backend& backend, size_t bytes, size_t* block_bytes);
void pool_free(const Backend& backend, void* pointer, size_t block_bytes);
struct PoolStats {
  size_t in_use_bytes = 0, peak_bytes = 0, cached_bytes = 0;
};
PoolStats pool_stats(const Backend& backend);
void pool_reset_peak(const Backend& backend);
// Told of every block the backend's pool hands out (in_use true) and takes back (false): how the CUDA
// emulation follows which memory a captured graph may still use (kernels/cuda/emu/runtime.cpp). One per
// backend; none by default.
using PoolObserver = void (*)(const void* block, size_t bytes, bool in_use);
void set_pool_observer(const Backend& backend, PoolObserver observer);

// Thrown when a backend's memory runs out: what was asked for and how much the pool held.
struct OutOfDeviceMemory {
  const char* backend;
  size_t requested_bytes, in_use_bytes;
};

template <class T>
class Buffer {
 public:
  Buffer() = default;
  Buffer(const Buffer&) = delete;
  Buffer& operator=(const Buffer&) = delete;
  Buffer(Buffer&& other) noexcept { *this = std::move(other); }
  Buffer& operator=(Buffer&& other) noexcept {
    std::swap(backend_, other.backend_);
    std::swap(data_, other.data_);
    std::swap(size_, other.size_);
    std::swap(capacity_, other.capacity_);
    std::swap(block_bytes_, other.block_bytes_);
    return *this;
  }
  ~Buffer() { release(); }

  // `count` elements on `backend`; the contents are undefined. Keeps the memory when it is large enough.
  void resize(const Backend& backend, size_t count) {
    if (backend_ != &backend || count > capacity_) {
      release();
      backend_ = &backend;
      if (count > 0) {
        data_ = static_cast<T*>(pool_alloc(backend, sizeof(T) * count, &block_bytes_));
        if (!data_) throw OutOfDeviceMemory{backend.name, sizeof(T) * count, pool_stats(backend).in_use_bytes};
        capacity_ = block_bytes_ / sizeof(T);
      }
    }
    size_ = count;
  }
  // `count` zeros.
  void zeros(const Backend& backend, size_t count) {
    resize(backend, count);
    if (count) backend.fill_zero(data_, sizeof(T) * count);
  }
  // A copy of host data.
  void upload(const Backend& backend, const T* host, size_t count) {
    resize(backend, count);
    if (count) backend.upload(data_, host, sizeof(T) * count);
  }
  void upload(const Backend& backend, const std::vector<T>& host) { upload(backend, host.data(), host.size()); }
  void download(T* host) const {
    if (size_) backend_->download(host, data_, sizeof(T) * size_);
  }
  std::vector<T> to_host() const {
    std::vector<T> host(size_);
    download(host.data());
    return host;
  }
  void release() {
    if (data_) pool_free(*backend_, data_, block_bytes_);
    data_ = nullptr;
    size_ = capacity_ = block_bytes_ = 0;
  }

  T* data() { return data_; }
  const T* data() const { return data_; }
  size_t size() const { return size_; }
  bool empty() const { return size_ == 0; }

 private:
  const Backend* backend_ = nullptr;
  T* data_ = nullptr;
  size_t size_ = 0, capacity_ = 0, block_bytes_ = 0;
};

// Host data as the backend reads it: the host array itself where the backend's memory is the host's,
// otherwise a copy in `staging`.
template <class T>
const T* on_backend(const Backend& backend, const std::vector<T>& host, Buffer<T>& staging) {
  if (backend.host_memory) return host.data();
  staging.upload(backend, host);
  return staging.data();
}

// A CellIndex as the backend reads it: the index itself on the host, otherwise copies in `staging`.
struct CellIndexBuffers {
  Buffer<int64_t> point_cell, cells, cell_start, sorted_points, point_slot;
};
inline ops::CellIndexView on_backend(const Backend& backend, const ops::CellIndex& index, CellIndexBuffers& staging) {
  if (backend.host_memory) return index;
  staging.point_cell.upload(backend, index.point_cell);
  staging.cells.upload(backend, index.cells);
  staging.cell_start.upload(backend, index.cell_start);
  staging.sorted_points.upload(backend, index.sorted_points);
  staging.point_slot.upload(backend, index.point_slot);
  return {index.num_points,
          index.num_cells,
          index.occupied(),
          staging.point_cell.data(),
          staging.cells.data(),
          staging.cell_start.data(),
          staging.sorted_points.data(),
          staging.point_slot.data()};
}

}  // namespace lt
