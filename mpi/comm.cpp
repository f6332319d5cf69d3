#include "mpi/comm.hpp"

#include <mpi.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <optional>

#include "src/common/error.hpp"

namespace lt {

void Comm::init(int* argc, char*** argv) {
  int provided = 0;
  // FUNNELED: only the main thread calls MPI (the loader thread and OpenMP workers never do).
  MPI_Init_thread(argc, argv, MPI_THREAD_FUNNELED, &provided);
  MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_ARE_FATAL);
}

void Comm::finalize() {
  int finalized = 0;
  MPI_Finalized(&finalized);
  if (!finalized) MPI_Finalize();
}

bool Comm::initialized() {
  int flag = 0;
  MPI_Initialized(&flag);
  return flag != 0;
}

Comm Comm::world() {
  int rank = 0, size = 1;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  MPI_Comm_size(MPI_COMM_WORLD, &size);
  return Comm(rank, size);
}

void Comm::barrier() const {
  MPI_Barrier(MPI_COMM_WORLD);
}

bool Comm::all_ok(bool ok) const {
  int mine = ok ? 1 : 0, all = 0;
  MPI_Allreduce(&mine, &all, 1, MPI_INT, MPI_LAND, MPI_COMM_WORLD);
  return all != 0;
}

int64_t Comm::sum(int64_t value) const {
  int64_t total = 0;
  MPI_Allreduce(&value, &total, 1, MPI_INT64_T, MPI_SUM, MPI_COMM_WORLD);
  return total;
}

std::vector<int64_t> Comm::sum(const std::vector<int64_t>& values) const {
  std::vector<int64_t> totals(values.size());
  MPI_Allreduce(values.data(), totals.data(), int(values.size()), MPI_INT64_T, MPI_SUM, MPI_COMM_WORLD);
  return totals;
}

int Comm::min(int value) const {
  int result = 0;
  MPI_Allreduce(&value, &result, 1, MPI_INT, MPI_MIN, MPI_COMM_WORLD);
  return result;
}

double Comm::max(double value) const {
  double result = 0;
  MPI_Allreduce(&value, &result, 1, MPI_DOUBLE, MPI_MAX, MPI_COMM_WORLD);
  return result;
}

void Comm::sum_in_place(float* values, int64_t count) const {
  // MPI counts are int: large buffers go in slices.
  constexpr int64_t kSlice = int64_t(1) << 30;
  for (int64_t first = 0; first < count; first += kSlice)
    MPI_Allreduce(MPI_IN_PLACE, values + first, int(std::min(kSlice, count - first)), MPI_FLOAT, MPI_SUM,
                  MPI_COMM_WORLD);
}

void Comm::sum_in_place(double* values, int64_t count) const {
  MPI_Allreduce(MPI_IN_PLACE, values, int(count), MPI_DOUBLE, MPI_SUM, MPI_COMM_WORLD);
}

void Comm::broadcast_in_place(float* values, int64_t count, int root) const {
  MPI_Bcast(values, int(count), MPI_FLOAT, root, MPI_COMM_WORLD);
}

std::vector<int64_t> Comm::broadcast(std::vector<int64_t> values, int root) const {
  MPI_Bcast(values.data(), int(values.size()), MPI_INT64_T, root, MPI_COMM_WORLD);
  return values;
}

void Comm::abort(int exit_code, const std::string& message) const {
  std::fprintf(stderr, "lidartrain: [rank %d] fatal: %s\n", rank_, message.c_str());
  std::fflush(stderr);
  MPI_Abort(MPI_COMM_WORLD, exit_code);
  std::abort();
}

void run_agreed(const Comm& comm, const std::function<void()>& step, const std::function<void()>& on_failure) {
  std::optional<std::string> error;
  try {
    step();
  } catch (const InputError& e) {
    error = e.what();
  }
  // The lowest failing rank reports (one error line for the job); every other rank exits quietly.
  const int reporting_rank = comm.min(error ? comm.rank() : comm.size());
  if (reporting_rank == comm.size()) return;
  if (on_failure) on_failure();
  if (comm.rank() == reporting_rank) throw RankError(comm.rank(), *error);
  throw PeerFailed();
}

}  // namespace lt
