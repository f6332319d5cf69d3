#include "src/train/threads.hpp"

#include <omp.h>
#include <sched.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <thread>

namespace lt {

int cpus_allowed() {
  cpu_set_t set;
  CPU_ZERO(&set);
  if (sched_getaffinity(0, sizeof set, &set) != 0) return int(std::max(1u, std::thread::hardware_concurrency()));
  return std::max(1, CPU_COUNT(&set));
}

void set_threads_per_rank(int threads, const Comm& comm) {
  const int allowed = cpus_allowed();
  if (threads > 0) {
    omp_set_num_threads(threads);
  } else if (!std::getenv("OMP_NUM_THREADS")) {
    const int cores = int(std::max(1u, std::thread::hardware_concurrency()));
    omp_set_num_threads(std::max(1, std::min(allowed, cores / comm.local_size())));
  }
  const int wanted = omp_get_max_threads();
  if (wanted > allowed) {
    std::fprintf(stderr,
                 "lidartrain train: warning: [rank %d] %d OpenMP threads asked for (train.threads or "
                 "OMP_NUM_THREADS) but this rank may use %d CPU(s): using %d; for more, start it with "
                 "mpirun --bind-to none (or --map-by slot:PE=%d)\n",
                 comm.rank(), wanted, allowed, allowed, wanted);
    omp_set_num_threads(allowed);
  }
}

}  // namespace lt
