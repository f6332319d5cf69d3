#pragma once
// Errors are values at the edges, aborts in the core (STYLE.md). Anything that comes from outside —
// a file, a config key, a command-line value — is checked where it enters and reported by throwing
// InputError with one line that names the file, frame or key. The command wrappers in src/main.cpp
// turn it into "lidartrain <cmd>: error: <line>" and a non-zero exit.
#include <stdexcept>
#include <string>
#include <utility>

namespace lt {

struct InputError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

// An InputError seen by one rank only (its own frame, its own file): printed by that rank, with its
// rank number. A plain InputError is the same on every rank (a bad option) and only rank 0 prints it.
struct RankError : InputError {
  RankError(int rank, const std::string& message) : InputError(message), rank(rank) {}
  int rank;
};

// An output could not be written: a full disk, a directory without write permission, an I/O error.
// The message names the file, the operation and the OS error ("…/ckpt-00000012.h5.tmp: write failed:
// No space left on device"); whoever knows what is still good adds it (`with_context`). Once the ranks
// have agreed on it (run_agreed), `ranks` says which of them saw it and rank 0 alone prints it; the
// process exits kExitWriteFailed, whatever rank it is.
struct WriteError : InputError {
  explicit WriteError(const std::string& message, std::string ranks = "")
      : InputError(message), ranks(std::move(ranks)) {}
  // "<path>: <operation> failed: <strerror(errnum)>".
  static WriteError os(const std::string& path, const std::string& operation, int errnum);
  // The same error with "; <context>" after it.
  WriteError with_context(const std::string& context) const;
  bool agreed() const { return !ranks.empty(); }
  std::string ranks;  // "rank 0", "ranks 0, 1": who saw it; empty until the ranks agreed on it
};

// Thrown on the ranks that did nothing wrong when another rank reported an InputError during a
// collective phase: that rank prints the one error line, these exit non-zero quietly, with the exit
// code of the failure (kExitWriteFailed for a WriteError).
struct PeerFailed : std::runtime_error {
  explicit PeerFailed(int exit_code = 1) : std::runtime_error("another rank failed"), exit_code(exit_code) {}
  int exit_code;
};

// Throws InputError(message) when the condition does not hold.
void require(bool condition, const std::string& message);

// Exit codes that scripts (and Slurm) rely on; documented in README.md.
enum ExitCode : int {
  kExitOk = 0,
  kExitInputError = 1,    // bad file, config, command line
  kExitHung = 3,          // the watchdog ended the job: a phase outlasted train --timeout
  kExitDiverged = 4,      // a step's loss or gradient norm was not finite (train.on_nonfinite): no checkpoint written
  kExitWriteFailed = 74,  // an output could not be written (disk full, permission, I/O error): nothing half-written,
                          // LATEST untouched (EX_IOERR)
  kExitRequeue = 75,      // train checkpointed on SIGUSR1/SIGTERM or train.max_time: please requeue (EX_TEMPFAIL)
};

}  // namespace lt
