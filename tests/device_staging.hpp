#pragma once
// Runs a Backend's ops on host arrays that carry their sizes, so that one test case, written once as
// `k.op(ro(x), wr(y), n)` with the Backend's signature (kernels/backend.hpp), runs on the CPU reference
// (tests/test_ops.cpp: Cpu<T>, the arrays' own pointers) and on every backend (Staged: each array copied
// into the backend's memory, the op run, the outputs copied back). Staged has every op of LT_BACKEND_OPS
// with no code of its own: a new op needs no wrapper here.
//
// The arguments:
//   ro(v)          read by the op: uploaded;
//   wr(v)          written by the op: a zeroed device array, downloaded after the op;
//   rw(v)          read and written (gradients that accumulate, optimizer state): uploaded and downloaded;
//   ro_if(c, v)    the same, or a null pointer when c is false (the ops' optional arrays); wr_if likewise;
//   a CellIndex    uploaded whole, the op given its device view;
//   anything else  (sizes, shapes, scalars, nullptr) passed as it is.
#include <cstring>
#include <type_traits>
#include <utility>
#include <vector>

#include "kernels/backend.hpp"

namespace lt::testing {

// A host array an op reads (In) or writes (Out; `upload`: it also reads it). `present` false: the op is
// given a null pointer.
template <class T>
struct In {
  const T* data;
  size_t count;
  bool present;
};
template <class T>
struct Out {
  T* data;
  size_t count;
  bool present;
  bool upload;
};

template <class T>
In<T> ro(const std::vector<T>& v) {
  return {v.data(), v.size(), true};
}
template <class T>
In<T> ro_if(bool present, const std::vector<T>& v) {
  return {v.data(), v.size(), present};
}
template <class T>
Out<T> wr(std::vector<T>& v) {
  return {v.data(), v.size(), true, false};
}
template <class T>
Out<T> wr_if(bool present, std::vector<T>& v) {
  return {v.data(), v.size(), present, false};
}
template <class T>
Out<T> rw(std::vector<T>& v) {
  return {v.data(), v.size(), true, true};
}

// An argument as a host op takes it: the array's pointer (null when absent); anything else as it is.
template <class T>
const T* host_arg(const In<T>& a) {
  return a.present ? a.data : nullptr;
}
template <class T>
T* host_arg(const Out<T>& a) {
  return a.present ? a.data : nullptr;
}
template <class A>
A&& host_arg(A&& a) {
  return std::forward<A>(a);
}

// An array in a backend's memory, filled from the host or zeroed.
template <class T>
class DeviceArray {
 public:
  DeviceArray(const Backend& backend, size_t count) : backend_(backend), count_(count) {
    data_ = static_cast<T*>(backend.alloc(bytes()));
    backend.fill_zero(data_, bytes());
  }
  DeviceArray(const Backend& backend, const T* host, size_t count) : DeviceArray(backend, count) {
    if (host && count) backend.upload(data_, host, bytes());
  }
  DeviceArray(const DeviceArray&) = delete;
  DeviceArray& operator=(const DeviceArray&) = delete;
  ~DeviceArray() { backend_.release(data_); }
  T* get() const { return data_; }
  void to_host(T* host) const {
    if (host && count_) backend_.download(host, data_, bytes());
  }

 private:
  size_t bytes() const { return sizeof(T) * count_; }
  const Backend& backend_;
  size_t count_;
  T* data_ = nullptr;
};

// A CellIndex uploaded, with its view.
class DeviceCellIndex {
 public:
  DeviceCellIndex(const Backend& b, const ops::CellIndexView& host)
      : point_cell_(b, host.point_cell, size_t(host.num_points)),
        cells_(b, host.cells, size_t(host.occupied)),
        cell_start_(b, host.cell_start, size_t(host.occupied + 1)),
        sorted_points_(b, host.sorted_points, size_t(host.cell_start[host.occupied])),
        point_slot_(b, host.point_slot, size_t(host.num_points)) {
    view_ = host;
    view_.point_cell = point_cell_.get();
    view_.cells = cells_.get();
    view_.cell_start = cell_start_.get();
    view_.sorted_points = sorted_points_.get();
    view_.point_slot = point_slot_.get();
  }
  const ops::CellIndexView& view() const { return view_; }

