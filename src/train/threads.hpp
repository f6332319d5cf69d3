#pragma once
// Thread placement of a rank (README "Threads"): OpenMP threads per rank, never more than its CPUs.
#include "mpi/comm.hpp"

namespace lt {

// The CPUs this process may run on (mpirun binds each rank to one core when ranks <= cores).
int cpus_allowed();

// train.threads, or OMP_NUM_THREADS, or the node's cores shared by the ranks on it, at most the CPUs
// this rank may use (so that 2 ranks on a 2-core node do not run 4 threads): more threads than those CPUs
// are capped, with a warning (OpenMP threads spinning at barriers on one core can be 50× slower).
void set_threads_per_rank(int threads, const Comm& comm);

}  // namespace lt
