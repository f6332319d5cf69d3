#include "src/train/device.hpp"

#include <cstdlib>
#include <cstring>
#include <sstream>
#include <vector>

#include "kernels/cuda/device.hpp"
#include "kernels/cuda/emu/emulated.hpp"
#include "src/common/error.hpp"

namespace lt {

namespace {

bool emulated() {
  const char* emulation = std::getenv("LIDARTRAIN_CUDA_EMULATION");
  return emulation && std::strcmp(emulation, "1") == 0;
}

// The emulated node's GPUs: CUDA_VISIBLE_DEVICES's entries (as the runtime reads it: empty means none), or
// 8 when it is unset.
std::vector<std::string> emulated_gpus() {
  const char* visible = std::getenv("CUDA_VISIBLE_DEVICES");
  std::vector<std::string> gpus;
  if (!visible) {
    for (int i = 0; i < 8; ++i) gpus.push_back(std::to_string(i));
    return gpus;
  }
  std::stringstream list(visible);
  for (std::string entry; std::getline(list, entry, ',');)
    if (!entry.empty()) gpus.push_back(entry);
  return gpus;
}

std::string emulated_gpu;  // the emulated GPU this rank chose (its CUDA_VISIBLE_DEVICES entry)

}  // namespace

Precision parse_precision(const std::string& text, const std::string& key) {
  for (Precision p : {Precision::fp32, Precision::bf16, Precision::fp16})
    if (text == precision_name(p)) return p;
  throw InputError(key + ": '" + text + "' is not a precision (fp32 | bf16 | fp16)");
}

void use_precision(const Backend& backend, Precision precision, const std::string& key) {
  if (!supports_op(backend, "set_matmul_precision")) {
    require(precision == Precision::fp32, key + "=" + precision_name(precision) +
                                              ": 16-bit matmuls are a GPU's and the device is " + backend.name +
                                              " (fp32 only); use fp32 or a CUDA device");
    return;
  }
  backend.set_matmul_precision(precision);
}

const Backend& choose_device(const std::string& device, int local_rank, const std::string& key) {
  require(device == "auto" || device == "cpu" || device == "cuda",
          key + ": '" + device + "' is not one of auto, cpu, cuda");
  if (device == "cpu") return cpu_backend();
  const std::vector<std::string> gpus = emulated() ? emulated_gpus() : std::vector<std::string>{};
  const int count = emulated() ? int(gpus.size()) : cuda_device_count();
  if (count == 0) {
    require(device == "auto",
            key + "=cuda: no CUDA device is usable here (" +
                (emulated() ? std::string("emulated: CUDA_VISIBLE_DEVICES lists none") : cuda_summary()) + ")");
    return cpu_backend();
  }
  // One GPU visible: the launcher gave this rank its own (or the node has one: then a second rank on it
  // is require_one_rank_per_gpu's error).
  const int index = count == 1 ? 0 : local_rank;
  require(index < count, key + "=" + device + ": this rank is number " + std::to_string(local_rank) +
                             " on its node but only " + std::to_string(count) +
                             " GPU(s) are visible: start at most one rank per GPU");
  if (emulated()) {
    emulated_gpu = gpus[size_t(index)];
    cuda_emu::select_device(index);
    return cuda_emu::backend();
  }
  cuda_select_device(index);
  return *cuda_backend();
}

std::string device_identity(const Backend& backend) {
  if (backend.host_memory) return "";
  if (&backend == &cuda_emu::backend()) return "emulated " + emulated_gpu;
  return cuda_current_device_identity();
}

std::vector<std::string> require_one_rank_per_gpu(const Comm& comm, const Backend& backend) {
  const std::vector<std::string> all = comm.gather_text(processor_name() + "\t" + device_identity(backend), 0);
  std::string problem;
  for (size_t a = 0; a < all.size() && problem.empty(); ++a)
    for (size_t b = a + 1; b < all.size() && problem.empty(); ++b) {
      const size_t tab = all[a].find('\t');
      if (all[a] == all[b] && tab + 1 < all[a].size())
        problem = "ranks " + std::to_string(a) + " and " + std::to_string(b) + " on " + all[a].substr(0, tab) +
                  " would share GPU " + all[a].substr(tab + 1) +
                  ": start at most one rank per GPU (give each rank its own: --gpus-per-task=1, or as many "
                  "GPUs visible as ranks on the node)";
    }
  problem = comm.broadcast_text(problem, 0);
  run_agreed(comm, [&] { require(problem.empty(), problem); });
  std::vector<std::string> identities;
  for (const std::string& rank : all) identities.push_back(rank.substr(rank.find('\t') + 1));
  return identities;
}

std::string describe_device(const Backend& backend) {
  if (backend.host_memory) return backend.name;
  if (std::strcmp(backend.name, "cuda") == 0) return "cuda (" + cuda_current_device_name() + ")";
  return std::string(backend.name) + " GPU " + emulated_gpu + " (the CUDA kernels on the CPU: for tests only)";
}

}  // namespace lt
