#pragma once
// Which backend a rank computes on (DESIGN.md §6): `train.device` and `--device` take auto | cpu | cuda.
// auto is CUDA when this rank has a GPU, else the CPU; cuda without one is an error. A rank takes the GPU
// of its node-local index among the visible ones (CUDA_VISIBLE_DEVICES is the CUDA runtime's), so more
// ranks on a node than GPUs is an error too.
//
// For tests on machines without a GPU, LIDARTRAIN_CUDA_EMULATION=1 makes the emulated CUDA build
// (kernels/cuda/emu: the same kernel source run on the CPU, slowly) stand in for the GPU, and
// LIDARTRAIN_CUDA_EMULATION_MEMORY=BYTES caps its memory (to exercise out-of-memory errors). Neither is
// for real work.
#include <string>

#include "kernels/backend.hpp"

namespace lt {

// `key` names the option in errors ("train.device", "--device").
const Backend& choose_device(const std::string& device, int local_rank, const std::string& key);

// "cpu", or "cuda: <device name> …" (for logs).
std::string describe_device(const Backend& backend);

}  // namespace lt
