#pragma once
// What the CUDA side offers the rest of the program (the ops themselves: cuda_backend() in
// kernels/backend.hpp). Every function here also exists when the build
// has no CUDA (kernels/cpu/no_cuda.cpp), so callers need no #ifdef.
#include <cstdint>
#include <string>

namespace lt {

// Number of usable CUDA devices; 0 when the build has no CUDA or the runtime reports any error
// (no driver, driver too old, no device): none of those is a failure of ours.
int cuda_device_count();

// A line for --version: "CUDA 13.0 runtime, 0 devices (driver: ...)" or "CUDA: not built".
std::string cuda_summary();

// Makes GPU `index` the current device of this process (cudaSetDevice). Precondition: index <
// cuda_device_count().
void cuda_select_device(int index);
// The current device's name and memory ("NVIDIA H100 80GB HBM3, 79.1 GiB").
std::string cuda_current_device_name();
// The current device's PCI bus id ("0000:3b:00.0"): the same physical GPU gives the same text in every
// process of a host, whatever CUDA_VISIBLE_DEVICES numbers it.
std::string cuda_current_device_identity();

// Convolutions on the GPU use only cuDNN's deterministic algorithms while this is on (train.deterministic,
// the default); off, the fastest its heuristics propose. The emulated kernels and the CPU are always
// deterministic.
void set_deterministic_convolutions(bool on);
bool deterministic_convolutions();

// "cuDNN 9.x.y" when the build has cuDNN, else "cuDNN: not built".
std::string cudnn_summary();

}  // namespace lt
