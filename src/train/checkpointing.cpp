#include "src/train/checkpointing.hpp"

#include <algorithm>
#include <cstdio>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <vector>

#include "io/atomic_file.hpp"
#include "src/common/error.hpp"
#include "src/train/provenance.hpp"
#include "version.hpp"

namespace lt {
namespace fs = std::filesystem;

namespace {

std::string utc_now() {
  const std::time_t t = std::time(nullptr);
  char text[32];
  std::strftime(text, sizeof text, "%Y-%m-%dT%H:%M:%SZ", std::gmtime(&t));
  return text;
}

// The [model] section of a resolved config (config_to_ini's format: one "key = value" per line).
std::vector<std::string> model_section(const std::string& ini) {
  std::vector<std::string> lines;
  std::istringstream in(ini);
  bool inside = false;
  for (std::string line; std::getline(in, line);) {
    if (!line.empty() && line[0] == '[')
      inside = line == "[model]";
    else if (inside && !line.empty())
      lines.push_back(line);
  }
  return lines;
}

}  // namespace

std::string checkpoint_path(const std::string& run_dir, int64_t step) {
  char name[64];
  std::snprintf(name, sizeof name, "ckpt-%08lld.h5", static_cast<long long>(step));
  return (fs::path(run_dir) / "checkpoints" / name).string();
}

std::string save_checkpoint(const TrainRun& run, Model& model, Optimizer& optimizer,
                            const CheckpointState& state_of_run, int64_t epoch, const Comm& comm) {
  const int64_t step = state_of_run.step;
  const fs::path dir = fs::path(run.run_dir) / "checkpoints";
  std::error_code ec;
  run_agreed(comm, [&] {
    if (comm.is_root()) create_directories(dir.string(), "checkpoint directory");
  });
  const fs::path path = checkpoint_path(run.run_dir, step);
  CheckpointMeta meta;
  meta.model = run.config.model_name;
  meta.step = step;
  meta.epoch = epoch;
  meta.samples_seen = state_of_run.samples_seen;
  meta.world_size = comm.size();
  meta.seed = run.config.seed;
  meta.git_sha = kGitSha;
  meta.git_diff = kGitDiff;
  meta.dataset = fs::absolute(run.config.train_data).string();
  meta.dataset_id = run.dataset_id;
  meta.provenance = run.provenance;
  meta.created = comm.broadcast_text(utc_now(), 0);  // every rank writes the same attributes
  meta.config = run.config_ini;
  meta.optimizer_type = optimizer.config().type;
  meta.optimizer_steps = optimizer.steps_taken();
  OptimizerState state;
  for (auto& [state_name, values] : optimizer.state()) state.emplace_back(state_name, values);
  write_checkpoint(path.string(), meta, model.params(), model.buffers(), state, state_of_run, &comm);
  run_agreed(comm, [&] {
    if (!comm.is_root()) return;
    write_text_file_atomically((dir / "LATEST").string(), path.filename().string() + "\n");
    std::vector<fs::path> existing;
    for (const auto& entry : fs::directory_iterator(dir, ec))
      if (entry.path().extension() == ".h5" && entry.path().filename().string().rfind("ckpt-", 0) == 0)
        existing.push_back(entry.path());
    std::sort(existing.begin(), existing.end());
    for (size_t i = 0; i + size_t(run.config.checkpoint_keep) < existing.size(); ++i) fs::remove(existing[i], ec);
  });
  return path.string();
}

std::string choose_resume_checkpoint(const TrainRun& run, const Comm& comm) {
  std::string chosen;
  run_agreed(comm, [&] {
    if (!comm.is_root() || run.resume == "none") return;
    if (run.resume != "auto") {
      verify_checkpoint(run.resume);
      chosen = run.resume;
      return;
    }
    std::vector<std::string> skipped;
    chosen = find_resume_checkpoint((fs::path(run.run_dir) / "checkpoints").string(), skipped);
    for (const std::string& line : skipped) std::fprintf(stderr, "lidartrain train: warning: %s\n", line.c_str());
  });
  return comm.broadcast_text(chosen, 0);
}

void require_same_model(const std::string& checkpoint_config, const std::string& run_config, const std::string& path) {
  const std::vector<std::string> stored = model_section(checkpoint_config), now = model_section(run_config);
  for (size_t i = 0; i < std::max(stored.size(), now.size()); ++i) {
    const std::string a = i < stored.size() ? stored[i] : "(none)", b = i < now.size() ? now[i] : "(none)";
    require(a == b, path + ": written by a different model: [model] " + a + " in the checkpoint, " + b +
                        " in this run's config");
  }
}

std::string last_good_checkpoint(const std::string& run_dir) {
  std::error_code ec;
  const fs::path latest = fs::path(run_dir) / "checkpoints" / "LATEST";
  if (!fs::is_regular_file(latest, ec)) return "none written yet";
  std::ifstream in(latest);
  std::string name;
  std::getline(in, name);
  return (latest.parent_path() / name).string() + " (LATEST)";
}

}  // namespace lt
