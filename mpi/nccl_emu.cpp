// The emulated NCCL (mpi/nccl_emu.hpp): NCCL's calls over MPI, in the emulated CUDA runtime's stream
// order. Only the emulated CUDA build uses it; the GPU build links NCCL itself.
#include "mpi/nccl_emu.hpp"

#include <mpi.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstring>
#include <memory>
#include <thread>
#include <vector>

struct ncclComm_emu {
  MPI_Comm comm = MPI_COMM_NULL;  // a duplicate of MPI_COMM_WORLD: its collectives match only each other
  int rank = 0, ranks = 1;
  std::atomic<bool> aborted{false};
  std::atomic<int> async_error{ncclSuccess};
};

namespace {

// The bytes of one element, and MPI's names for the type and the operation (0: not emulated).
size_t element_bytes(ncclDataType_t type) {
  return type == ncclFloat32 ? sizeof(float) : type == ncclFloat64 ? sizeof(double) : 0;
}
MPI_Datatype mpi_type(ncclDataType_t type) {
  return type == ncclFloat32 ? MPI_FLOAT : MPI_DOUBLE;
}
MPI_Op mpi_op(ncclRedOp_t op) {
  switch (op) {
    case ncclSum:
      return MPI_SUM;
    case ncclProd:
      return MPI_PROD;
    case ncclMax:
      return MPI_MAX;
    case ncclMin:
      return MPI_MIN;
    default:
      return MPI_OP_NULL;
  }
}

uint64_t fnv1a(const char* bytes, size_t n) {
  uint64_t hash = 1469598103934665603ull;
  for (size_t i = 0; i < n; ++i) hash = (hash ^ uint8_t(bytes[i])) * 1099511628211ull;
  return hash;
}

}  // namespace

ncclResult_t ncclGetUniqueId(ncclUniqueId* id) {
  if (!id) return ncclInvalidArgument;
  std::memset(id->internal, 0, sizeof id->internal);
  const long long stamp = std::chrono::steady_clock::now().time_since_epoch().count();
  std::snprintf(id->internal, sizeof id->internal, "lidartrain emulated nccl %d %lld", int(getpid()), stamp);
  return ncclSuccess;
}

ncclResult_t ncclCommInitRank(ncclComm_t* comm, int nranks, ncclUniqueId id, int rank) {
  int initialized = 0, world_rank = 0, world_size = 0;
  MPI_Initialized(&initialized);
  if (!comm || !initialized) return ncclInvalidUsage;
  MPI_Comm_rank(MPI_COMM_WORLD, &world_rank);
  MPI_Comm_size(MPI_COMM_WORLD, &world_size);
  auto made = std::make_unique<ncclComm_emu>();
  MPI_Comm_dup(MPI_COMM_WORLD, &made->comm);
  // Every rank must have been handed the same id (a real NCCL hangs or fails on a wrong one).
  const uint64_t hash = fnv1a(id.internal, sizeof id.internal);
  uint64_t low = hash, high = hash;
  MPI_Allreduce(MPI_IN_PLACE, &low, 1, MPI_UINT64_T, MPI_MIN, made->comm);
  MPI_Allreduce(MPI_IN_PLACE, &high, 1, MPI_UINT64_T, MPI_MAX, made->comm);
  if (low != high || nranks != world_size || rank != world_rank) {
    MPI_Comm_free(&made->comm);
    return ncclInvalidArgument;
  }
  made->rank = rank, made->ranks = nranks;
  *comm = made.release();
  return ncclSuccess;
}

ncclResult_t ncclCommDestroy(ncclComm_t comm) {
  if (!comm) return ncclInvalidArgument;
  cudaDeviceSynchronize();                // its queued collectives complete first, as ncclCommDestroy waits for them
  if (comm->aborted) return ncclSuccess;  // an aborted communicator is released by ncclCommAbort
  MPI_Comm_free(&comm->comm);
  delete comm;
  return ncclSuccess;
}

// From any thread: the collective waiting on a peer returns, the communicator reports the error. Its memory
// is kept (the stream's queued work may still refer to it); the process is about to end.
ncclResult_t ncclCommAbort(ncclComm_t comm) {
  if (!comm) return ncclInvalidArgument;
  comm->aborted = true;
  int expected = ncclSuccess;
  comm->async_error.compare_exchange_strong(expected, ncclSystemError);
  return ncclSuccess;
}

ncclResult_t ncclCommGetAsyncError(ncclComm_t comm, ncclResult_t* async_error) {
  if (!comm || !async_error) return ncclInvalidArgument;
  *async_error = ncclResult_t(comm->async_error.load());
  return ncclSuccess;
}

