#include "src/train/provenance.hpp"

#include <Eigen/Core>
#include <boost/version.hpp>
#include <cstdio>
#include <set>

#include "build_info.hpp"
#include "io/checkpoint.hpp"
#include "kernels/cuda/device.hpp"
#include "mpi/nccl_backend.hpp"
#include "src/common/json.hpp"
#include "src/common/rng.hpp"
#include "version.hpp"

namespace lt {
namespace {

std::string& stored_command_line() {
  static std::string line;
  return line;
}

std::string shell_quoted(const std::string& arg) {
  if (!arg.empty() &&
      arg.find_first_not_of("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-./=:,+@%") ==
          std::string::npos)
    return arg;
  std::string quoted = "'";
  for (char c : arg) quoted += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return quoted + "'";
}

}  // namespace

void set_command_line(int argc, char** argv) {
  std::string line;
  for (int i = 0; i < argc; ++i) {
    if (i > 0) line += ' ';
    line += shell_quoted(argv[i]);
  }
  stored_command_line() = line;
}

const std::string& command_line() {
  return stored_command_line();
}

std::string dataset_identity(const DatasetReader& reader) {
  uint64_t id = stream_key(0x6c69646172ULL, uint64_t(reader.num_frames()));
  for (uint64_t fingerprint : reader.shard_fingerprints()) id = stream_key(id, fingerprint);
  char text[17];
  std::snprintf(text, sizeof text, "%016llx", static_cast<unsigned long long>(id));
  return text;
}

std::string code_identity(const std::string& git_sha, const std::string& git_diff) {
  return "git " + git_sha + (git_diff.empty() ? "" : " with uncommitted change " + git_diff);
}

std::string provenance_json(const Comm& comm, const std::string& dataset_dir, const std::string& dataset_id) {
  const std::vector<std::string> hosts = comm.gather_text(processor_name(), 0);
  const std::set<std::string> unique(hosts.begin(), hosts.end());
  JsonWriter json;
  json.begin_object().key("git_sha").value(kGitSha).key("git_diff").value(kGitDiff);
  json.key("version").value(kVersion).key("command_line").value(command_line());
  json.key("compiler").value(kCompiler).key("build_type").value(kBuildType).key("flags").value(kCompilerFlags);
  json.key("libraries").begin_object();
  json.key("open_mpi").value(mpi_library_version()).key("hdf5").value(hdf5_library_version());
  json.key("eigen").value(std::to_string(EIGEN_WORLD_VERSION) + "." + std::to_string(EIGEN_MAJOR_VERSION) + "." +
                          std::to_string(EIGEN_MINOR_VERSION));
  json.key("boost").value(std::to_string(BOOST_VERSION / 100000) + "." + std::to_string(BOOST_VERSION / 100 % 1000) +
                          "." + std::to_string(BOOST_VERSION % 100));
#if defined(LIDARTRAIN_HAVE_NCCL)
  const std::string nccl = cuda::nccl_version();
#else
  const std::string nccl = "not built";
#endif
  json.key("cuda").value(cuda_summary()).key("cudnn").value(cudnn_summary()).key("nccl").value(nccl);
  json.end_object();
  json.key("world_size").value(comm.size()).key("hosts").begin_array();
  for (const std::string& name : unique) json.value(name);
  json.end_array();
  json.key("dataset").begin_object().key("path").value(dataset_dir).key("id").value(dataset_id).end_object();
  json.end_object();
  return comm.broadcast_text(json.str(), 0);  // the gathered hosts are rank 0's to know
}

std::vector<std::string> provenance_differences(const std::string& checkpoint, const std::string& ckpt_git_sha,
                                                const std::string& ckpt_git_diff, const std::string& ckpt_dataset,
                                                const std::string& ckpt_dataset_id, const std::string& dataset_dir,
                                                const std::string& dataset_id) {
  std::vector<std::string> warnings;
  if (!ckpt_git_sha.empty() && (ckpt_git_sha != kGitSha || ckpt_git_diff != kGitDiff))
    warnings.push_back(checkpoint + ": written by " + code_identity(ckpt_git_sha, ckpt_git_diff) + "; this binary is " +
                       code_identity(kGitSha, kGitDiff) + ": the model code may differ");
  if (!ckpt_dataset_id.empty() && !dataset_id.empty() && ckpt_dataset_id != dataset_id)
    warnings.push_back(checkpoint + ": trained on dataset " + ckpt_dataset_id + " (" + ckpt_dataset +
                       "); this dataset is " + dataset_id + " (" + dataset_dir + ")");
  return warnings;
}

}  // namespace lt
