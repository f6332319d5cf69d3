#include <cuda_runtime.h>
#if defined(LIDARTRAIN_HAVE_CUDNN)
#include <cudnn.h>
#endif

#include <cstdio>
#include <string>

#include "kernels/cuda/device.hpp"
#include "kernels/cuda/ops.cuh"

namespace lt {

namespace {
bool deterministic = true;
}
void set_deterministic_convolutions(bool on) {
  deterministic = on;
}
bool deterministic_convolutions() {
  return deterministic;
}

std::string cudnn_summary() {
#if defined(LIDARTRAIN_HAVE_CUDNN)
  const size_t version = cudnnGetVersion();  // major·10000 + minor·100 + patch (cuDNN 9)
  return "cuDNN " + std::to_string(version / 10000) + "." + std::to_string(version / 100 % 100) + "." +
         std::to_string(version % 100);
#else
  return "cuDNN: not built";
#endif
}

int cuda_device_count() {
  int count = 0;
  // Without a GPU the runtime answers e.g. "CUDA driver version is insufficient": that means "none".
  if (cudaGetDeviceCount(&count) != cudaSuccess) {
    cudaGetLastError();  // clear the sticky error so later queries start clean
    return 0;
  }
  return count;
}

std::string cuda_summary() {
  int runtime_version = 0;
  cudaRuntimeGetVersion(&runtime_version);
  int count = 0;
  const cudaError_t status = cudaGetDeviceCount(&count);
  std::string line = "CUDA " + std::to_string(runtime_version / 1000) + "." +
                     std::to_string((runtime_version % 1000) / 10) + " runtime, ";
  if (status != cudaSuccess) {
    cudaGetLastError();
    return line + "0 devices (" + cudaGetErrorString(status) + ")";
  }
  return line + std::to_string(count) + " device(s)";
}

void cuda_select_device(int index) {
  cuda::select_device(index);
}

std::string cuda_current_device_name() {
  int index = 0;
  cudaDeviceProp properties{};
  if (cudaGetDevice(&index) != cudaSuccess || cudaGetDeviceProperties(&properties, index) != cudaSuccess) {
    cudaGetLastError();
    return "unknown device";
  }
  char memory[32];
  std::snprintf(memory, sizeof memory, "%.1f GiB", double(properties.totalGlobalMem) / (1 << 30));
  return std::string(properties.name) + ", " + memory;
}

std::string cuda_current_device_identity() {
  int index = 0;
  char bus_id[64] = {};
  if (cudaGetDevice(&index) != cudaSuccess || cudaDeviceGetPCIBusId(bus_id, sizeof bus_id, index) != cudaSuccess) {
    cudaGetLastError();
    return "unknown device";
  }
  return bus_id;
}

const Backend* cuda_backend() {
  return cuda_device_count() > 0 ? &cuda::backend() : nullptr;
}

}  // namespace lt
