#include "src/train/device.hpp"

#include <cstdlib>
#include <cstring>

#include "kernels/cuda/device.hpp"
#include "kernels/cuda/emu/emulated.hpp"
#include "src/common/error.hpp"

namespace lt {

const Backend& choose_device(const std::string& device, int local_rank, const std::string& key) {
  require(device == "auto" || device == "cpu" || device == "cuda",
          key + ": '" + device + "' is not one of auto, cpu, cuda");
  if (device == "cpu") return cpu_backend();
  const char* emulation = std::getenv("LIDARTRAIN_CUDA_EMULATION");
  if (emulation && std::strcmp(emulation, "1") == 0) return cuda_emu::backend();
  const int count = cuda_device_count();
  if (count == 0) {
    require(device == "auto", key + "=cuda: no CUDA device is usable here (" + cuda_summary() + ")");
    return cpu_backend();
  }
  require(local_rank < count, key + "=" + device + ": this rank is number " + std::to_string(local_rank) +
                                  " on its node but only " + std::to_string(count) +
                                  " GPU(s) are visible: start at most one rank per GPU");
  cuda_select_device(local_rank);
  return *cuda_backend();
}

std::string describe_device(const Backend& backend) {
  if (backend.host_memory) return backend.name;
  if (std::strcmp(backend.name, "cuda") == 0) return "cuda (" + cuda_current_device_name() + ")";
  return std::string(backend.name) + " (the CUDA kernels on the CPU: for tests only)";
}

}  // namespace lt
