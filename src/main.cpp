// lidartrain: one SPMD executable, started by srun, mpirun or as a single process (DESIGN.md §3).
#include <boost/program_options/errors.hpp>
#include <cstdio>
#include <filesystem>
#include <string>

#include "kernels/cuda/device.hpp"
#include "mpi/comm.hpp"
#include "src/commands/commands.hpp"
#include "src/common/allocator.hpp"
#include "src/common/error.hpp"
#include "src/train/provenance.hpp"
#include "version.hpp"

namespace {

using CommandMain = int (*)(int, char**, const lt::Comm&);

struct Command {
  const char* name;
  CommandMain run;
  const char* synopsis;
  const char* summary;
};

constexpr Command kCommands[] = {
    {"synth", lt::synth_main, "--out DIR --frames N [--shards K] [--seed S] [--skew X]", "procedural LiDAR scenes"},
    {"convert", lt::convert_main, "--format semantickitti|kitti|nuscenes --in RAW --out DIR",
     "raw frames to a dataset"},
    {"train", lt::train_main, "--config CFG [--data DIR] [--run-dir DIR] [--resume auto|none|PATH]", "train a model"},
    {"eval", lt::eval_main, "--checkpoint CKPT --data DIR [--json FILE]", "mIoU / AP of a checkpoint"},
    {"infer", lt::infer_main, "--checkpoint CKPT --input FRAME.bin [--out FILE] [--bench N]",
     "run a model on one frame"},
    {"inspect", lt::inspect_main, "DATASET_DIR [--json FILE]", "human summary of a dataset"},
    {"profile", lt::profile_main, "--config CFG", "params, MACs, fwd/bwd time per layer"},
    {"balance", lt::balance_main, "--data DIR --ranks R[,R…] [--batch B]", "predicted imbalance per strategy"},
};

void print_usage(FILE* out) {
  std::fprintf(out, "Usage: lidartrain <command> [options]   (lidartrain <command> --help for its options)\n\n");
  for (const Command& c : kCommands) std::fprintf(out, "  %-8s %-72s %s\n", c.name, c.synopsis, c.summary);
  std::fprintf(out, "\n  --version   version, git SHA and CUDA status\n");
}

int run_command(const Command& command, int argc, char** argv, const lt::Comm& comm) {
  const std::string prefix = std::string("lidartrain ") + command.name + ": ";
  try {
    return command.run(argc, argv, comm);
  } catch (const lt::WriteError& e) {
    // Agreed: rank 0 alone holds it, with the ranks that saw it; else the rank that met it.
    const std::string who = e.agreed() ? e.ranks : "rank " + std::to_string(comm.rank());
    if (comm.size() > 1)
      std::fprintf(stderr, "%serror: [%s] %s\n", prefix.c_str(), who.c_str(), e.what());
    else
      std::fprintf(stderr, "%serror: %s\n", prefix.c_str(), e.what());
    return lt::kExitWriteFailed;
  } catch (const lt::RankError& e) {
    if (comm.size() > 1)
      std::fprintf(stderr, "%serror: [rank %d] %s\n", prefix.c_str(), e.rank, e.what());
    else
      std::fprintf(stderr, "%serror: %s\n", prefix.c_str(), e.what());
  } catch (const lt::PeerFailed& e) {
    // Another rank printed the error.
    return e.exit_code;
  } catch (const lt::InputError& e) {
    if (comm.is_root()) std::fprintf(stderr, "%serror: %s\n", prefix.c_str(), e.what());
  } catch (const boost::program_options::error& e) {
    if (comm.is_root()) std::fprintf(stderr, "%serror: %s\n", prefix.c_str(), e.what());
  } catch (const std::filesystem::filesystem_error& e) {  // e.g. a directory we may not write: names the path
    std::fprintf(stderr, "%serror: [rank %d] %s\n", prefix.c_str(), comm.rank(), e.what());
  }
  return lt::kExitInputError;
}

}  // namespace

int main(int argc, char** argv) {
  lt::keep_freed_memory();
  lt::set_command_line(argc, argv);  // before MPI_Init may take its own arguments out
  lt::Comm::init(&argc, &argv);
  const lt::Comm comm = lt::Comm::world();
  int exit_code = lt::kExitOk;
  const std::string first = argc > 1 ? argv[1] : "";
  if (first == "--version") {
    if (comm.is_root())
      std::printf("lidartrain %s (git %s)\n%s, %s\n", lt::kVersion, lt::kGitSha, lt::cuda_summary().c_str(),
                  lt::cudnn_summary().c_str());
  } else if (first == "--help" || first == "-h") {
    if (comm.is_root()) print_usage(stdout);
  } else {
    const Command* command = nullptr;
    for (const Command& c : kCommands)
      if (first == c.name) command = &c;
    if (command) {
      exit_code = run_command(*command, argc - 1, argv + 1, comm);
    } else {
      if (comm.is_root()) {
        if (first.empty())
          print_usage(stderr);
        else
          std::fprintf(stderr, "lidartrain: error: unknown command '%s' (see lidartrain --help)\n", first.c_str());
      }
      exit_code = lt::kExitInputError;
    }
  }
  lt::Comm::finalize();
  return exit_code;
}
