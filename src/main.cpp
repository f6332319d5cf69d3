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
  const char* summary;
  const char* modes[3];  // its synopses, one per way of calling it (unused ones null)
};

constexpr Command kCommands[] = {
    {"synth",
     lt::synth_main,
     "procedural LiDAR scenes",
     {"--out DIR --frames N [--shards K] [--seed S] [--skew X] [--no-camera]"}},
    {"convert",
     lt::convert_main,
     "raw frames to a dataset",
     {"--format semantickitti|kitti|nuscenes --in RAW --out DIR [--shards K] [--label-map FILE]"}},
    {"train",
     lt::train_main,
     "train a model",
     {"--config CFG [--data DIR] [--run-dir DIR] [--resume auto|none|CKPT] [--timeout S]"}},
    {"eval",
     lt::eval_main,
     "mIoU / AP of a checkpoint, or of stored predictions",
     {"--checkpoint CKPT --data DIR [--iou T] [--json FILE]", "--predictions OUT --data DIR [--iou T] [--json FILE]"}},
    {"infer",
     lt::infer_main,
     "a model on one frame, or on a whole dataset",
     {"--checkpoint CKPT --input FRAME.bin [--out FILE] [--calib CALIB.txt [--image-size WxH]] [--bench N]",
      "--checkpoint CKPT --data DIR --out OUT [--boxes auto|label_2|lidar] [--force]"}},
    {"inspect",
     lt::inspect_main,
     "human summary of a dataset or a checkpoint",
     {"DATASET_DIR|SHARD.h5 [--json FILE]", "CKPT.h5 [--json FILE]"}},
    {"profile",
     lt::profile_main,
     "params, MACs, fwd/bwd time per layer",
     {"--config CFG [--points N | --input FRAME.bin] [--repeat R]"}},
    {"balance", lt::balance_main, "predicted imbalance per strategy", {"--data DIR --ranks R[,R…] [--batch B]"}},
    {"export", lt::export_main, "a dataset as a KITTI directory", {"--format kitti --data DIR --out DIR [--force]"}},
};

void print_usage(FILE* out) {
  std::fprintf(out, "Usage: lidartrain <command> [options]   (lidartrain <command> --help for its options)\n\n");
  for (const Command& c : kCommands) {
    std::fprintf(out, "  %-8s %s\n", c.name, c.summary);
    for (const char* mode : c.modes)
      if (mode) std::fprintf(out, "    lidartrain %s %s\n", c.name, mode);
  }
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
