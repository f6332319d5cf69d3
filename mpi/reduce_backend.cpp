#include "mpi/reduce_backend.hpp"

#include <mpi.h>

#include <atomic>
#include <cstring>
#include <vector>

#include "kernels/backend.hpp"
#include "kernels/cuda/emu/emulated.hpp"
#include "mpi/nccl_backend.hpp"
#include "src/common/error.hpp"

namespace lt {
namespace {

class MpiReduceBackend final : public ReduceBackend {
 public:
  explicit MpiReduceBackend(const Comm& comm) : ranks_(comm.size()) { MPI_Comm_dup(MPI_COMM_WORLD, &comm_); }
  ~MpiReduceBackend() override {
    for (MPI_Request& request : requests_)
      if (request != MPI_REQUEST_NULL) MPI_Wait(&request, MPI_STATUS_IGNORE);
    MPI_Comm_free(&comm_);
  }
  const char* name() const override { return "mpi"; }
  int ranks() const override { return ranks_; }

  Handle start_sum(float* values, int64_t count) override {
    // MPI counts are int; a bucket is far below 2^31 floats (buckets are cut at about 25 MB).
    MPI_Request request;
    MPI_Iallreduce(MPI_IN_PLACE, values, int(count), MPI_FLOAT, MPI_SUM, comm_, &request);
    for (size_t h = 0; h < requests_.size(); ++h)
      if (requests_[h] == MPI_REQUEST_NULL && done_[h]) {
        requests_[h] = request, done_[h] = false;
        return Handle(h);
      }
    requests_.push_back(request);
    done_.push_back(false);
    return Handle(requests_.size() - 1);
  }

  bool test(Handle handle) override {
    if (done_[size_t(handle)]) return true;
    int flag = 0;
    MPI_Test(&requests_[size_t(handle)], &flag, MPI_STATUS_IGNORE);
    if (flag) done_[size_t(handle)] = true, ++finished_;
    return flag != 0;
  }

  void wait(Handle handle) override {
    if (done_[size_t(handle)]) return;
    MPI_Wait(&requests_[size_t(handle)], MPI_STATUS_IGNORE);
    done_[size_t(handle)] = true, ++finished_;
  }

  void sum(double* values, int64_t count) override {
    MPI_Allreduce(MPI_IN_PLACE, values, int(count), MPI_DOUBLE, MPI_SUM, comm_);
  }

  void broadcast(float* values, int64_t count, int root) override {
    MPI_Bcast(values, int(count), MPI_FLOAT, root, comm_);
  }

  int64_t finished_sums() const override { return finished_.load(); }

 private:
  int ranks_;
  MPI_Comm comm_;
  std::vector<MPI_Request> requests_;  // a handle indexes these; reused once done (MPI sets them to NULL)
  std::vector<bool> done_;
  std::atomic<int64_t> finished_{0};  // sums seen complete (by test or wait)
};

// nccl on the rank's device: the emulated build's over the emulated NCCL, the GPU build's over NCCL.
bool has_nccl(const Backend& device) {
#if defined(LIDARTRAIN_HAVE_NCCL)
  if (!device.host_memory) return true;
#endif
  return &device == &cuda_emu::backend();
}

std::unique_ptr<ReduceBackend> make_nccl(const Comm& comm, const Backend& device) {
  NcclSetup setup;
  setup.rank = comm.rank(), setup.ranks = comm.size();
  setup.broadcast_from_root = [comm](void* bytes, size_t size) {
    std::vector<int64_t> words((size + 7) / 8, 0);
    std::memcpy(words.data(), bytes, size);
    words = comm.broadcast(words, 0);
    std::memcpy(bytes, words.data(), size);
  };
  setup.fatal = [comm](const std::string& message) { comm.abort(kExitHung, message); };
  if (&device == &cuda_emu::backend()) return cuda_emu::make_nccl_reduce_backend(setup);
#if defined(LIDARTRAIN_HAVE_NCCL)
  return cuda::make_nccl_reduce_backend(setup);
#else
  throw InputError("nccl: this build has no NCCL");
#endif
}

// The kinds of reduce backend, by name (adding one: a line here and its own file).
struct ReduceKind {
  const char* name;
  bool (*serves)(const Backend& device);
  std::unique_ptr<ReduceBackend> (*make)(const Comm& comm, const Backend& device);
};
const ReduceKind kReduceKinds[] = {
    {"mpi", [](const Backend&) { return true; },
     [](const Comm& comm, const Backend&) { return make_mpi_reduce_backend(comm); }},
    {"nccl", has_nccl, make_nccl},
};

const ReduceKind* find_kind(const std::string& name) {
  for (const ReduceKind& kind : kReduceKinds)
    if (name == kind.name) return &kind;
  return nullptr;
}

}  // namespace

std::string reduce_backend_choices() {
  std::string choices = "auto";
  for (const ReduceKind& kind : kReduceKinds) choices += std::string(", ") + kind.name;
  return choices;
}

bool is_reduce_backend_choice(const std::string& name) {
  return name == "auto" || find_kind(name) != nullptr;
}

std::string resolve_reduce_backend(const std::string& name, const Backend& device, const std::string& key) {
  if (name == "auto") return has_nccl(device) ? "nccl" : "mpi";
  const ReduceKind* kind = find_kind(name);
  require(kind != nullptr, key + ": '" + name + "' is not one of " + reduce_backend_choices());
  require(kind->serves(device), key + "=" + name + " needs a CUDA device (train.device=cuda) in a build with NCCL; " +
                                    "this rank's device is " + device.name);
  return name;
}

std::unique_ptr<ReduceBackend> make_reduce_backend(const std::string& name, const Comm& comm, const Backend& device) {
  const ReduceKind* kind = find_kind(name);
  require(kind != nullptr, "no reduce backend '" + name + "'");
  return kind->make(comm, device);
}

std::unique_ptr<ReduceBackend> make_mpi_reduce_backend(const Comm& comm) {
  return std::make_unique<MpiReduceBackend>(comm);
}

}  // namespace lt
