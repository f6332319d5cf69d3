#pragma once
// The NCCL calls mpi/nccl_backend.cu makes, emulated over MPI for the emulated CUDA build (host C++), so
// that the NCCL backend's own source runs in CI on emulated GPUs, multi-rank included. Names, types and
// enum values are NCCL's (nccl.h 2.x).
//
// Semantics kept: a collective is queued on its stream and its result appears in the receive buffer at
// its turn in stream order (so a reader on another stream without the event wait reads the old contents,
// as the lazy stream schedule makes sure); collectives of one communicator are matched in call order on
// every rank; ncclCommAbort, from any thread, ends a collective that waits on a peer, and the
// communicator's asynchronous error then says so. Stricter than NCCL: ranks whose matched collectives
// differ in count or type, or are captured in a graph on one rank and not on another, get ncclInvalidUsage
// (a real NCCL hangs or sums unrelated data).
//
// How: the call checks the shape with the other ranks (a blocking MPI_Allreduce), drains its stream (so
// the send buffer holds what stream order says), copies the send buffer and starts MPI_Iallreduce (MPI_Ibcast) on the
// communicator's own duplicate of MPI_COMM_WORLD, at the call, in call order; the piece of work queued on
// the stream completes it (MPI_Test until done or aborted) and writes the receive buffer. Free of deadlock
// whatever the host does next: the ranks make the same MPI calls in the same order, so when one blocks
// (the shape check, a completion, any collective of the host), every peer has started, or will start
// before its own next blocking call, what it waits for; and any MPI call progresses what was started.
//
// Captured in a graph (on a stream being captured), a collective is recorded as a call that each launch of
// the graph makes again at its turn among the graph's nodes, on the launch's stream (lt::emu::record_call),
// so it starts in launch order, as the ranks' graph launches are in call order.
#include <cstddef>

#include "kernels/cuda/emu/cuda_emu.hpp"

#define NCCL_UNIQUE_ID_BYTES 128
typedef struct {
  char internal[NCCL_UNIQUE_ID_BYTES];
} ncclUniqueId;
typedef enum {
  ncclSuccess = 0,
  ncclUnhandledCudaError = 1,
  ncclSystemError = 2,
  ncclInternalError = 3,
  ncclInvalidArgument = 4,
  ncclInvalidUsage = 5,
  ncclRemoteError = 6,
  ncclInProgress = 7
} ncclResult_t;
typedef enum { ncclSum = 0, ncclProd = 1, ncclMax = 2, ncclMin = 3, ncclAvg = 4 } ncclRedOp_t;
typedef enum { ncclFloat32 = 7, ncclFloat = 7, ncclFloat64 = 8, ncclDouble = 8 } ncclDataType_t;
typedef struct ncclComm_emu* ncclComm_t;

ncclResult_t ncclGetUniqueId(ncclUniqueId* id);
// Collective over every rank of MPI_COMM_WORLD (the emulation's communicators span the world).
ncclResult_t ncclCommInitRank(ncclComm_t* comm, int nranks, ncclUniqueId id, int rank);
ncclResult_t ncclCommDestroy(ncclComm_t comm);
ncclResult_t ncclCommAbort(ncclComm_t comm);
ncclResult_t ncclCommGetAsyncError(ncclComm_t comm, ncclResult_t* async_error);
ncclResult_t ncclAllReduce(const void* sendbuff, void* recvbuff, size_t count, ncclDataType_t datatype, ncclRedOp_t op,
                           ncclComm_t comm, cudaStream_t stream);
ncclResult_t ncclBroadcast(const void* sendbuff, void* recvbuff, size_t count, ncclDataType_t datatype, int root,
                           ncclComm_t comm, cudaStream_t stream);
ncclResult_t ncclGroupStart();
ncclResult_t ncclGroupEnd();
const char* ncclGetErrorString(ncclResult_t result);