 private:
  DeviceArray<int64_t> point_cell_, cells_, cell_start_, sorted_points_, point_slot_;
  ops::CellIndexView view_;
};

// One argument on its way to a backend: `arg()` is what the op is given, `finish()` copies back what it
// wrote. The primary template passes a value through.
template <class A>
struct StagedArg {
  static_assert(!std::is_pointer_v<A>, "a host array goes to a backend as ro(v), wr(v) or rw(v)");
  StagedArg(const Backend&, const A& a) : value(a) {}
  const A& arg() const { return value; }
  void finish() const {}
  const A& value;
};
template <class T>
struct StagedArg<In<T>> {
  StagedArg(const Backend& b, const In<T>& a) : host(a), device(b, a.data, a.present ? a.count : 0) {}
  const T* arg() const { return host.present ? device.get() : nullptr; }
  void finish() const {}
  In<T> host;
  DeviceArray<T> device;
};
template <class T>
struct StagedArg<Out<T>> {
  StagedArg(const Backend& b, const Out<T>& a)
      : host(a), device(b, a.upload ? a.data : nullptr, a.present ? a.count : 0) {}
  T* arg() const { return host.present ? device.get() : nullptr; }
  void finish() const {
    if (host.present) device.to_host(host.data);
  }
  Out<T> host;
  DeviceArray<T> device;
};
template <>
struct StagedArg<ops::CellIndexView> {
  StagedArg(const Backend& b, const ops::CellIndexView& index) : device(b, index) {}
  const ops::CellIndexView& arg() const { return device.view(); }
  void finish() const {}
  DeviceCellIndex device;
};
template <>
struct StagedArg<ops::CellIndex> : StagedArg<ops::CellIndexView> {
  StagedArg(const Backend& b, const ops::CellIndex& index) : StagedArg<ops::CellIndexView>(b, index) {}
};
// An optimizer step whose gate (OptimizerStep::gate) and weight-decay flags (::decays) are held on the
// host: they are uploaded and the step handed over pointing at them.
struct StepWithArrays {
  OptimizerStep step;
  const std::vector<float>* gate = nullptr;
  const std::vector<uint8_t>* decays = nullptr;
};
inline StepWithArrays with_gate(const OptimizerStep& step, const std::vector<float>& gate) {
  return {step, &gate, nullptr};
}
inline StepWithArrays with_decays(const OptimizerStep& step, const std::vector<uint8_t>& decays) {
  return {step, nullptr, &decays};
}
template <>
struct StagedArg<StepWithArrays> {
  StagedArg(const Backend& b, const StepWithArrays& a)
      : gate(b, a.gate ? a.gate->data() : nullptr, a.gate ? a.gate->size() : 0),
        decays(b, a.decays ? a.decays->data() : nullptr, a.decays ? a.decays->size() : 0),
        step(a.step) {
    step.gate = a.gate ? gate.get() : nullptr;
    step.decays = a.decays ? decays.get() : nullptr;
  }
  const OptimizerStep& arg() const { return step; }
  void finish() const {}
  DeviceArray<float> gate;
  DeviceArray<uint8_t> decays;
  OptimizerStep step;
};

// Stages `first`, then the rest, calls `op` with every staged argument in order, and copies the outputs
// back (after the op, in reverse order of staging; they do not overlap).
template <class Op>
void call_staged(const Backend&, Op&& op) {
  op();
}
template <class Op, class First, class... Rest>
void call_staged(const Backend& b, Op&& op, const First& first, const Rest&... rest) {
  const StagedArg<First> staged(b, first);
  call_staged(
      b, [&](auto&&... later) { op(staged.arg(), std::forward<decltype(later)>(later)...); }, rest...);
  staged.finish();
}

// Thrown by Staged for an op its backend lists as unsupported (kernels/backend.hpp: supports_op): the
// device suites skip the case.
struct UnsupportedOp {
  const char* op;
};

// A Backend's ops on host arrays: k.op(…) with the Backend's signature, arrays as ro()/wr()/rw().
struct Staged {
  const Backend& b;
  void need(const char* op) const {
    if (!supports_op(b, op)) throw UnsupportedOp{op};
  }
#define LT_STAGED_OP(op)                                                                            \
  template <class... Args>                                                                          \
  void op(const Args&... args) const {                                                              \
    need(#op);                                                                                      \
    call_staged(                                                                                    \
        b, [this](auto&&... staged) { b.op(std::forward<decltype(staged)>(staged)...); }, args...); \
  }
  LT_BACKEND_OPS(LT_STAGED_OP)
#undef LT_STAGED_OP
};

}  // namespace lt::testing
