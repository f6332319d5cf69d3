#include "mpi/comm.hpp"

#include <mpi.h>

#include <algorithm>
#include <climits>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <optional>

#include "src/common/error.hpp"

namespace lt {
namespace {
int g_local_rank = 0, g_local_size = 1;
}  // namespace

void Comm::init(int* argc, char*** argv) {
  int provided = 0;
  // The main thread makes every collective; the watchdog thread may call MPI_Abort while the main
  // thread is blocked in one, which needs MPI_THREAD_MULTIPLE (Open MPI provides it).
  MPI_Init_thread(argc, argv, MPI_THREAD_MULTIPLE, &provided);
  MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_ARE_FATAL);
  MPI_Comm node;
  MPI_Comm_split_type(MPI_COMM_WORLD, MPI_COMM_TYPE_SHARED, 0, MPI_INFO_NULL, &node);
  MPI_Comm_rank(node, &g_local_rank);
  MPI_Comm_size(node, &g_local_size);
  MPI_Comm_free(&node);
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
  return Comm(rank, size, g_local_rank, g_local_size);
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

Comm::Spread Comm::spread(const std::vector<double>& values) const {
  const size_t n = values.size();
  std::vector<double> signed_values(2 * n), extremes(2 * n);
  for (size_t i = 0; i < n; ++i) signed_values[i] = values[i], signed_values[n + i] = -values[i];
  MPI_Allreduce(signed_values.data(), extremes.data(), int(2 * n), MPI_DOUBLE, MPI_MAX, MPI_COMM_WORLD);
  Spread result;
  result.mean.resize(n);
  MPI_Allreduce(values.data(), result.mean.data(), int(n), MPI_DOUBLE, MPI_SUM, MPI_COMM_WORLD);
  for (size_t i = 0; i < n; ++i) {
    result.max.push_back(extremes[i]);
    result.min.push_back(-extremes[n + i]);
    result.mean[i] /= size_;
  }
  return result;
}

std::string Comm::broadcast_text(std::string text, int root) const {
  int64_t length = int64_t(text.size());
  MPI_Bcast(&length, 1, MPI_INT64_T, root, MPI_COMM_WORLD);
  text.resize(size_t(length));
  MPI_Bcast(text.data(), int(length), MPI_CHAR, root, MPI_COMM_WORLD);
  return text;
}

std::vector<std::string> Comm::gather_text(const std::string& text, int root) const {
  int length = int(text.size());
  std::vector<int> lengths(static_cast<size_t>(size_)), displacements(static_cast<size_t>(size_), 0);
  MPI_Gather(&length, 1, MPI_INT, lengths.data(), 1, MPI_INT, root, MPI_COMM_WORLD);
  for (int r = 1; r < size_; ++r) displacements[size_t(r)] = displacements[size_t(r) - 1] + lengths[size_t(r) - 1];
  std::string all(rank_ == root ? size_t(displacements.back() + lengths.back()) : 0, '\0');
  MPI_Gatherv(text.data(), length, MPI_CHAR, all.data(), lengths.data(), displacements.data(), MPI_CHAR, root,
              MPI_COMM_WORLD);
  std::vector<std::string> texts;
  if (rank_ == root)
    for (int r = 0; r < size_; ++r)
      texts.push_back(all.substr(size_t(displacements[size_t(r)]), size_t(lengths[size_t(r)])));
  return texts;
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

std::string mpi_library_version() {
  char text[MPI_MAX_LIBRARY_VERSION_STRING];
  int length = 0;
  MPI_Get_library_version(text, &length);
  const std::string version(text, size_t(length));
  return version.substr(0, version.find_first_of(",\n"));
}

std::string processor_name() {
  char host[MPI_MAX_PROCESSOR_NAME];
  int length = 0;
  MPI_Get_processor_name(host, &length);
  return std::string(host, size_t(length));
}

void run_agreed(const Comm& comm, const std::function<void()>& step, const std::function<void()>& on_failure) {
  std::optional<std::string> error;
  bool write_error = false;
  try {
    step();
  } catch (const WriteError& e) {
    error = e.what();
    write_error = true;
  } catch (const InputError& e) {
    error = e.what();
  }
  const int lowest_failing = comm.min(error ? comm.rank() : comm.size());
  if (lowest_failing == comm.size()) return;
  if (comm.max(write_error ? 1.0 : 0.0) > 0) {
    // An output that could not be written: rank 0 reports it, with the ranks that saw it, whichever
    // they were; every rank exits with kExitWriteFailed.
    const std::vector<std::string> messages = comm.gather_text(write_error ? *error : "", 0);
    if (on_failure) on_failure();
    if (!comm.is_root()) throw PeerFailed(kExitWriteFailed);
    std::string first, ranks;
    int count = 0;
    for (int r = 0; r < comm.size(); ++r) {
      if (messages[size_t(r)].empty()) continue;
      if (first.empty()) first = messages[size_t(r)];
      ranks += (count++ ? ", " : "") + std::to_string(r);
    }
    throw WriteError(first, (count > 1 ? "ranks " : "rank ") + ranks);
  }
  // Do the failing ranks agree on the message? (A hash of it: its minimum and maximum over them.)
  const int64_t hash = error ? int64_t(std::hash<std::string>{}(*error) >> 2) : -1;
  const Comm::Spread spread = comm.spread({double(hash), double(error ? hash : INT64_MAX >> 2)});
  const bool same_everywhere = spread.max[0] == spread.min[1];
  if (on_failure) on_failure();
  if (error && (comm.rank() == lowest_failing || !same_everywhere)) throw RankError(comm.rank(), *error);
  throw PeerFailed();
}

}  // namespace lt
