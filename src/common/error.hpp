#pragma once
// Errors are values at the edges, aborts in the core (STYLE.md). Anything that comes from outside —
// a file, a config key, a command-line value — is checked where it enters and reported by throwing
// InputError with one line that names the file, frame or key. The command wrappers in src/main.cpp
// turn it into "lidartrain <cmd>: error: <line>" and a non-zero exit.
#include <stdexcept>
#include <string>

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

// Thrown on the ranks that did nothing wrong when another rank reported an InputError during a
// collective phase: that rank prints the one error line, these exit non-zero quietly.
struct PeerFailed : std::runtime_error {
  PeerFailed() : std::runtime_error("another rank failed") {}
};

// Throws InputError(message) when the condition does not hold.
void require(bool condition, const std::string& message);

// Exit codes that scripts (and Slurm) rely on; documented in README.md.
enum ExitCode : int {
  kExitOk = 0,
  kExitInputError = 1,  // bad file, config, command line
  kExitHung = 3,        // the watchdog ended the job: a phase outlasted train --timeout
  kExitDiverged = 4,    // a step's loss or gradient norm was not finite (train.on_nonfinite): no checkpoint written
  kExitRequeue = 75,    // train checkpointed on SIGUSR1/SIGTERM or train.max_time: please requeue (EX_TEMPFAIL)
};

}  // namespace lt
