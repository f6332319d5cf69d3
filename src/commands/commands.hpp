#pragma once
// The subcommands of `lidartrain` (DESIGN.md §3). Each takes its own argv (argv[0] = its name) and
// returns the process exit code; bad input is thrown as InputError and reported by src/main.cpp.
#include "mpi/comm.hpp"

namespace lt {

int synth_main(int argc, char** argv, const Comm& comm);
int convert_main(int argc, char** argv, const Comm& comm);
int inspect_main(int argc, char** argv, const Comm& comm);
int train_main(int argc, char** argv, const Comm& comm);
int eval_main(int argc, char** argv, const Comm& comm);
int infer_main(int argc, char** argv, const Comm& comm);
int profile_main(int argc, char** argv, const Comm& comm);
int balance_main(int argc, char** argv, const Comm& comm);
int export_main(int argc, char** argv, const Comm& comm);

}  // namespace lt
