#include "mpi/reduce_backend.hpp"

#include <mpi.h>

#include <vector>

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
    done_[size_t(handle)] = flag != 0;
    return flag != 0;
  }

  void wait(Handle handle) override {
    if (!done_[size_t(handle)]) MPI_Wait(&requests_[size_t(handle)], MPI_STATUS_IGNORE);
    done_[size_t(handle)] = true;
  }

  void sum(double* values, int64_t count) override {
    MPI_Allreduce(MPI_IN_PLACE, values, int(count), MPI_DOUBLE, MPI_SUM, comm_);
  }

 private:
  int ranks_;
  MPI_Comm comm_;
  std::vector<MPI_Request> requests_;  // a handle indexes these; reused once done (MPI sets them to NULL)
  std::vector<bool> done_;
};

}  // namespace

std::unique_ptr<ReduceBackend> make_mpi_reduce_backend(const Comm& comm) {
  return std::make_unique<MpiReduceBackend>(comm);
}

}  // namespace lt