namespace {

// A collective (MPI_Iallreduce with `op`, or MPI_Ibcast from `root` when op is MPI_OP_NULL) started at
// the call, or at a graph's launch (`from_graph`), and completed at its turn in `stream` (see the header).
ncclResult_t start_collective(const void* sendbuff, void* recvbuff, size_t count, ncclDataType_t datatype, MPI_Op op,
                              int root, ncclComm_t comm, cudaStream_t stream, bool from_graph) {
  if (!comm || element_bytes(datatype) == 0) return ncclInvalidArgument;
  if (comm->aborted) return ncclInvalidUsage;
  // What a real NCCL cannot tell: every rank's k-th collective must have the same kind, count and type
  // (buckets posted in another order on one rank would sum unrelated gradients, or hang), and be a graph's
  // on every rank or on none (NCCL: whether a collective is captured must be uniform over the ranks).
  const long long kind = op == MPI_OP_NULL ? -1 - root : 1, graph = from_graph;
  long long shape[8] = {(long long)count, -(long long)count, datatype, -datatype, kind, -kind, graph, -graph};
  MPI_Allreduce(MPI_IN_PLACE, shape, 8, MPI_LONG_LONG, MPI_MAX, comm->comm);
  if (shape[0] != -shape[1] || shape[2] != -shape[3] || shape[4] != -shape[5] || shape[6] != -shape[7]) {
    comm->async_error = ncclInvalidUsage;
    return ncclInvalidUsage;
  }
  if (count == 0) return ncclSuccess;
  const size_t bytes = count * element_bytes(datatype);
  // The send buffer as stream order has it at this point, then the collective starts.
  cudaStreamSynchronize(stream);
  auto staged = std::make_shared<std::vector<char>>(static_cast<const char*>(sendbuff),
                                                    static_cast<const char*>(sendbuff) + bytes);
  auto request = std::make_shared<MPI_Request>(MPI_REQUEST_NULL);
  if (op == MPI_OP_NULL)
    MPI_Ibcast(staged->data(), int(count), mpi_type(datatype), root, comm->comm, request.get());
  else
    MPI_Iallreduce(MPI_IN_PLACE, staged->data(), int(count), mpi_type(datatype), op, comm->comm, request.get());
  // Its completion, at its turn in the stream: the receive buffer changes only then.
  lt::emu::submit(stream, [comm, staged, request, recvbuff, bytes] {
    int done = 0;
    while (!done) {
      if (comm->aborted) return;  // a peer that never came: left unfinished, the error is set
      MPI_Test(request.get(), &done, MPI_STATUS_IGNORE);
      if (!done) std::this_thread::sleep_for(std::chrono::microseconds(50));
    }
    std::memcpy(recvbuff, staged->data(), bytes);
  });
  return ncclSuccess;
}

// The collective now, or, on a stream being captured, a node of the graph that starts it at each launch
// (an error found then is the communicator's asynchronous error).
ncclResult_t collective(const void* sendbuff, void* recvbuff, size_t count, ncclDataType_t datatype, MPI_Op op,
                        int root, ncclComm_t comm, cudaStream_t stream) {
  if (!comm || element_bytes(datatype) == 0) return ncclInvalidArgument;
  const bool recorded = lt::emu::record_call(
      stream,
      [=](cudaStream_t launch_stream) {
        start_collective(sendbuff, recvbuff, count, datatype, op, root, comm, launch_stream, true);
      },
      {sendbuff, recvbuff}, "an NCCL collective");
  return recorded ? ncclSuccess : start_collective(sendbuff, recvbuff, count, datatype, op, root, comm, stream, false);
}

}  // namespace

ncclResult_t ncclAllReduce(const void* sendbuff, void* recvbuff, size_t count, ncclDataType_t datatype, ncclRedOp_t op,
                           ncclComm_t comm, cudaStream_t stream) {
  if (mpi_op(op) == MPI_OP_NULL) return ncclInvalidArgument;
  return collective(sendbuff, recvbuff, count, datatype, mpi_op(op), 0, comm, stream);
}

ncclResult_t ncclBroadcast(const void* sendbuff, void* recvbuff, size_t count, ncclDataType_t datatype, int root,
                           ncclComm_t comm, cudaStream_t stream) {
  if (!comm || root < 0 || root >= comm->ranks) return ncclInvalidArgument;
  return collective(sendbuff, recvbuff, count, datatype, MPI_OP_NULL, root, comm, stream);
}

// Group calls: the emulated collectives are matched in call order without them.
ncclResult_t ncclGroupStart() {
  return ncclSuccess;
}
ncclResult_t ncclGroupEnd() {
  return ncclSuccess;
}

const char* ncclGetErrorString(ncclResult_t result) {
  switch (result) {
    case ncclSuccess:
      return "no error";
    case ncclSystemError:
      return "unhandled system error (emulated: the communicator was aborted)";
    case ncclInvalidArgument:
      return "invalid argument";
    case ncclInvalidUsage:
      return "invalid usage (emulated: the ranks' collectives differ in count or type, e.g. buckets posted in "
             "another order on one rank, or one rank's is a graph's and another's is not)";
    case ncclRemoteError:
      return "remote process exited or there was a network error";
    default:
      return "internal error";
  }
}
