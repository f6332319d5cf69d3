#pragma once
// The MPI communicator itself, for the one library that needs it: parallel HDF5's MPI-IO file driver
// (io/ writes checkpoints collectively). Everything else talks between ranks through mpi/comm.hpp.
#include <mpi.h>

namespace lt {

inline MPI_Comm world_communicator() {
  return MPI_COMM_WORLD;
}

}  // namespace lt
