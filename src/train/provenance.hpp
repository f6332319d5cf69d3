#pragma once
// What produced a checkpoint (DESIGN.md §8, issue 14): the code (git commit, dirty or not), the build
// (compiler, flags), the libraries (Open MPI, HDF5, Eigen, Boost, CUDA, cuDNN, NCCL), the run (command
// line, world size, host names) and the dataset's identity. Written into every checkpoint, printed by
// `inspect`; `train --resume` and `eval` warn when the code or the dataset differs from a checkpoint's.
#include <string>
#include <vector>

#include "io/dataset.hpp"
#include "mpi/comm.hpp"

namespace lt {

// The process's command line, as main() received it (each argument shell-quoted when it needs it).
void set_command_line(int argc, char** argv);
const std::string& command_line();

// A dataset's identity: 16 hex digits over its shards' fingerprints (file names, frame ids, point and
// box counts, costs: what DatasetReader reads at open, so nothing is read again) and its frame count.
// The same frames in the same shards give the same identity wherever the copy lives.
std::string dataset_identity(const DatasetReader& reader);

// "git <sha>", and " with uncommitted change <hash>" when the tracked files differed from it at build time.
std::string code_identity(const std::string& git_sha, const std::string& git_diff);

// The provenance of this run as one JSON object (collective: every rank of `comm` calls it; the host
// names are gathered). `dataset_dir` and `dataset_id` name the training data.
std::string provenance_json(const Comm& comm, const std::string& dataset_dir, const std::string& dataset_id);

// Warnings for a checkpoint read by another binary or for another dataset (empty when all agree, or the
// checkpoint predates the fields): "<checkpoint>: written by git A; this binary is git B: …" (a commit or
// an uncommitted change that differs).
std::vector<std::string> provenance_differences(const std::string& checkpoint, const std::string& ckpt_git_sha,
                                                const std::string& ckpt_git_diff, const std::string& ckpt_dataset,
                                                const std::string& ckpt_dataset_id, const std::string& dataset_dir,
                                                const std::string& dataset_id);

}  // namespace lt
