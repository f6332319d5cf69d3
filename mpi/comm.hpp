#pragma once
// Everything that talks between ranks goes through here (STYLE.md): the rest of the program sees
// ranks and collectives, never MPI types. Rank 0 prints; other ranks print only their own errors.
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

namespace lt {

class Comm {
 public:
  // MPI_Init_thread at program start, MPI_Finalize at exit; a process started without mpirun/srun
  // is a world of one rank.
  static void init(int* argc, char*** argv);
  static void finalize();
  static bool initialized();

  static Comm world();

  int rank() const { return rank_; }
  int size() const { return size_; }
  bool is_root() const { return rank_ == 0; }
  // This rank among the ranks of its node (MPI_Comm_split_type shared memory): picks the GPU, and
  // divides the node's cores between ranks.
  int local_rank() const { return local_rank_; }
  int local_size() const { return local_size_; }

  void barrier() const;
  // True on every rank iff `ok` is true on every rank: how ranks agree that a phase succeeded
  // before anything is published (a dataset renamed into place, a checkpoint made LATEST).
  bool all_ok(bool ok) const;
  int64_t sum(int64_t value) const;
  std::vector<int64_t> sum(const std::vector<int64_t>& values) const;
  int min(int value) const;
  double max(double value) const;
  // Element-wise minimum, mean and maximum over ranks (two all-reduces).
  struct Spread {
    std::vector<double> min, mean, max;
  };
  Spread spread(const std::vector<double>& values) const;
  // Rank `root`'s text, everywhere.
  std::string broadcast_text(std::string text, int root) const;
  // Every rank's text, in rank order, on `root` (empty elsewhere).
  std::vector<std::string> gather_text(const std::string& text, int root) const;
  // In-place sums over ranks, in MPI's reduction order (the same on every rank for a fixed rank count).
  void sum_in_place(float* values, int64_t count) const;
  void sum_in_place(double* values, int64_t count) const;
  // Rank `root`'s values everywhere, in place.
  void broadcast_in_place(float* values, int64_t count, int root) const;
  // Rank `root`'s values, everywhere (sizes must agree).
  std::vector<int64_t> broadcast(std::vector<int64_t> values, int root) const;
  // Ends every rank of the job: for broken invariants and hangs, never for bad input.
  [[noreturn]] void abort(int exit_code, const std::string& message) const;

 private:
  Comm(int rank, int size, int local_rank, int local_size)
      : rank_(rank), size_(size), local_rank_(local_rank), local_size_(local_size) {}
  int rank_ = 0, size_ = 1;
  int local_rank_ = 0, local_size_ = 1;
};

// "Open MPI v4.1.4": the MPI library this process runs with (provenance).
std::string mpi_library_version();
// The name of this rank's host, as MPI knows it (provenance).
std::string processor_name();

// Runs `step` on every rank, then agrees (one all-reduce) whether it succeeded everywhere. If not,
// `on_failure` runs on every rank and every rank leaves with an exception, so a bad frame or file ends
// every rank, never a hang: when all failing ranks failed with the same message (a config error seen
// everywhere) the lowest of them rethrows it as a RankError and the rest throw PeerFailed, so the job
// prints one line; when they differ (a dataset missing on rank 1 only, a frame of one rank's batch)
// every failing rank rethrows its own as a RankError. Ranks that did not fail throw PeerFailed.
// A WriteError on any rank (a full disk, say) takes precedence: rank 0 throws a WriteError with the first
// such message and the ranks that saw one, every other rank PeerFailed(kExitWriteFailed).
void run_agreed(const Comm& comm, const std::function<void()>& step, const std::function<void()>& on_failure = {});

}  // namespace lt
