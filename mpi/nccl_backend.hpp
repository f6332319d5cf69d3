#pragma once
// The NCCL reduce backend (mpi/nccl_backend.cu), built for the GPU with NCCL (lt::cuda, when CMake found
// NCCL: LIDARTRAIN_HAVE_NCCL) and for the emulated CUDA build over the emulated NCCL (lt::cuda_emu,
// always). mpi/reduce_backend.cpp picks the one of the rank's device; nothing else includes this.
#include <cstddef>
#include <functional>
#include <memory>
#include <string>

#include "mpi/reduce_backend.hpp"

namespace lt {

struct NcclSetup {
  int rank = 0, ranks = 1;
  // Sends rank 0's bytes to every rank (the ncclUniqueId goes over MPI, as NCCL's examples do).
  std::function<void(void* bytes, size_t size)> broadcast_from_root;
  // Ends the job on an asynchronous NCCL error (a collective that failed): one line naming this rank.
  std::function<void(const std::string& message)> fatal;
};

namespace cuda {
std::unique_ptr<ReduceBackend> make_nccl_reduce_backend(const NcclSetup& setup);
std::string nccl_version();  // of the library loaded ("2.28.3")
}  // namespace cuda
namespace cuda_emu {
std::unique_ptr<ReduceBackend> make_nccl_reduce_backend(const NcclSetup& setup);
}

}  // namespace lt
