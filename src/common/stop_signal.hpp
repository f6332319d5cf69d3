#pragma once
// SIGUSR1 and SIGTERM ask a long command (train, infer --data) to stop cleanly where it can: Slurm sends
// them before a preemption or the time limit. The handler only records the signal; the command polls.
namespace lt {

void install_stop_signals();
int stop_signal();               // the last signal received, 0 if none
const char* stop_signal_name();  // "SIGUSR1", "SIGTERM", "signal" or "" (none)

}  // namespace lt
